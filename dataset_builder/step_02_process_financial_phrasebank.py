"""Step 02: Financial PhraseBank folder (ISO-8859-1, sentence@label) → CSV of Article, JSON.
Each sentence once at its highest agreement level (confidence AllAgree 1.0, 75 → 0.75,
66 → 0.66, 50 → 0.5), or --original-concat for the original's four concatenated files.
Sentiment: positive 1.0 / neutral 0.0 / negative -1.0 (--graded-sentiment: × the confidence,
rounded to 0.1)."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from dataset_builder.labelled_csv import add_graded_sentiment_flag, write_labelled_csv
from dataset_builder.phrasebank import process_phrasebank
from finsent.cli import config_from_args
from utils.cli import stage_parser
from utils.errors import cli_entry

log = logging.getLogger("step_02")


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument("--input", help="folder with Sentences_*Agree.txt (default: dataset.phrasebank_dir)")
    parser.add_argument("--output", help="output CSV (default: dataset.step_02_csv)")
    parser.add_argument("--original-concat", action="store_true", default=None,
                        help="the original's concatenation: every sentence once per file it is in "
                             "(14,780 rows; leaks across splits) (dataset.phrasebank_original_concat)")
    add_graded_sentiment_flag(parser)
    args = parser.parse_args(argv)
    config = config_from_args(args, {"dataset.phrasebank_dir": args.input,
                                     "dataset.step_02_csv": args.output,
                                     "dataset.phrasebank_original_concat": args.original_concat,
                                     "dataset.graded_sentiment": args.graded_sentiment}).dataset

    rows = process_phrasebank(config.phrasebank_dir, encoding=config.phrasebank_encoding,
                              original_concat=config.phrasebank_original_concat,
                              graded=config.graded_sentiment)
    write_labelled_csv(config.step_02_csv, rows)
    log.info("%d sentences%s from %s → %s", len(rows),
             " (original concatenation)" if config.phrasebank_original_concat else "",
             config.phrasebank_dir, config.step_02_csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
