"""Step 02: the Financial PhraseBank folder (four nested `sentence@label` files) as labelled texts."""
from __future__ import annotations

import codecs
import logging
from dataclasses import dataclass
from pathlib import Path

from dataset_builder.evidence import evidence_reasoning
from dataset_builder.labelled_csv import LabelledText, annotated_sentiment
from utils.errors import FinsentError
from utils.io import read_text_file
from utils.phrasebank_files import AGREEMENTS, level_file
from utils.schema import SentimentResponse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgreementLevel:
    name: str          # file Sentences_<name>.txt (see utils.phrasebank_files.level_file)
    confidence: float


# Highest agreement first: a sentence is kept at the first level it appears in.
AGREEMENT_LEVELS = tuple(AgreementLevel(name, confidence)
                         for name, confidence in zip(AGREEMENTS, (1.0, 0.75, 0.66, 0.5), strict=True))
PHRASEBANK_SENTIMENT = {"positive": 1.0, "neutral": 0.0, "negative": -1.0}


@dataclass(frozen=True)
class Sentence:
    text: str
    label: str
    level: AgreementLevel
    where: str  # file:line, for logs


def _resaved_as_utf8(path: Path, encoding: str) -> bool:
    """ISO-8859-1 decodes any bytes, so a copy re-saved as UTF-8 would silently turn 'ä' into
    'Ã¤'. The real files hold bytes that are not valid UTF-8, so valid non-ASCII UTF-8 means
    the file was converted."""
    if codecs.lookup(encoding).name != "iso8859-1":
        return False
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not raw.isascii()


def read_level(folder: Path, level: AgreementLevel, encoding: str) -> list[Sentence]:
    return read_sentences(level_file(folder, level.name), level, encoding)


def read_sentences(path: Path, level: AgreementLevel, encoding: str) -> list[Sentence]:
    """The `sentence@label` lines of one Financial PhraseBank file; a file that is empty, not
    `encoding` text or has a line of another form is one line naming it."""
    text = read_text_file(path, encoding, "Financial PhraseBank file")
    if "\x00" in text:
        raise FinsentError(f"{path}: contains NUL bytes: not {encoding} text (UTF-16?)")
    if _resaved_as_utf8(path, encoding):
        raise FinsentError(f"{path}: the file is UTF-8, not {encoding}; "
                           "set dataset.phrasebank_encoding: utf-8 to read it")
    sentences = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}: line {number}"
        sentence, sep, label = line.rpartition("@")
        label = label.strip().lower()
        if not sep or not sentence.strip():
            raise FinsentError(f"{where}: expected 'sentence@label', got {line[:60]!r}")
        if label not in PHRASEBANK_SENTIMENT:
            raise FinsentError(f"{where}: unknown label {label!r} "
                               f"(expected one of {', '.join(PHRASEBANK_SENTIMENT)})")
        sentences.append(Sentence(sentence.strip(), label, level, where))
    return sentences


def _labelled(sentence: Sentence, graded: bool) -> LabelledText:
    return LabelledText(sentence.text, SentimentResponse(
        reasoning=evidence_reasoning(sentence.text, sentence.label),
        sentiment=annotated_sentiment(PHRASEBANK_SENTIMENT[sentence.label], sentence.level.confidence, graded),
        confidence=sentence.level.confidence))


def process_phrasebank(folder: Path, encoding: str = "iso-8859-1", original_concat: bool = False,
                       graded: bool = False) -> list[LabelledText]:
    """Each sentence once, at its highest agreement level (default), or the original's
    concatenation of all four files (each sentence up to four times); `graded`: see
    annotated_sentiment."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FinsentError(f"Financial PhraseBank folder not found: {folder}")
    levels = [read_level(folder, level, encoding) for level in AGREEMENT_LEVELS]
    if original_concat:
        return [_labelled(s, graded) for sentences in levels for s in sentences]
    kept: dict[str, Sentence] = {}
    for sentences in levels:
        for sentence in sentences:
            first = kept.setdefault(sentence.text, sentence)
            if first.label != sentence.label:
                log.warning("two labels for one sentence: kept %s@%s (%s), dropped %s@%s (%s): %.70s",
                            first.level.name, first.label, first.where,
                            sentence.level.name, sentence.label, sentence.where, sentence.text)
    return [_labelled(s, graded) for s in kept.values()]
