"""The answer's sentiment as a class: what step 05 writes as a record's `label` and what eval
scores a model's answer as. One rule for both, so a fine-tune is measured by the rule it learnt."""
from __future__ import annotations

LABELS = ("negative", "neutral", "positive")  # the classes, in the order every table lists them

# positive if sentiment > t, negative if sentiment < -t, else neutral
DEFAULT_LABEL_THRESHOLD = 0.15


def sentiment_label(sentiment: float, threshold: float = DEFAULT_LABEL_THRESHOLD) -> str:
    if sentiment > threshold:
        return "positive"
    if sentiment < -threshold:
        return "negative"
    return "neutral"


def to_class(sentiment: float | None, threshold: float) -> str:
    """An answer's class by the rule above; "invalid" where it did not parse (no sentiment)."""
    return "invalid" if sentiment is None else sentiment_label(sentiment, threshold)
