"""The four elimination rules on real-looking model output."""

from __future__ import annotations

from thresher.augment.eliminate import (
    COPIED_TEMPLATE_WORDS,
    SORRY_SHORT_RESPONSE,
    STOPWORDS_ONLY_RESPONSE,
    copied_template_words,
    identical_to_parent,
    parse_equality,
    response_failure,
    sorry_short_response,
    stopwords_only_response,
)
from thresher.augment.templates import load_evolve_template

PHRASES = load_evolve_template().template_phrases


def test_rule_1_model_free_part_empty_or_identical():
    parent = "Arrange the following musical notes\nG, B, E"
    assert identical_to_parent(parent, "arrange the following musical notes G, B, E.") == "identical to its parent"
    assert identical_to_parent(parent, "  \n ") == "empty evolution"
    assert identical_to_parent(parent, "...") == "empty evolution"
    assert identical_to_parent(parent, "Arrange the following musical notes into a C major chord: G, B, E") is None


def test_rule_2_sorry_in_a_short_response():
    refusal = "I'm sorry, but I cannot provide real-time flight prices. Please check an airline's website."
    assert sorry_short_response(refusal) == "'sorry' in a 14-word response"
    assert response_failure(refusal) == (SORRY_SHORT_RESPONSE, "'sorry' in a 14-word response")
    long_answer = ("Sorry for the long answer. " + "Cash flow is the net amount of cash moving in and out. " * 8)
    assert len(long_answer.split()) >= 80 and sorry_short_response(long_answer) is None
    assert sorry_short_response("He felt sorry for the lost dog, so he took it home.", max_words=5) is None
    assert sorry_short_response("The sorrowful song ended.") is None  # "sorrowful" is not "sorry"
    assert sorry_short_response("SORRY, I can't help with that.") is not None


def test_rule_3_only_punctuation_and_stop_words():
    assert stopwords_only_response("") == "empty response"
    assert stopwords_only_response("...!?") == "punctuation only"
    assert stopwords_only_response("It is what it is.") == "only stop words (5)"
    assert stopwords_only_response("I don't, and you won't.") is not None
    assert response_failure("Yes, it is.") == (STOPWORDS_ONLY_RESPONSE, "only stop words (3)")
    assert stopwords_only_response("Yes, it is citrus.") is None
    assert stopwords_only_response("42") is None
    assert stopwords_only_response("Banane ist keine Zitrusfrucht.") is None


def test_rule_4_template_words_copied():
    smol = ("The given prompt is: \"Categorize the following fruit as either a citrus or a non-citrus fruit.\"\n\n"
            "The rewritten prompt is: ...")
    assert copied_template_words(smol) == "copies 'given prompt'"
    assert copied_template_words("#Rewritten Prompt#:\nList five sources of energy.") == "copies '#Rewritten Prompt#'"
    marker = "<<<INSTRUCTION id=3fa9>>\nList five alternative sources of energy."
    assert copied_template_words(marker, PHRASES) == "copies '<<<INSTRUCTION'"
    echo = "Explain cash flow.\n\nDo not make it verbose: add only 10 to 20 words."
    assert copied_template_words(echo, PHRASES) == "copies 'do not make it verbose'"
    assert copied_template_words("The rewritten  Instruction must stay reasonable.", PHRASES) is not None
    clean = "List five alternative sources of energy, and give the energy density of each in MJ/kg."
    assert copied_template_words(clean, PHRASES) is None
    assert COPIED_TEMPLATE_WORDS == "copied_template_words"


def test_generated_equality_verdicts_are_parsed():
    assert parse_equality("Equal") is True
    assert parse_equality(" equal.") is True
    assert parse_equality("Not Equal") is False
    assert parse_equality("**Not equal**") is False
    assert parse_equality("The two instructions are not equal because the second adds a constraint.") is False
    assert parse_equality("Unequal") is False
    assert parse_equality("The instructions are equal.") is True
    assert parse_equality("I think the second one asks about vitamins.") is None
