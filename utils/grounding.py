"""Whether a reasoning is about its text: the words it shares with the text (grounded), the claims
it makes that the text does not (invented: annotators, agreement, a percentage), and how many
reasonings are one sentence around a quote (template_share). Step 05's
human-labelled reasonings are written from these words (dataset_builder.evidence) and eval
measures every model's reasoning with them (eval.labelled): one vocabulary for both.

The word lists are evidence_lexicon.yaml beside this module."""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

LEXICON_PATH = Path(__file__).with_name("evidence_lexicon.yaml")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]")
NOISE = re.compile(r"@\w+|#\w+|https?://\S+")  # mentions, tags, links: not evidence

# A reasoning may mention these (or a percentage) only where the text does: otherwise it states
# a fact about how the text was labelled, not about the text.
INVENTED_TERMS = re.compile(r"\b(annotat\w*|agree\w*|disagree\w*|consensus|labell?er\w*|raters?|"
                            r"crowd\w*|analysts?|experts?)\b", re.IGNORECASE)
PERCENTAGE = re.compile(r"\d+(?:\.\d+)?\s*(?:%|per ?cent\b)", re.IGNORECASE)


@dataclass(frozen=True)
class Lexicon:
    positive: frozenset[str]
    negative: frozenset[str]
    rising: frozenset[str]
    falling: frozenset[str]
    good_measures: frozenset[str]
    bad_measures: frozenset[str]
    not_evidence: frozenset[str]


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    lists = yaml.safe_load(LEXICON_PATH.read_text(encoding="utf-8"))
    return Lexicon(**{name: frozenset(word.lower() for word in lists[name]) for name in Lexicon.__dataclass_fields__})


def words(text: str) -> list[str]:
    """The lower-case words of `text`, in order, without mentions, tags and links."""
    return [word.lower() for word in _WORD.findall(NOISE.sub(" ", text))]


def content_words(text: str) -> set[str]:
    """Words that can tie a reasoning to a text: not stop words, not the vocabulary every
    reasoning uses ("news", "sentiment", ...), at least three letters."""
    return {word for word in words(text)
            if len(word) >= 3 and word not in ENGLISH_STOP_WORDS and word not in lexicon().not_evidence}


def invented_claims(reasoning: str, text: str) -> list[str]:
    """The annotator/agreement words and percentages in `reasoning` that `text` does not contain."""
    found = [m.group(0) for m in INVENTED_TERMS.finditer(reasoning) if m.group(0).lower() not in text.lower()]
    in_text = {re.sub(r"\s", "", m.group(0)) for m in PERCENTAGE.finditer(text)}
    return found + [m.group(0) for m in PERCENTAGE.finditer(reasoning) if re.sub(r"\s", "", m.group(0)) not in in_text]


def is_grounded(reasoning: str, text: str) -> bool:
    """The reasoning shares at least one content word with the text."""
    return bool(content_words(reasoning) & content_words(text))


_QUOTED = re.compile(r'"[^"]*"|\u201c[^\u201d]*\u201d')


def reasoning_template(reasoning: str) -> str:
    """`reasoning` with every quoted span blanked ("…") and spaces and case folded: two
    reasonings with the same template differ only in what they quote."""
    return " ".join(_QUOTED.sub('"…"', reasoning).lower().split())


def template_share(reasonings: list[str]) -> tuple[float | None, str | None]:
    """The largest share of `reasonings` that are one template (reasoning_template), and that
    template: 1.0 when every answer is the same sentence around a quote, near 0 for explanations
    written for each text."""
    if not reasonings:
        return None, None
    template, count = Counter(reasoning_template(r) for r in reasonings).most_common(1)[0]
    return round(count / len(reasonings), 4), template
