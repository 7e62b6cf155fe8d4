"""Assembles the synthetic corpus from its written parts (JSONL files of text, sentiment,
confidence, reasoning, style, topic) into one CSV: every row a valid answer whose reasoning states
nothing its text does not, no text twice or nearly twice (word 3-gram Jaccard ≥ 0.6), within the
corpus or against the sets named with --against (Financial PhraseBank's folder, the tweets CSV,
the headlines, the social posts); with --second-labelling, the rows a blind second labelling of a
sample disagrees on are dropped too. Prints what it dropped and the counts by label and style."""
from __future__ import annotations

import logging
import sys
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from dataset_builder.corpus import (CORPUS_COLUMNS, checked_rows, read_part, reference_texts,
                                    second_labelling_disagreements)
from dataset_builder.labelled_csv import write_csv
from finsent.cli import config_from_args
from utils.cli import stage_parser
from utils.errors import FinsentError, cli_entry
from utils.io import read_csv_rows
from utils.labels import sentiment_label

log = logging.getLogger("build_corpus")


def second_labels(path: Path) -> list[tuple[str, str]]:
    rows = read_csv_rows(path, ("text", "label"), "second labelling CSV")
    bad = [line for line, row in rows if row["label"] not in ("positive", "neutral", "negative")]
    if bad:
        raise FinsentError(f"{path}: line {bad[0]}: label must be positive, neutral or negative")
    return [(row["text"], row["label"]) for _, row in rows]


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument("--parts", type=Path, required=True, help="folder of the written *.jsonl parts")
    parser.add_argument("--output", type=Path, required=True, help="the corpus CSV to write")
    parser.add_argument("--against", action="append", default=[], metavar="NAME=PATH",
                        help="a set the corpus must not repeat (repeatable)")
    parser.add_argument("--second-labelling", type=Path, metavar="CSV",
                        help="a blind second labelling (text, label) of a sample: its agreement is printed, "
                             "the rows it disagrees on are dropped")
    parser.add_argument("--threshold", type=float, help="the label threshold for the counts (dataset.label_threshold)")
    args = parser.parse_args(argv)
    threshold = config_from_args(args, {"dataset.label_threshold": args.threshold}).dataset.label_threshold
    parts = sorted(args.parts.glob("*.jsonl"))
    if not parts:
        raise FinsentError(f"--parts: no *.jsonl file in {args.parts}")
    against = {}
    for value in args.against:
        name, sep, path = value.partition("=")
        if not sep or not Path(path).exists():
            raise FinsentError(f"--against expects NAME=PATH of an existing file or folder, got {value!r}")
        against[name] = reference_texts(Path(path))
    rows = [row for part in parts for row in read_part(part)]
    kept, dropped = checked_rows(rows, against)
    if args.second_labelling:
        second = {text: label for text, label in second_labels(args.second_labelling)}
        agreed, disagreed = second_labelling_disagreements(kept, second, threshold)
        compared = agreed + len(disagreed)
        print(f"second labelling: {agreed} of {compared} rows agree ({agreed / compared:.1%}); "
              f"the {len(disagreed)} others are dropped")
        dropped += disagreed.values()
        kept = [row for row in kept if row["where"] not in disagreed]
    for line in dropped:
        print(f"dropped {line}")
    write_csv(args.output, CORPUS_COLUMNS, ([str(row[key]) for key in CORPUS_COLUMNS] for row in kept))
    labels = Counter(sentiment_label(float(row["sentiment"]), threshold) for row in kept)
    styles = Counter(row["style"].split("/")[0].strip() for row in kept)
    print(f"{len(kept):,} of {len(rows):,} rows → {args.output} ({len(dropped)} dropped); "
          + ", ".join(f"{label} {n:,}" for label, n in sorted(labels.items())))
    print("styles: " + ", ".join(f"{style} {n:,}" for style, n in styles.most_common()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
