"""Step 01: airline tweets (Kaggle Tweets.csv) → CSV of Article, JSON (a SentimentResponse):
positive 1.0 / neutral 0.0 / negative -1.0 (--graded-sentiment: × the confidence, rounded to 0.1),
confidence = airline_sentiment_confidence."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from dataset_builder.labelled_csv import add_graded_sentiment_flag, write_labelled_csv
from dataset_builder.tweets import process_tweets
from finsent.cli import config_from_args
from utils.cli import stage_parser
from utils.errors import cli_entry

log = logging.getLogger("step_01")


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument("--input", help="tweets CSV (default: dataset.tweets_csv)")
    parser.add_argument("--output", help="output CSV (default: dataset.step_01_csv)")
    parser.add_argument("--dedupe", action="store_true", default=None,
                        help="keep only the first tweet of each repeated text (dataset.tweets_dedupe)")
    add_graded_sentiment_flag(parser)
    args = parser.parse_args(argv)
    config = config_from_args(args, {"dataset.tweets_csv": args.input, "dataset.step_01_csv": args.output,
                                     "dataset.tweets_dedupe": args.dedupe,
                                     "dataset.graded_sentiment": args.graded_sentiment}).dataset

    rows = process_tweets(config.tweets_csv, dedupe=config.tweets_dedupe, graded=config.graded_sentiment)
    write_labelled_csv(config.step_01_csv, rows)
    log.info("%d tweets%s from %s → %s", len(rows), " (deduplicated)" if config.tweets_dedupe else "",
             config.tweets_csv, config.step_01_csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
