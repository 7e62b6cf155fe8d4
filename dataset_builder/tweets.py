"""Step 01: the Twitter US Airline Sentiment CSV (Kaggle) as labelled texts."""
from __future__ import annotations

from pathlib import Path

from dataset_builder.evidence import evidence_reasoning
from dataset_builder.labelled_csv import LabelledText, annotated_sentiment
from utils.io import read_csv_rows
from utils.errors import FinsentError
from utils.schema import SentimentResponse

TWEET_COLUMNS = ("text", "airline_sentiment", "airline_sentiment_confidence")
TWEET_SENTIMENT = {"positive": 1.0, "neutral": 0.0, "negative": -1.0}


def _confidence(value: str, where: str) -> float:
    try:
        confidence = float(value)
    except ValueError:
        raise FinsentError(f"{where}: airline_sentiment_confidence {value!r} is not a number") from None
    if not 0.0 <= confidence <= 1.0:
        raise FinsentError(f"{where}: airline_sentiment_confidence {confidence} is outside [0, 1]")
    return confidence


def process_tweets(path: Path, dedupe: bool = False, graded: bool = False) -> list[LabelledText]:
    """Every tweet as a labelled text (a repeated text stays a separate tweet unless `dedupe`,
    which keeps the first; `graded`: see annotated_sentiment). The reasoning names the tweet's own
    words (dataset_builder.evidence), never the annotators' reason. Unknown label, bad confidence
    or empty text → error naming the row."""
    labelled: list[LabelledText] = []
    seen: set[str] = set()
    for line, row in read_csv_rows(path, TWEET_COLUMNS, "tweets CSV"):
        where = f"{path}: line {line}"
        text, label = row["text"], row["airline_sentiment"].strip().lower()
        if label not in TWEET_SENTIMENT:
            raise FinsentError(f"{where}: unknown airline_sentiment {row['airline_sentiment']!r} "
                               f"(expected one of {', '.join(TWEET_SENTIMENT)})")
        if not text.strip():
            raise FinsentError(f"{where}: empty text")
        if dedupe and text in seen:
            continue
        seen.add(text)
        confidence = _confidence(row["airline_sentiment_confidence"], where)
        response = SentimentResponse(reasoning=evidence_reasoning(text, label),
                                     sentiment=annotated_sentiment(TWEET_SENTIMENT[label], confidence, graded),
                                     confidence=confidence)
        labelled.append(LabelledText(text, response))
    return labelled
