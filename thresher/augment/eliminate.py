"""Elimination of failed evolutions (Xu et al., 2023, section 3.3), each with a reason.

An evolution fails when

1. `no_information_gain`: it brings no information gain over its parent. Judged by an SLM with the
   "Equal / Not Equal" prompt (`thresher.augment.evolve`); an empty evolution, or one that equals
   its parent up to case, spacing and punctuation, fails without asking the model;
2. `sorry_short_response`: the response contains "sorry" and is under 80 words (the model could
   not answer);
3. `stopwords_only_response`: the response holds only punctuation and stop words (or nothing);
4. `copied_template_words`: the evolved instruction copies words of the evolving prompt
   ("#Rewritten Prompt#", "given prompt", "rewritten prompt", this template's markers, ...).

The rules here are pure functions of text: each returns None (passes) or a short detail saying
why it fails. They are checked in the order that saves model calls: rule 4 and the identical-text
part of rule 1 before the judge, the judge before the response is generated, rules 2 and 3 on the
response; a row carries the first reason it fails.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

NO_INFORMATION_GAIN = "no_information_gain"
SORRY_SHORT_RESPONSE = "sorry_short_response"
STOPWORDS_ONLY_RESPONSE = "stopwords_only_response"
COPIED_TEMPLATE_WORDS = "copied_template_words"
ELIMINATION_REASONS = (NO_INFORMATION_GAIN, SORRY_SHORT_RESPONSE, STOPWORDS_ONLY_RESPONSE, COPIED_TEMPLATE_WORDS)

# The paper's words (rule 4), checked whatever the template says.
PAPER_TEMPLATE_PHRASES = ("#The Given Prompt#", "#Given Prompt#", "#Rewritten Prompt#", "#Created Prompt#",
                          "given prompt", "rewritten prompt", "created prompt")

# English stop words: function words that carry no content on their own (the usual 170-odd of
# NLTK's and spaCy's lists, written out here; contractions appear both with and without the
# apostrophe because tokens are split on it).
STOP_WORDS = frozenset("""
a about above after again against ain all am an and any are aren arent as at be because been before being below
between both but by can cannot could couldn couldnt d did didn didnt do does doesn doesnt doing don dont down during
each few for from further had hadn hadnt has hasn hasnt have haven havent having he her here hers herself him himself
his how i if in into is isn isnt it its itself just ll m ma me might mightn mightnt more most must mustn mustnt my
myself need needn neednt no nor not now o of off on once only or other our ours ourselves out over own re s same
shan shant she should shouldn shouldnt so some such t than that thats the their theirs them themselves then there
these they this those through to too under until up ve very was wasn wasnt we were weren werent what when where
which while who whom why will with won wont would wouldn wouldnt y you your yours yourself yourselves
also yes ok okay oh well
""".split())

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_SORRY = re.compile(r"\bsorry\b", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


def _normalise(text: str) -> str:
    text = _SPACES.sub(" ", text.lower()).strip()
    return text.strip(string.punctuation + " ")


def copied_template_words(evolved: str, phrases: Sequence[str] = PAPER_TEMPLATE_PHRASES) -> str | None:
    """Rule 4: the first template phrase the evolved instruction copies (case and spacing ignored)."""
    haystack = _SPACES.sub(" ", evolved.lower())
    for phrase in dict.fromkeys((*PAPER_TEMPLATE_PHRASES, *phrases)):
        if _SPACES.sub(" ", phrase.lower()) in haystack:
            return f"copies {phrase!r}"
    return None


def identical_to_parent(parent: str, evolved: str) -> str | None:
    """Rule 1 without a model: an empty evolution, or the parent again (case, spacing and the
    punctuation around it ignored)."""
    if not _normalise(evolved):
        return "empty evolution"
    if _normalise(evolved) == _normalise(parent):
        return "identical to its parent"
    return None


def word_count(text: str) -> int:
    return len(text.split())


def sorry_short_response(response: str, max_words: int = 80) -> str | None:
    """Rule 2: "sorry" in a response of fewer than `max_words` words."""
    if _SORRY.search(response):
        n = word_count(response)
        if n < max_words:
            return f"'sorry' in a {n}-word response"
    return None


def stopwords_only_response(response: str) -> str | None:
    """Rule 3: nothing but punctuation, whitespace and stop words (an empty response included)."""
    words = [w.lower() for w in _WORD.findall(response)]
    if not words:
        return "empty response" if not response.strip() else "punctuation only"
    if all(w in STOP_WORDS for w in words):
        return f"only stop words ({len(words)})"
    return None


def response_failure(response: str, sorry_max_words: int = 80) -> tuple[str, str] | None:
    """(reason, detail) of the first response rule (2, then 3) that fails, or None."""
    detail = sorry_short_response(response, sorry_max_words)
    if detail:
        return SORRY_SHORT_RESPONSE, detail
    detail = stopwords_only_response(response)
    if detail:
        return STOPWORDS_ONLY_RESPONSE, detail
    return None


def parse_equality(reply: str) -> bool | None:
    """A generated "Equal / Not Equal" verdict: True (equal), False (not equal) or None (unreadable)."""
    text = _SPACES.sub(" ", reply.lower()).strip().lstrip(string.punctuation + " ")
    if re.match(r"(not|un)\s*equal\b|not\b|no\b|different\b", text) or "not equal" in text:
        return False
    if re.match(r"(equal|yes|same)\b", text) or re.search(r"\bequal\b", text):
        return True
    return None
