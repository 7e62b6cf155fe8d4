"""Step 05: step 04's joined CSV → ShareGPT JSONL (train/validation/test.jsonl) and a dataset
card (README.md): seeded splits stratified by source and label, no text in two splits.
--passages N adds N pseudo-articles of a few sentences each to train (and in proportion to
validation and test), drawn within each split (dataset.passages, passage_source, passage_sentences).
dataset.train_share_max caps a source's share of train (e.g. {tweets: 0.25}).
--push-to-hub REPO uploads the folder (token from HF_TOKEN or .env)."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from dataset_builder.hub import push_folder
from dataset_builder.passages import add_passages
from dataset_builder.sharegpt import assign_splits, cap_train_shares, dataset_card, read_joined, write_sharegpt
from finsent.cli import config_from_args
from utils.cli import stage_parser
from utils.errors import cli_entry

log = logging.getLogger("step_05")


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument("--input", help="joined CSV (default: dataset.step_04_csv)")
    parser.add_argument("--output", help="output folder (default: dataset.step_05_dir)")
    parser.add_argument("--seed", type=int, help="split seed (default: dataset.seed)")
    parser.add_argument("--passages", type=int, help="pseudo-articles added to the train split (default: dataset.passages)")
    parser.add_argument("--push-to-hub", metavar="REPO", help="also upload to this Hugging Face dataset repo")
    args = parser.parse_args(argv)
    config = config_from_args(args, {"dataset.step_04_csv": args.input, "dataset.step_05_dir": args.output,
                                     "dataset.seed": args.seed, "dataset.passages": args.passages}).dataset
    fractions = config.split_fractions.model_dump()

    examples = read_joined(config.step_04_csv, config.label_threshold)
    splits = assign_splits(examples, fractions, config.seed)
    if config.passages:
        added = add_passages(splits, config.passage_source, config.passages, config.passage_sentences,
                             fractions, config.seed, config.label_threshold)
        log.info("passages of %s: %s", config.passage_source, ", ".join(f"{n} {k:,}" for n, k in added.items()))
    for source, (before, after) in cap_train_shares(splits, config.train_share_max, config.seed).items():
        log.info("train rows of %s cut to dataset.train_share_max %g: %s → %s", source,
                 config.train_share_max[source], f"{before:,}", f"{after:,}")
    card = dataset_card(splits, fractions, config.seed, config.label_threshold)
    write_sharegpt(config.step_05_dir, splits, card)
    log.info("%s → %s", ", ".join(f"{name} {len(rows):,}" for name, rows in splits.items()), config.step_05_dir)
    for name in (name for name, rows in splits.items() if not rows):
        log.warning("the %s split is empty: too few rows for the configured split_fractions", name)
    if args.push_to_hub:
        log.info("pushed to %s", push_folder(config.step_05_dir, args.push_to_hub, config.hub_private))
    return 0


if __name__ == "__main__":
    sys.exit(main())
