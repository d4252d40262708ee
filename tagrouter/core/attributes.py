"""Served-time surface attributes (`attr:` tags): cheap rules over a query's text and token count
for what a sentence embedding carries poorly (length, digits, code language, format requests,
several questions, conversation turns, script and language).

`CANDIDATE_ATTRIBUTES` is every rule; `ATTRIBUTE_TAGS` the ones the tagger emits: a candidate is
kept only when the ablation on the selection rows supports it (docs/ATTRIBUTES.md,
`python -m tagrouter.offline.attributes`). Pure functions: no I/O.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

SHORT_INPUT_TOKENS = 10
MEDIUM_INPUT_TOKENS = 64
LONG_INPUT_TOKENS = 256
VERY_LONG_INPUT_TOKENS = 1024

_I, _M = re.IGNORECASE, re.MULTILINE
_CODE = re.compile(r"```|\bdef \w+\(|\bclass \w+[:(]|#include|\bfunction\s*\w*\(|=>|;\s*$|\breturn\b.*;|</?\w+>", _M)
_MATH = re.compile(r"\d\s*[-+*/^=<>]\s*\d|\\frac|\\sum|\\int|\$[^$]+\$|\b(sqrt|log|sin|cos|integral|derivative)\b", _I)
_CHOICES = re.compile(r"(^|\n|\s)\(?[A-D]\)\s|\bOption\s*[12]\b|\b[A-D]\.\s+\w", _I)
_PARTS = re.compile(r"(^|\n)\s*(\d+[.)]|[-*•])\s+\S")
_NON_LATIN = re.compile(r"[\u0400-\u04FF\u0590-\u06FF\u0900-\u097F\u0E00-\u0E7F\u3040-\u30FF\u3400-\u9FFF\uAC00-\uD7AF]")
# The script of a non-Latin query: a cheap stand-in for its language.
_SCRIPTS = (
    ("attr:script-cjk", re.compile(r"[\u3040-\u30FF\u3400-\u9FFF\uAC00-\uD7AF]")),
    ("attr:script-cyrillic", re.compile(r"[\u0400-\u04FF]")),
    ("attr:script-arabic-hebrew", re.compile(r"[\u0590-\u06FF]")),
    ("attr:script-indic", re.compile(r"[\u0900-\u0DFF]")),
    ("attr:script-other", re.compile(r"[\u0E00-\u0E7F\u0370-\u03FF\u0530-\u058F\u10A0-\u10FF]")),
)
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?(?![\w.])")
_EQUATION = re.compile(r"\b\d*[a-z]\s*(\^|\*\*)\s*\d|\b\d+[a-z]\b\s*[-+=]|\b[a-z]\s*=\s*-?\d|\\\(|\\\[|\\frac"
                       r"|\bsolve (for|the (equation|system))\b|\b(equation|inequality|polynomial)s?\b", _I)
_CODE_LANGUAGES = (
    ("attr:code-python", re.compile(r"\bpython\b|\bdef \w+\(|^\s*import \w+|^\s*from \w+ import\b|\bprint\(", _I | _M)),
    ("attr:code-javascript", re.compile(r"\b(java|type)script\b|\bnode\.?js\b|\breact\b|console\.log|\bconst \w+\s*=", _I)),
    ("attr:code-sql", re.compile(r"\bsql\b|\bselect\b[^.?!]{1,80}\bfrom\b|\binsert into\b|\bcreate table\b", _I)),
    ("attr:code-c-family", re.compile(r"#include|\bstd::|\bint main\s*\(|\bc\+\+|\bc#|\bjava\b(?!script)"
                                      r"|\bpublic static\b|\brust\b|\bgolang\b", _I)),
    ("attr:code-shell", re.compile(r"\b(bash|shell script|powershell|terminal command)\b|^\s*\$ \w+|\bsudo \w+", _I | _M)),
)
_QUESTION = re.compile(r"[^?？]{3,}[?？]")
_FORMATS = (
    ("attr:format-json", re.compile(r"\bjson\b|\byaml\b|\bxml\b", _I)),
    ("attr:format-table", re.compile(r"\b(in|as|into|create|make) an? (markdown )?table\b|\btabular\b"
                                     r"|^\s*\|.+\|.+\|", _I | _M)),
    ("attr:format-list", re.compile(r"\b(bullet(ed)? (points?|list)|numbered list|list (of )?(the )?(\d+|some|all|five|ten"
                                    r"|three))\b|^\s*(list|enumerate)\b", _I | _M)),
    ("attr:word-limit", re.compile(r"\b(in|under|within|at most|no more than|less than|up to) (\d+|one|two|three|five|ten|a "
                                   r"few|a single) (words?|sentences?|paragraphs?|lines?|characters?|bullet)"
                                   r"|\b(one|single|two|three)[- ](word|sentence|paragraph|line)\b|\bbrief(ly)?\b"
                                   r"|\bconcise(ly)?\b|\bwithout explanation\b|\bonly (the|a single|one) (answer|choice"
                                   r"|letter|number|word)\b", _I)),
)
_REASONING = re.compile(r"\bstep[- ]by[- ]step\b|\bshow (your|the|all) (work|steps|reasoning)\b|\bexplain (your|the) "
                        r"reasoning\b|\bprove\b|\bjustify\b|\bderive\b|\blet'?s think\b|\bthink (carefully|through)\b"
                        r"|\bwhat (would|will) happen if\b|\bpuzzle\b|\briddle\b|\blogic(al)?\b", _I)
_TURNS = re.compile(r"^\s*(user|human|assistant|ai|bot|system|customer|agent|q|a|person [a-z12])\s*:", _I | _M)
_TURN_MARKERS = re.compile(r"\[/?INST\]|<\|im_start\|>|<\|user\|>|###\s*(human|assistant|user)\b", _I)
_WORD = re.compile(r"[a-zà-ÿ']+", _I)
_ENGLISH = frozenset("the and is are of to in that it for you what how this with on be can i my".split())
_OTHER_LATIN = frozenset("el los las que del por para una con es est les des une pour pas dans der die das und ist "
                         "nicht ein eine mit auf sie wie como mais não você che per sono della di il je ne zu".split())


@lru_cache(maxsize=64)  # asked by six rules of the same query: counted once per query
def _script(text: str) -> str | None:
    counts = [(len(rx.findall(text)), name) for name, rx in _SCRIPTS]
    most, script = max(counts, key=lambda c: c[0])
    return script if most >= 3 else None


def _latin_other_language(text: str) -> bool:
    """A Latin-script query in another language than English: its function words are mostly not English."""
    words = [w.lower() for w in _WORD.findall(text)]
    other = sum(w in _OTHER_LATIN for w in words)
    return len(words) >= 4 and other >= 2 and other > 2 * sum(w in _ENGLISH for w in words)


def _speakers(text: str) -> int:
    return len({m.group(1).lower() for m in _TURNS.finditer(text)})


Rule = Callable[[str, int], bool]
RULES: dict[str, Rule] = {
    "attr:short-input": lambda t, n: n <= SHORT_INPUT_TOKENS,
    "attr:medium-input": lambda t, n: MEDIUM_INPUT_TOKENS <= n < LONG_INPUT_TOKENS,
    "attr:long-input": lambda t, n: n >= LONG_INPUT_TOKENS,
    "attr:very-long-input": lambda t, n: n >= VERY_LONG_INPUT_TOKENS,
    "attr:contains-code": lambda t, n: bool(_CODE.search(t)),
    "attr:contains-math": lambda t, n: bool(_MATH.search(t)),
    "attr:contains-numbers": lambda t, n: len(_NUMBER.findall(t)) >= 3,
    "attr:equation": lambda t, n: bool(_EQUATION.search(t)),
    **{name: (lambda t, n, rx=rx: bool(rx.search(t))) for name, rx in _CODE_LANGUAGES},
    "attr:multiple-choice": lambda t, n: bool(_CHOICES.search(t)),
    "attr:multi-part": lambda t, n: len(_PARTS.findall(t)) >= 2 or t.count("?") >= 2,
    "attr:several-questions": lambda t, n: len(_QUESTION.findall(t)) >= 2,
    **{name: (lambda t, n, rx=rx: bool(rx.search(t))) for name, rx in _FORMATS},
    "attr:reasoning-cue": lambda t, n: bool(_REASONING.search(t)),
    "attr:multi-turn": lambda t, n: _speakers(t) >= 2 or bool(_TURN_MARKERS.search(t)),
    "attr:non-latin-script": lambda t, n: len(_NON_LATIN.findall(t)) >= 3,
    **{name: (lambda t, n, name=name: _script(t) == name) for name, _ in _SCRIPTS},
    "attr:latin-non-english": lambda t, n: _script(t) is None and _latin_other_language(t),
}
CANDIDATE_ATTRIBUTES = tuple(RULES)
# The rules the tagger emits: the candidates the ablation on the selection rows supports
# (docs/ATTRIBUTES.md, `python -m tagrouter.offline.attributes`; tests check the two agree).
ATTRIBUTE_TAGS = (
    "attr:short-input",
    "attr:medium-input",
    "attr:long-input",
    "attr:contains-code",
    "attr:contains-math",
    "attr:contains-numbers",
    "attr:multiple-choice",
    "attr:multi-part",
    "attr:word-limit",
    "attr:non-latin-script",
    "attr:script-cjk",
    "attr:script-cyrillic",
    "attr:script-arabic-hebrew",
    "attr:script-indic",
    "attr:script-other",
)


def attribute_tags(text: str, token_count: int, names=ATTRIBUTE_TAGS) -> list[str]:
    """The attributes of `names` (default: the served ones) that a query carries, in `names`' order."""
    return [name for name in names if RULES[name](text, token_count)]
