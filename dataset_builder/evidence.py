"""The reasoning of a human-labelled training answer, from the text alone: the words that carry
its label (evidence_lexicon.yaml), else the clause that does. A reasoning that recites who labelled
the text, or how many agreed, teaches a model to state facts that no reader can check on a new text;
the label and the annotators' agreement still set the answer's sentiment and confidence.

A reasoning quotes the text's key clause first and then says what that evidence means for the
shares: for a measure with its change, which way earnings go; for a neutral text, why it leaves the
price where it is (a question, a plan without figures, a description of the business, figures
without a comparison, a routine fact). It never opens with the label: a reasoning that opened with
the same verdict for every text of a label ("Good news: …") was a label prefix, and a fine-tune that
learnt it wrote the verdict before reading (issue 25: one neutral sentence was 1,255 of 1,911
answers on held-out finance tweets). These are composed by code from the text; the synthetic
corpus (dataset_builder/corpus.py) carries explanations written for each text.

The words, content words and lexicon are utils.grounding's: the eval stage measures a reasoning
with the same ones."""
from __future__ import annotations

import re

from utils.grounding import NOISE, content_words, lexicon, words

# Clause ends; a comma or full stop between digits is part of a number ("10,000", "2.5").
_CLAUSE_SPLIT = re.compile(r"[;:!?()\"]+\s*|[,.](?!\d)\s*|\s+(?:but|while|whereas|although)\s+")
EFFECT = {"positive": "good news", "negative": "bad news"}
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


# Why a neutral text leaves the price where it is, by what the text is (the first that applies).
_QUESTION = re.compile(r"\?\s*$|^\s*(who|what|when|where|why|how|is|are|can|does|do|should|any)\b", re.IGNORECASE)
_PEOPLE = re.compile(r"\b(appoint\w*|named|CEO|chairman|chairwoman|director|board|president|resign\w*)\b",
                     re.IGNORECASE)
_DEAL = re.compile(r"\b(agreement|contract|signed|order|deal|acquir\w+|partnership|cooperation)\b", re.IGNORECASE)
_PLAN = re.compile(r"\b(will|plans?|planned|intends?|aims?|expects?|to be|is set to|scheduled|proposes?|"
                   r"considering|seeks?)\b", re.IGNORECASE)
_PROFILE = re.compile(r"\b(is a|is an|provides|operates|offers|specializ\w+|specialis\w+|manufactures|"
                      r"headquartered|based in|employs|designs|develops|supplies|serves)\b", re.IGNORECASE)
_NUMBER = re.compile(r"\d")
NEUTRAL_REASONS = (
    (_QUESTION, "asks a question rather than reporting news about results, so nothing here moves the price"),
    (_PEOPLE, "is about who holds a post, which changes nothing in what the company earns for now"),
    (_DEAL, "names a deal without saying what it adds to earnings, so the price has nothing to react to"),
    (_PLAN, "states a plan or an expectation without its effect on earnings, so the shares have nothing "
            "yet to price"),
    (_PROFILE, "describes the business, not an event that changes what it earns, so its value stays "
               "where it was"),
    (_NUMBER, "gives figures without a comparison that would show a gain or a loss, so they move the "
              "price neither way"),
)
NEUTRAL_DEFAULT = "reports a routine fact with no sign of better or worse results, so the price has no reason to move"


def neutral_reason(text: str) -> str:
    return next((reason for pattern, reason in NEUTRAL_REASONS if pattern.search(text)), NEUTRAL_DEFAULT)


def _cue_effect(cue: str, label: str) -> str:
    """What a cue found by `cues` does to the shares: a measure with its change says which way
    earnings go; a word that is good or bad news alone says so."""
    lex = lexicon()
    measure, _, change = cue.partition(" … ")
    if change:
        good, rising = measure in lex.good_measures, change in lex.rising
        if good:
            return f"{measure} going {'up' if rising else 'down'} means the company is earning {'more' if rising else 'less'}"
        return f"a {'growing' if rising else 'shrinking'} {measure} means the company is doing {'worse' if rising else 'better'}"
    return f'"{cue}" is {EFFECT[label]} for a company'


def evidence_reasoning(text: str, label: str) -> str:
    """Why `text` moves its company's shares (positive/negative) or leaves them (neutral), from
    the text alone: its key clause quoted, then what that evidence means for the shares. The label
    is never the first words: a model reads the evidence before it gives the verdict."""
    clause = f'"{key_clause(text)}"'
    if label == "neutral":
        return f"{clause} {neutral_reason(text)}."
    direction = "supports the share price" if label == "positive" else "weighs on the share price"
    found = [cue for cue in cues(text, label) if content_words(cue)]
    if found:
        return f"{clause}: {_cue_effect(found[0], label)}, which {direction}."
    return f"{clause} reads as {EFFECT[label]} for the company on balance, which {direction}."


def passage_evidence(members: list[tuple[str, str]], label: str) -> str:
    """The reasoning of a passage of (text, label) sentences: the good and the bad news its
    sentences carry, then how they weigh against each other for the shares."""
    parts = []
    for side in ("positive", "negative"):
        side_cues = _unique([cue for text, member_label in members if member_label == side
                             for cue in (cues(text, side) or [key_clause(text)])[:1]])
        if side_cues:
            parts.append(f"{EFFECT[side]} ({_quoted(side_cues[:MAX_CUES])})")
    if not parts:
        return (f'"{key_clause(members[0][0])}" and the rest are plain facts with no gain or loss in them, '
                "so the passage leaves the price where it was.")
    weighing = {"positive": "on balance that supports the share price",
                "negative": "on balance that weighs on the share price",
                "neutral": "on balance the price has little reason to move"}
    if len(parts) == 2:
        return f"It mixes {parts[0]} with {parts[1]}: {weighing[label]}."
    return f"It carries {parts[0]} among plain facts: {weighing[label]}."
