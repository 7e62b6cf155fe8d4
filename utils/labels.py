"""The answer's sentiment as a class: what step 05 writes as a record's `label` and what eval
scores a model's answer as. One rule for both, so a fine-tune is measured by the rule it learnt."""
from __future__ import annotations

# positive if sentiment > t, negative if sentiment < -t, else neutral
DEFAULT_LABEL_THRESHOLD = 0.15


def sentiment_label(sentiment: float, threshold: float = DEFAULT_LABEL_THRESHOLD) -> str:
    if sentiment > threshold:
        return "positive"
    if sentiment < -threshold:
        return "negative"
    return "neutral"
