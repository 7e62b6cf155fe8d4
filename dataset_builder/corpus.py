"""The synthetic financial corpus (examples/corpus/): short texts written for finsent, each with
the answer a reader would give it (sentiment, confidence, a reasoning that explains why the text
moves the stock), its style and topic. Step 04 takes it as a source of its own: a CSV with these
columns instead of steps 01–03's `Article, JSON`.

Also the checks that keep it honest (examples/corpus/README.md): no text twice, nor nearly twice
(word 3-gram Jaccard), within the corpus or against the texts it must not resemble."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from pydantic import ValidationError

from dataset_builder.phrasebank import AGREEMENT_LEVELS, read_sentences
from dataset_builder.text_normalise import text_key
from utils.errors import FinsentError
from utils.io import json_lines, read_csv_rows
from utils.schema import SentimentResponse

CORPUS_COLUMNS = ("text", "sentiment", "confidence", "reasoning", "style", "topic")
NEAR_DUPLICATE_JACCARD = 0.6  # word 3-gram overlap above which two texts count as one
_TOKEN = re.compile(r"[a-z0-9$%]+")


@dataclass(frozen=True)
class CorpusRow:
    line: int
    text: str
    response: SentimentResponse
    style: str
    topic: str


def is_corpus_csv(path: Path) -> bool:
    """Whether `path` is a CSV with the corpus's columns (its first line read only)."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            header = {name.strip() for name in handle.readline().strip().split(",")}
    except OSError:
        return False
    return set(CORPUS_COLUMNS) <= header


def read_corpus(path: Path) -> list[CorpusRow]:
    """Every row of a corpus CSV; a row that is not a valid answer is an error naming its line."""
    rows = []
    for line, row in read_csv_rows(path, CORPUS_COLUMNS, "corpus CSV"):
        try:
            response = SentimentResponse(reasoning=row["reasoning"], sentiment=float(row["sentiment"]),
                                         confidence=float(row["confidence"]))
        except (ValueError, ValidationError) as exc:
            reason = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            raise FinsentError(f"{path}: line {line}: not a valid answer: {reason}") from None
        if not row["text"].strip():
            raise FinsentError(f"{path}: line {line}: empty text")
        rows.append(CorpusRow(line, row["text"].strip(), response, row["style"].strip(), row["topic"].strip()))
    return rows


def shingles(text: str) -> frozenset[tuple[str, ...]]:
    """The word 3-grams of `text` (lower case, punctuation dropped); a text of fewer than three
    words is its words."""
    words = _TOKEN.findall(text_key(text))
    if len(words) < 3:
        return frozenset([tuple(words)])
    return frozenset(zip(words, words[1:], words[2:]))


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def near_duplicates(texts: list[str], against: Iterable[str] = (),
                    threshold: float = NEAR_DUPLICATE_JACCARD) -> list[tuple[int, str]]:
    """(index in `texts`, what it repeats) for every text equal (after normalisation) or nearly
    equal to an earlier one of `texts` or to any of `against`; the first of a group is kept."""
    kept: list[tuple[frozenset, str]] = []
    index: dict[tuple[str, ...], list[int]] = {}  # shingle → positions in kept: candidates only
    keys: dict[str, str] = {}

    def add(text: str) -> None:
        grams = shingles(text)
        for gram in grams:
            index.setdefault(gram, []).append(len(kept))
        kept.append((grams, text))
        keys.setdefault(text_key(text), text)

    def match(text: str) -> str | None:
        if (key := text_key(text)) in keys:
            return keys[key]
        grams = shingles(text)
        candidates = {position for gram in grams for position in index.get(gram, ())}
        for position in candidates:
            if jaccard(grams, kept[position][0]) >= threshold:
                return kept[position][1]
        return None

    for text in against:
        add(text)
    repeats = []
    for number, text in enumerate(texts):
        if (earlier := match(text)) is not None:
            repeats.append((number, earlier))
        else:
            add(text)
    return repeats


# --- assembling the corpus from its written parts -------------------------------------------

def read_part(path: Path) -> list[dict]:
    """One written part: a JSON object a line with CORPUS_COLUMNS; a bad line is an error naming it."""
    rows = []
    for number, row in json_lines(path):
        missing = ([key for key in CORPUS_COLUMNS if key not in row] if isinstance(row, dict)
                   else list(CORPUS_COLUMNS))
        if missing:
            raise FinsentError(f"{path}: line {number}: missing key(s) {', '.join(missing)}")
        rows.append({key: row[key] for key in CORPUS_COLUMNS} | {"where": f"{path.name}:{number}"})
    if not rows:
        raise FinsentError(f"{path}: empty (expected one JSON object a line)")
    return rows


def reference_texts(path: Path) -> list[str]:
    """The texts of a set the corpus must not repeat: Financial PhraseBank's `sentence@label`
    files (a folder or one file, ISO-8859-1) or a CSV/JSONL with a `text` (or `Article`) field.
    A file that cannot be read, holds no texts or is not of its form is one line naming it."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("Sentences_*.txt"))
        if not files:
            raise FinsentError(f"{path}: no Financial PhraseBank file (Sentences_*.txt) in the folder")
        return [text for file in files for text in reference_texts(file)]
    if path.suffix == ".txt":  # the level only tags the sentences; the texts are what is compared
        return [sentence.text for sentence in read_sentences(path, AGREEMENT_LEVELS[-1], "iso-8859-1")]
    if path.suffix == ".jsonl":
        texts = []
        for number, record in json_lines(path):
            text = (record.get("text") or record.get("Article")) if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise FinsentError(f"{path}: line {number}: no 'text' (or 'Article') string")
            texts.append(text)
        if not texts:
            raise FinsentError(f"{path}: empty (expected one JSON object a line with a 'text')")
        return texts
    return [row["text"] for _, row in read_csv_rows(path, ("text",), "--against file", aliases={"Article": "text"})]


def checked_rows(rows: list[dict], against: dict[str, list[str]]) -> tuple[list[dict], list[str]]:
    """The rows that are valid answers, state nothing their text does not (invented_claims), and
    repeat no earlier row nor any text of `against` (name → texts); and a line for each row dropped."""
    from utils.grounding import invented_claims

    kept, dropped = [], []
    for row in rows:
        try:
            SentimentResponse(reasoning=row["reasoning"], sentiment=float(row["sentiment"]),
                              confidence=float(row["confidence"]))
        except (TypeError, ValueError, ValidationError) as exc:
            dropped.append(f"{row['where']}: not a valid answer ({str(exc).splitlines()[0]})")
            continue
        if claims := invented_claims(row["reasoning"], row["text"]):
            dropped.append(f"{row['where']}: the reasoning states {', '.join(claims)} that the text does not")
            continue
        kept.append(row)
    reference = [(name, text) for name, texts in against.items() for text in texts]
    repeats = near_duplicates([row["text"] for row in kept], [text for _, text in reference])
    origin = {text: name for name, text in reference}
    repeated = {number for number, _ in repeats}
    for number, earlier in repeats:
        dropped.append(f"{kept[number]['where']}: repeats {origin.get(earlier, 'the corpus')}: {earlier[:80]!r}")
    return [row for number, row in enumerate(kept) if number not in repeated], dropped


def second_labelling_disagreements(rows: list[dict], second: dict[str, str],
                                   threshold: float) -> tuple[int, dict[str, str]]:
    """A blind second labelling (text → label) against the rows' labels: how many of the texts it
    labelled it agrees on, and {row's `where`: why} for each row it disagrees on (dropped)."""
    from utils.labels import sentiment_label

    agreed, dropped = 0, {}
    for row in rows:
        if (other := second.get(row["text"])) is None:
            continue
        first = sentiment_label(float(row["sentiment"]), threshold)
        if first == other:
            agreed += 1
        else:
            dropped[row["where"]] = f"{row['where']}: the second labelling says {other}, the first {first}"
    return agreed, dropped
