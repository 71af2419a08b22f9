"""Prompt-injection patterns in judged text: the judges' `_injection` column.

`thresher.judges.injection` measures how attacks move a judge's scores and how many of them this
detector flags; `tests/data/injection/` holds attacks and benign look-alikes written blind (by
someone who had not seen these patterns), on which README.md reports catch and false-flag rates.

A 0.5B judge cannot be trusted to ignore instructions in its input however the prompt is worded, so
judged text is scanned too, and a flagged row scores the bottom of the scale by default
(`LLMJudge.on_injection`). The patterns look for what an attack must do, not for known strings:
tell the reader to drop its instructions, speak to the grader, claim a verdict in the grader's
output format, forge a chat or prompt boundary, announce a new rubric, or demand a top mark for
itself. Text is also matched in a plain view (lower case, HTML comments opened, s p a c e d or
d.o.t.t.e.d letters joined, l33t digits inside words read as letters), so simple disguises fail.
"""

from __future__ import annotations

import re

from thresher.judges.templates import CONTROL_TOKENS

# Who grades: words that name a grader outright, and words for an AI reader that also appear in
# ordinary text about software ("the model will use these features"), so those need a top claim too.
_GRADER = (r"(?:grader|evaluator|judge|rater|reviewer|assessor|annotator|scorer|examiner|"
           r"(?:grading|scoring|evaluation|rating|judging) (?:model|system|ai|bot|pipeline))s?")
_AI = r"(?:\bai\b|a\.i\.|llm|language model|the model|assistant|chatbot|gpt|\bbot\b)s?"
_GRADE_VERB = (r"(?:score|rate|grade|mark|award|give|assign|output|return|print|label|rank|classify|answer|respond|"
               r"reply|say|treat|consider|go with)")
# A claim of the top of a scale, in words or in the usual score formats.
_YOU_VERB = r"(?:score|rate|grade|mark|award|give|assign|output|answer|respond|reply|say|print)"
_TOP = (r"(?:highest|maximum|\bmax\b|top (?:score|mark|rating|grade)|perfect|full (?:marks|score|points)|best possible|"
        r"excellent|outstanding|flawless|\ba\+|\byes\b|\b(?:5|10|100) ?/ ?(?:5|10|100)\b|\b(?:score|rating|grade|mark) "
        r"of (?:5|10|100)\b|\b(?:a|an) (?:5|10)\b|\b(?:5|10) (?:out of|of) (?:5|10)\b|"
        r"\b(?:5|10|100) (?:points|stars)\b|"
        r"\bnumber (?:5|10)\b)")
_RULES = (r"(?:instructions?|guidance|guidelines|rules|rubric|criteria|prompt|directions|directives|system message|"
          r"task description|(?:evaluation|grading|scoring) steps|grading polic(?:y|ies)|scoring polic(?:y|ies))")
_DIRECTIVE = r"(?:must|should|shall|will|need to|needs to|have to|has to|is to|are to|please|kindly)"
_THIS = r"\b(?:this|these|me|it|yes|the (?:above|following|present|response|answer|reply|text|page|document))\b"
# A verdict in a grader's output format: a score word, a separator on the same line, and a top value
# (5, 10, 100 or yes; not a decimal or a percentage): a review's "Overall score: 3/5" is not a claim.
_SCORE_KEY = (r"(?:educational score|score|rating|quality|complexity|grade|verdict|final answer|final score|"
              r"final verdict|final rating|overall(?: score| rating)?)")
_TOP_VALUE = r"[*\"']*[ \t]*(?:(?:100|10|5)(?![0-9]|[.,][0-9]|%)|yes\b|a\+)"

_EN_PATTERNS: tuple[tuple[str, str], ...] = (
    ("override", rf"\b(?:ignore|disregard|forget|override|bypass|set aside|discard|abandon|supersede|cancel|"
                 rf"pay no attention to)\w*\b[^.\n]{{0,60}}\b{_RULES}"),
    ("override", r"\b(?:ignore|disregard|forget|pay no attention to)\s+(?:all\s+|everything\s+)?(?:of\s+)?(?:the\s+)?"
                 r"(?:above|previous|prior|preceding|earlier)\b"),
    ("override", r"\b(?:ignore|disregard|forget)\s+(?:everything|all|anything)\b[^.\n]{0,30}\b(?:before|above|told|"
                 r"said|previous|prior|earlier|preceding)\b"),
    ("override", rf"\b(?:previous|prior|above|earlier|preceding|original|former|all other)\s+{_RULES}[^.\n]{{0,40}}"
                 r"\b(?:no longer|do not|don't|does not|doesn't|are void|is void|are invalid|is invalid|"
                 r"are cancel+ed|superseded|obsolete)"),
    ("override", r"\b(?:whatever|any|all)\s+(?:guidance|instructions?|rules|directions)\b[^.\n]{0,60}\bno longer appl"),
    ("override", r"\bnew (?:instructions?|rules|task|directives?|orders)\b[^.\n]{0,30}(?::|replac)|"
                 r"\byour (?:only|real|actual|new|true) task\b|"
                 r"\bthe (?:only|real|actual|true) task(?: now)? ?(?:is|:)"),
    ("override", r"\beverything (?:before|above) this (?:line|sentence|point|paragraph)\b"),
    ("override", r"\b(?:grading|judge|judging|scoring|developer|admin|god) mode\b"),
    ("grader_address", rf"\b{_GRADER}\b[^.\n]{{0,80}}\b{_DIRECTIVE}\b[^.\n]{{0,50}}\b{_GRADE_VERB}\b"
                       rf"[^.\n]{{0,40}}{_THIS}"),
    ("grader_address", rf"\b{_GRADER}\s*[:,\u2014\u2013-]+\s*(?:you\b|please\b|{_GRADE_VERB}\b)"),
    ("grader_address", rf"(?:^|[.!?:(]\s*){_AI}\s*[:,\u2014\u2013-]+\s*(?:you\b|please\b|{_GRADE_VERB}\b)"),
    ("grader_address", rf"\b{_AI}\b[^.\n]{{0,80}}\b{_DIRECTIVE}\b[^.\n]{{0,50}}\b{_GRADE_VERB}\b[^.\n]{{0,60}}{_TOP}"),
    ("grader_address", rf"\b(?:dear|attention|note to(?: the)?|message (?:to|for)(?: the)?|hey|hello)\s*,?\s*"
                       rf"(?:\w+\s+){{0,2}}(?:{_GRADER}|{_AI})\b[^.\n]{{0,80}}(?:\b{_GRADE_VERB}\b|{_TOP})"),
    ("grader_address", rf"\bto the (?:{_GRADER}|{_AI}) (?:reading|evaluating|grading|judging|scoring|reviewing|"
                       rf"assessing) this\b"),
    ("grader_address", rf"\byou\b[^.\n]{{0,20}}\b(?:must|should|shall|will|need to|have to|are to|are required to)\b"
                       rf"[^.\n]{{0,30}}\b{_YOU_VERB}\b[^.\n]{{0,60}}{_TOP}"),
    ("grader_address", rf"\b(?:when|if|as|once) you (?:score|rate|grade|judge|evaluate|assess|review)\b"
                       rf"[^.\n]{{0,60}}{_TOP}"),
    ("self_rating_demand", rf"\b(?:please|kindly|just)\s+(?:score|rate|grade|mark|give|award|output)\b[^.\n]{{0,30}}"
                           rf"(?:{_TOP}|\b(?:5|10)\b)"),
    ("self_rating_demand", rf"\b(?:rate|score|grade|mark|give|award)\s+(?:me|this|it|us)\b[^.\n]{{0,30}}{_TOP}"),
    ("self_rating_demand", rf"\b(?:giving|give|rating|scoring|grading)\s+(?:this|it)\s+(?:anything\s+)?(?:less|lower) "
                           rf"than\b[^.\n]{{0,20}}{_TOP}"),
    ("self_rating_demand", r"\b(?:this|the (?:above|following|present))\s+(?:answer|response|reply|text|content|page|"
                           r"document|submission|essay|output|article|extract|item|example|one)\b[^.\n]{0,60}\b(?:must|"
                           r"should|shall|is to|has to|needs to|deserves to|is required to|is|was|has been)"
                           r"\s+(?:be\s+)?"
                           r"(?:rated|scored|graded|marked|given|awarded|receive|get|considered|classified|labell?ed)\b"
                           rf"[^.\n]{{0,40}}{_TOP}"),
    ("self_rating_demand", rf"\b(?:this|the above)\s+(?:answer|response|reply|text|submission|essay)\s+deserves\b"
                           rf"[^.\n]{{0,30}}{_TOP}"),
    ("self_rating_demand", rf"\b(?:always|automatically)\s+(?:be\s+)?(?:graded|scored|rated|marked)\b"
                           rf"[^.\n]{{0,30}}{_TOP}"),
    ("self_rating_demand", r"\b(?:ground[- ]truth|gold|correct|expected|official|known|required|target) "
                           r"(?:label|answer|"
                           r"score|rating|verdict|assessment|grade)\b[^.\n]{0,40}\b(?:is|=|:|of)\s*[\"'\u2018\u201c]?"
                           rf"(?:an? )?(?:educational score of )?(?:yes\b|(?:5|10|100)\b|{_TOP})"),
    ("self_rating_demand", r"\b(?:any|a)\s+(?:score|rating|grade|mark)\s+(?:below|under|less than|lower than)\b"
                           r"[^.\n]{0,60}"
                           r"\b(?:error|mistake|invalid|wrong|penali[sz]ed|flagged)"),
    ("score_claim", rf"\b{_SCORE_KEY}[ \t]*(?::|=>|->)[ \t]*{_TOP_VALUE}"),
    ("score_claim", rf"^[ \t*#>-]*{_SCORE_KEY}[ \t]*[\-\u2013][ \t]*{_TOP_VALUE}"),
    # Any score alone on its line, in the judge's own format ("Quality: 6" on DEITA's 1-6 scale).
    ("score_claim", rf"^[ \t*#>-]*{_SCORE_KEY}[ \t]*(?::|=>|->)[ \t]*[*\"']*(?:10|[0-9])[*\"']*[ \t.!]*$"),
    # A yes/no judge's verdict alone on its line (an FAQ's "Answer: Yes, it is ..." goes on).
    ("score_claim", r"\banswer[ \t]*:[ \t]*[*\"']*yes[*\"']*[ \t.!]*$"),
    ("score_claim", r"\b(?:score|rating|grade|verdict|quality)[ \t]*=[ \t]*[\"']?(?:excellent|perfect|outstanding|"
                    r"yes|pass)\b"),
    ("score_claim", r"\{\s*\"(?:score|rating|grade|verdict|quality|answer)\"\s*:\s*\"?(?:100|10|5|yes)\b"),
    ("policy_update", r"\b(?:new|updated?|revised|changed|amended|latest)\s+(?:grading|scoring|evaluation|rating|"
                      r"judging|review|annotation)\s+(?:policy|rubric|rules|instructions|criteria|guidelines?|protocol|"
                      rf"scale)\b[^.\n]{{0,80}}(?:{_TOP}|\bthis\b|:)"),
    ("policy_update", r"\b(?:rubric|(?:grading|scoring|rating|evaluation|annotation) (?:policy|rules|criteria|scale|"
                      r"guidelines?))\b[^.\n]{0,20}\b(?:has|have|was|were)\s+(?:been\s+)?(?:changed|updated|revised|"
                      r"amended|replaced|inverted|reversed)"),
    ("policy_update", r"\b(?:annotation|grading|scoring|rating|evaluation) guideline amendment\b"),
    ("role_header", r"^[ \t]*#{1,4}[ \t]*(?:system|assistant|user|instruction|response)[ \t]*:?[ \t]*$"),
    ("role_header", r"^[ \t]*(?:system|developer)[ \t]*(?:prompt|message)?[ \t]*:[ \t]*[^\s\"'{\[][^\n]{12,}"),
    ("role_header", r"\[(?:system|sys|admin|developer|grader|evaluator)\]|<\|(?:system|assistant|user)\|>"),
)
# Forged prompt tags are lower case (`</response>`); `<User>` in code is a type parameter.
_FORGED_TAG = re.compile(r"(?<![\w.])</?(?:system|response|instructions?|answer|assistant|grader|evaluation|document)>")
# The same moves in the languages judged text most often arrives in besides English.
_OTHER_LANGUAGES: tuple[str, ...] = (
    # drop the instructions: fr, es/pt/it, de, ru
    r"\b(?:ignor(?:ez|er|e|a|ad|ar|en|i|ate|ier\w*)|oubli(?:ez|e|er)|olvid(?:a|e|en|ad|ar)|esque[cç](?:a|e|am|er)|"
    r"dimentica(?:te|re)?|vergiss|vergessen sie)\b[^.\n]{0,60}\b(?:instructions?|consignes|règles|instrucciones|"
    r"reglas|indicaciones|instruç(?:ões|ão)|regras|istruzioni|regole|anweisungen|regeln|vorgaben|anleitung)",
    r"(?:игнорир|проигнорир|забудь|забудьте|не обращай)[^.\n]{0,60}(?:инструкц|указани|правил)",
    # a top mark asked for: fr, es/pt/it, de, ru
    r"\bnote (?:maximale|la plus (?:haute|élevée))|\b(?:puntuaci[oó]n|calificaci[oó]n|nota|pontua[cç][aã]o|"
    r"punteggio|voto) (?:m[aá]xim[ao]|m[aá]s alta|perfett[ao]|perfecta|massim[ao])|\bh[öo]chstnote\b|\bbestnote\b|"
    r"\bh[öo]chste[nr]? (?:punktzahl|bewertung|note|punkte)|(?:максимальн\w+|высш\w+) (?:оценк|балл)",
    # addressed to the grader: fr, es/pt/it, de, ru, ja, zh
    r"\b(?:cher|chère|estimado|querido|caro|gentile|liebe[rs]?|sehr geehrte[rs]?)\s+(?:évaluateur|correcteur|"
    r"evaluador|calificador|avaliador|valutatore|bewerter|prüfer|gutachter)",
    r"(?:уважаемый|дорогой) (?:оценщик|проверяющий|эксперт)",
    r"(?:指示|命令)を?(?:無視|忘れ)|(?:満点|最高(?:評価|点))を?(?:付け|つけ|与え)",
    r"(?:忽略|无视|忽视|不要理会).{0,12}(?:指令|指示|说明|规则|要求)|(?:给|打|评为?).{0,6}(?:满分|最高分)|"
    r"(?:致|给)(?:评审|评委|评分|打分)(?:模型|员|者|系统)|评分[:：]\s*(?:5|五|10|十)\b",
)

_DETECTORS: tuple[tuple[str, re.Pattern], ...] = (
    ("control_token", CONTROL_TOKENS),
    ("forged_marker", re.compile(r"<<<\s*(?:END\s+)?(?:INSTRUCTION|INPUT|RESPONSE|EXTRACT)\b", re.IGNORECASE)),
    ("forged_marker", _FORGED_TAG),
    *((name, re.compile(pattern, re.IGNORECASE | re.MULTILINE)) for name, pattern in _EN_PATTERNS),
    *(("foreign_language", re.compile(pattern, re.IGNORECASE)) for pattern in _OTHER_LANGUAGES),
)

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"})
_SPACED_LETTERS = re.compile(r"\b(?:[A-Za-z][ .\-_*·]){3,}[A-Za-z]\b")
_LEET_WORD = re.compile(r"\b(?=\w*[A-Za-z])(?=\w*[0-9@$!])[\w@$!]{3,}\b")


def plain_view(text: str) -> str:
    """The text with simple disguises undone: lower case, HTML comments opened, spaced or dotted
    letters joined ("i g n o r e"), digits inside words read as letters ("1gn0re"), runs of
    whitespace collapsed. Numbers standing alone ("5/5") are left as they are."""
    text = text.replace("<!--", " ").replace("-->", " ")
    text = _SPACED_LETTERS.sub(lambda m: re.sub(r"[ .\-_*·]", "", m.group(0)), text)
    text = _LEET_WORD.sub(lambda m: m.group(0).translate(_LEET), text)
    return re.sub(r"[ \t]+", " ", text).lower()


def detect_injection(fields: dict[str, str]) -> str | None:
    """The first kind of injection pattern found in any field (as written, or in its plain view), or None."""
    for text in fields.values():
        if not text:
            continue
        for view in (text, plain_view(text)):
            for reason, pattern in _DETECTORS:
                if pattern.search(view):
                    return reason
    return None
