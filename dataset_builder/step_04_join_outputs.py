"""Step 04: join the outputs of steps 01–03 (whichever exist) into one CSV of Article, JSON,
Source. Text is NFC-normalised, smart quotes and dashes made plain; rows whose JSON is not a
valid SentimentResponse are dropped and counted per source. A row that step 03b gave a
reasoning (`<input>_explained.csv` beside its input) takes it in place of the templated one."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from dataset_builder.join import (JOINED_COLUMNS, configured_inputs, join_sources, log_summary,
                                  parse_input_flags)
from dataset_builder.labelled_csv import write_csv
from finsent.cli import config_from_args
from utils.cli import stage_parser
from utils.errors import cli_entry

log = logging.getLogger("step_04")


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument("--input", action="append", default=[], metavar="SOURCE=PATH",
                        help="a labelled CSV and its source name, repeatable; replaces the configured "
                             "tweets/financial_phrasebank/news outputs of steps 01–03")
    parser.add_argument("--output", help="joined CSV (default: dataset.step_04_csv)")
    args = parser.parse_args(argv)
    config = config_from_args(args, {"dataset.step_04_csv": args.output}).dataset
    inputs = parse_input_flags(args.input) or configured_inputs(config)

    rows, summaries = join_sources(inputs)
    write_csv(config.step_04_csv, JOINED_COLUMNS, rows)
    log_summary(summaries)
    log.info("%d rows from %d source(s) → %s", len(rows), len(summaries), config.step_04_csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
