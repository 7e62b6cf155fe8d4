"""The reasoning of a human-labelled training answer, from the text alone: the words that carry
its label (evidence_lexicon.yaml), else the clause that does. A reasoning that recites who labelled
the text, or how many agreed, teaches a model to state facts that no reader can check on a new text;
the label and the annotators' agreement still set the answer's sentiment and confidence.

Every reasoning opens with its verdict, the same words for every text of a label (VERDICT: "Good
news", "Bad news", "No clear good or bad news"), and gives the evidence after it. A model writes the
verdict first, so the label must not depend on what follows: when the reasoning began "It says"
for a polar text with a lexicon word, with a quoted clause for one without, and "It reports" for a
neutral one, a fine-tune learnt that a text without a lexicon word is neutral.

The words, content words and lexicon are utils.grounding's: the eval stage measures a reasoning
with the same ones."""
from __future__ import annotations

import re

from utils.grounding import NOISE, content_words, lexicon, words

# Clause ends; a comma or full stop between digits is part of a number ("10,000", "2.5").
_CLAUSE_SPLIT = re.compile(r"[;:!?()\"]+\s*|[,.](?!\d)\s*|\s+(?:but|while|whereas|although)\s+")
EFFECT = {"positive": "good news", "negative": "bad news"}
# The first words of every reasoning of a label, whatever evidence follows.
VERDICT = {"positive": "Good news", "negative": "Bad news", "neutral": "No clear good or bad news"}
MAX_CUES = 3
CLAUSE_WORDS = 12


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
    clauses = [c.strip() for c in _CLAUSE_SPLIT.split(NOISE.sub(" ", text)) if c and c.strip()]
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
