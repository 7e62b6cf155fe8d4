"""Step 05: the joined rows as ShareGPT conversations in seeded, stratified, leak-free
train/validation/test splits, plus a dataset card.

A record is `{"conversations": [system, human, gpt], "source": ..., "label": ...}`
(utils.sharegpt_format): exactly what the fine-tune stage trains on and eval's
`evaluate_labelled.py` reads.
"""
from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from dataset_builder.join import JOINED_COLUMNS, invalid_reason
from dataset_builder.labelled_csv import response_json
from dataset_builder.text_normalise import text_key
from utils.errors import FinsentError
from utils.io import atomic_write_text, read_csv_rows
from utils.labels import sentiment_label
from utils.prompts import system_prompt
from utils.schema import SentimentResponse
from utils.sharegpt_format import SPLITS, sharegpt_record, split_file

LABELS = ("positive", "neutral", "negative")


@dataclass(frozen=True)
class Example:
    article: str
    answer: str   # the SentimentResponse as single-line JSON
    source: str
    label: str


def read_joined(path: Path, threshold: float) -> list[Example]:
    """Step 04's CSV; a row that is not valid is an error naming it (step 04 drops those)."""
    examples = []
    for line, row in read_csv_rows(path, JOINED_COLUMNS, "joined CSV (step 04's output)"):
        try:
            response = SentimentResponse.model_validate_json(row["JSON"])
        except ValidationError as exc:
            raise FinsentError(f"{path}: line {line}: JSON column: {invalid_reason(exc)}; "
                               "rerun step 04, which drops invalid rows") from None
        if not row["Article"].strip() or not row["Source"].strip():
            raise FinsentError(f"{path}: line {line}: empty Article or Source")
        examples.append(Example(row["Article"], response_json(response), row["Source"].strip(),
                                sentiment_label(response.sentiment, threshold)))
    return examples


def assign_splits(examples: list[Example], fractions: dict[str, float], seed: int) -> dict[str, list[Example]]:
    """Seeded splits, stratified by (source, label), with every text (after normalisation) in
    one split only: rows sharing a text form a group that moves as a whole.

    Within each stratum the groups are shuffled and each goes to the split furthest below its
    share of the rows placed so far, so every stratum follows the fractions closely.
    """
    groups: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        groups[text_key(example.article)].append(example)
    strata: dict[tuple[str, str], list[str]] = defaultdict(list)
    for key, members in groups.items():
        strata[(members[0].source, members[0].label)].append(key)

    rng = random.Random(seed)
    splits: dict[str, list[Example]] = {name: [] for name in SPLITS}
    for stratum in sorted(strata):
        keys = strata[stratum]
        rng.shuffle(keys)
        placed, total = Counter(), 0
        for key in keys:
            total += len(groups[key])
            split = max(SPLITS, key=lambda name: fractions[name] * total - placed[name])
            placed[split] += len(groups[key])
            splits[split].extend(groups[key])
    for members in splits.values():
        rng.shuffle(members)
    return splits


def capped_counts(counts: dict[str, int], shares: dict[str, float]) -> dict[str, int]:
    """Rows each source keeps so that no source of `shares` is over its share of the total kept:
    the sources under their share keep all; the others are cut to share × the new total."""
    capped = {source for source in shares if counts.get(source)}
    while capped:
        free = sum(n for source, n in counts.items() if source not in capped)
        total = free / (1 - sum(shares[source] for source in capped))
        under = {source for source in capped if counts[source] <= shares[source] * total}
        if not under:
            return {source: (int(shares[source] * total) if source in capped else n) for source, n in counts.items()}
        capped -= under
    return dict(counts)


def cap_train_shares(splits: dict[str, list[Example]], shares: dict[str, float], seed: int) -> dict[str, tuple[int, int]]:
    """Cuts each source of `shares` (dataset.train_share_max) in the train split to its share, a
    seeded draw within each label that keeps the source's label proportions; validation and test
    keep every row, so the scores still cover the whole source. Returns {source: (before, after)}
    for the sources cut."""
    train = splits["train"]
    counts = Counter(example.source for example in train)
    unknown = sorted(set(shares) - set(counts))
    if unknown:
        raise FinsentError(f"dataset.train_share_max: no train rows of source(s) {', '.join(unknown)} "
                           f"(sources: {', '.join(sorted(counts))})")
    keep = capped_counts(dict(counts), shares)
    rng = random.Random(f"{seed}-train-share")
    kept, cut = [], {}
    for source in sorted(counts):
        members = [example for example in train if example.source == source]
        if keep[source] >= len(members):
            kept.extend(members)
            continue
        by_label = defaultdict(list)
        for example in members:
            by_label[example.label].append(example)
        for label in sorted(by_label):
            kept.extend(rng.sample(by_label[label], round(len(by_label[label]) * keep[source] / len(members))))
        cut[source] = (len(members), sum(example.source == source for example in kept))
    rng.shuffle(kept)
    splits["train"] = kept
    return cut


def _table(title: str, rows: list[str], counts: Counter, row_name: str) -> str:
    lines = [f"### {title}", "", f"| {row_name} | " + " | ".join(SPLITS) + " | total |",
             "|---" * (len(SPLITS) + 2) + "|"]
    for row in rows:
        cells = [counts[(row, split)] for split in SPLITS]
        lines.append(f"| {row} | " + " | ".join(f"{c:,}" for c in cells) + f" | {sum(cells):,} |")
    totals = [sum(counts[(row, split)] for row in rows) for split in SPLITS]
    lines.append("| **all** | " + " | ".join(f"{c:,}" for c in totals) + f" | {sum(totals):,} |")
    return "\n".join(lines)


def dataset_card(splits: dict[str, list[Example]], fractions: dict[str, float], seed: int,
                 threshold: float) -> str:
    by_source, by_label, source_label = Counter(), Counter(), Counter()
    for split, members in splits.items():
        for example in members:
            by_source[(example.source, split)] += 1
            by_label[(example.label, split)] += 1
            source_label[(f"{example.source} / {example.label}", split)] += 1
    sources = sorted({source for source, _ in by_source})
    pairs = sorted({pair for pair, _ in source_label})
    data_files = "\n".join(f"  - split: {split}\n    path: {split}.jsonl" for split in SPLITS)
    share = ", ".join(f"{split} {fractions[split]:g}" for split in SPLITS)
    return f"""---
configs:
- config_name: default
  data_files:
{data_files}
language:
- en
task_categories:
- text-classification
tags:
- finance
- sentiment
- sharegpt
license: other
---

# finsent financial-sentiment dataset

ShareGPT conversations built by finsent's dataset builder (steps 01–05): a system prompt,
a text (a tweet, a Financial PhraseBank sentence or a news article) and the answer as one
JSON object `{{"reasoning": str, "sentiment": float in [-1, 1], "confidence": float in [0, 1]}}`.

Each record: `{{"conversations": [{{"from": "system", ...}}, {{"from": "human", ...}},
{{"from": "gpt", ...}}], "source": ..., "label": ...}}`, where `label` is `positive` if
sentiment > {threshold:g}, `negative` if sentiment < -{threshold:g}, else `neutral`.

Splits: {share}, seed {seed}; stratified by source and label, and leak-free:
texts that are equal after normalisation (NFC, plain quotes and dashes, case and whitespace
folded) are always in the same split.

The sources keep their own licences: Twitter US Airline Sentiment (CC BY-NC-SA 4.0),
Financial PhraseBank v1.0 (CC BY-NC-SA 3.0); news texts belong to their publishers; the
synthetic corpus (source `synthetic`) was written for finsent and shares the project's licence.

## Counts

{_table("By source", sources, by_source, "source")}

{_table("By label", list(LABELS), by_label, "label")}

{_table("By source and label", pairs, source_label, "source / label")}
"""


def write_sharegpt(folder: Path, splits: dict[str, list[Example]], card: str) -> dict[str, Path]:
    """`<split>.jsonl` per split and README.md (the card), each written atomically."""
    system = system_prompt()
    paths = {}
    for split, members in splits.items():
        paths[split] = split_file(folder, split)
        atomic_write_text(paths[split], "".join(
            json.dumps(sharegpt_record(system, example.article, example.answer, example.source, example.label),
                       ensure_ascii=False) + "\n" for example in members))
    atomic_write_text(Path(folder) / "README.md", card)
    return paths
