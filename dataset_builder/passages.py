"""Step 05's optional passages: pseudo-articles of a few sentences of one source, drawn within one
split, whose answer is the mean of theirs. The human-labelled sources hold single sentences and
tweets; the news a model is then asked about mixes good and bad in one text. A passage teaches it
to weigh such a text to a middle value instead of picking one side."""
from __future__ import annotations

import json
import random
from statistics import fmean

from dataset_builder.evidence import passage_evidence
from dataset_builder.labelled_csv import response_json
from dataset_builder.sharegpt import Example
from utils.errors import FinsentError
from utils.labels import sentiment_label
from utils.schema import SentimentResponse


def make_passage(members: list[Example], source: str, threshold: float) -> Example:
    answers = [json.loads(member.answer) for member in members]
    sentiment = round(fmean(answer["sentiment"] for answer in answers), 1)
    label = sentiment_label(sentiment, threshold)
    response = SentimentResponse(
        reasoning=passage_evidence([(member.article, member.label) for member in members], label),
        sentiment=sentiment, confidence=round(fmean(answer["confidence"] for answer in answers), 2))
    return Example(" ".join(member.article for member in members), response_json(response),
                   f"{source}_passages", label)


def add_passages(splits: dict[str, list[Example]], source: str, train_count: int,
                 sentences: tuple[int, int], fractions: dict[str, float], seed: int,
                 threshold: float) -> dict[str, int]:
    """Adds `train_count` passages to train and as many, in proportion to the split fractions,
    to validation and test; each passage is `sentences` (min, max) rows of `source` from its own
    split, so no text crosses splits. Returns the counts added per split."""
    if not fractions["train"]:
        raise FinsentError("dataset.passages: the train split's fraction is 0")
    rng = random.Random(f"{seed}-passages")
    low, high = sentences
    added = {}
    for split, members in splits.items():
        count = round(train_count * fractions[split] / fractions["train"])
        pool = [example for example in members if example.source == source]
        if count and len(pool) < high:
            raise FinsentError(f"dataset.passage_source: the {split} split has {len(pool)} rows of source "
                               f"{source!r}, fewer than the {high} a passage may take")
        passages = [make_passage(rng.sample(pool, rng.randint(low, high)), source, threshold)
                    for _ in range(count)]
        members.extend(passages)
        rng.shuffle(members)
        added[split] = len(passages)
    return added
