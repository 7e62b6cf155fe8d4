"""The reasoning of a human-labelled training answer, from the text alone: the words that carry
its label (evidence_lexicon.yaml), else the clause that does. A reasoning that recites who labelled
the text, or how many agreed, teaches a model to state facts that no reader can check on a new text;
the label and the annotators' agreement still set the answer's sentiment and confidence.

Every reasoning opens with its verdict, the same words for every text of a label (VERDICT: "Good
news", "Bad news", "No clear good or bad news"), and gives the evidence after it. A model writes the
verdict first, so the label must not depend on what follows: when the reasoning began "It says"
for a polar text with a lexicon word, with a quoted clause for one without, and "It reports" for a
neutral one, a fine-tune learnt that a text without a lexicon word is neutral.

Also what the eval stage measures a reasoning with: its content words, and the claims it may not
make (annotators, agreement, a percentage) unless the text does."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

LEXICON_PATH = Path(__file__).with_name("evidence_lexicon.yaml")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]")
# Clause ends; a comma or full stop between digits is part of a number ("10,000", "2.5").
_CLAUSE_SPLIT = re.compile(r"[;:!?()\"]+\s*|[,.](?!\d)\s*|\s+(?:but|while|whereas|although)\s+")
_NOISE = re.compile(r"@\w+|#\w+|https?://\S+")  # mentions, tags, links: not evidence
EFFECT = {"positive": "good news", "negative": "bad news"}
# The first words of every reasoning of a label, whatever evidence follows.
VERDICT = {"positive": "Good news", "negative": "Bad news", "neutral": "No clear good or bad news"}
MAX_CUES = 3
CLAUSE_WORDS = 12
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
    return [word.lower() for word in _WORD.findall(_NOISE.sub(" ", text))]


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


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def cues(text: str, label: str) -> list[str]:
    """The words of `text` that carry `label` (positive or negative), most specific first: a
    measure with its change ("loss … narrowed"), then words that are good or bad news alone."""
    lex, found = lexicon(), words(text)
    rising = [w for w in found if w in lex.rising]
    falling = [w for w in found if w in lex.falling]
    if label == "positive":
        pairs = [(m, rising) for m in found if m in lex.good_measures] + [(m, falling) for m in found if m in lex.bad_measures]
    else:
        pairs = [(m, falling) for m in found if m in lex.good_measures] + [(m, rising) for m in found if m in lex.bad_measures]
    paired = _unique([f"{measure} … {changes[0]}" for measure, changes in pairs if changes and changes[0] != measure])
    used = {part for pair in paired for part in pair.split(" … ")}
    single = lex.positive if label == "positive" else lex.negative
    alone = _unique([w for w in found if w in single and w not in used])
    return (paired + alone)[:MAX_CUES]


def key_clause(text: str) -> str:
    """The clause of `text` with the most content words, cut to CLAUSE_WORDS words."""
    clauses = [c.strip() for c in _CLAUSE_SPLIT.split(_NOISE.sub(" ", text)) if c and c.strip()]
    best = max(clauses or [text], key=lambda clause: len(content_words(clause)))
    clause_words = best.split()
    return " ".join(clause_words[:CLAUSE_WORDS]) + (" …" if len(clause_words) > CLAUSE_WORDS else "")


def _quoted(items: list[str]) -> str:
    quoted = [f'"{item}"' for item in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def evidence_reasoning(text: str, label: str) -> str:
    """One sentence naming what in `text` makes it `label` (positive/neutral/negative), after the
    label's verdict (VERDICT): the words that carry the label, else the clause that does."""
    if label == "neutral":
        return f'{VERDICT[label]}: it reports "{key_clause(text)}" as a plain fact, so it is neutral.'
    found = cues(text, label)
    grounded = any(content_words(cue) for cue in found)
    if found and grounded:
        return f"{VERDICT[label]}: it says {_quoted(found)}, so it is {label}."
    return f'{VERDICT[label]}: "{key_clause(text)}", so it is {label}.'


def passage_evidence(members: list[tuple[str, str]], label: str) -> str:
    """The reasoning of a passage of (text, label) sentences: the verdict of `label` on balance,
    then the good and the bad news its sentences carry."""
    parts = []
    for side in ("positive", "negative"):
        side_cues = _unique([cue for text, member_label in members if member_label == side
                             for cue in (cues(text, side) or [key_clause(text)])[:1]])
        if side_cues:
            parts.append(f"{EFFECT[side]} ({_quoted(side_cues[:MAX_CUES])})")
    if not parts:
        return f'{VERDICT[label]}: it reports "{key_clause(members[0][0])}" and other plain facts, so it is {label}.'
    verb = "mixes" if len(parts) == 2 else "carries"
    return f"{VERDICT[label]} on balance: it {verb} {' and '.join(parts)}, so it is {label}."
