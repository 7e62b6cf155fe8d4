"""Freeze the ticker's recent Yahoo Finance news into one snapshot JSON, so that every model
and iteration of eval/generate_model_sentiments.py judges the same articles."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from eval.news import build_snapshot, save_snapshot
from finsent.cli import config_from_args
from utils.cli import stage_parser
from utils.errors import cli_entry
from utils.io import check_writable

log = logging.getLogger("fetch_news")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = stage_parser(__doc__)
    parser.add_argument("--ticker", help="ticker symbol (default: eval.ticker_symbol)")
    parser.add_argument("--output", help="snapshot file to write (default: eval.news_snapshot)")
    parser.add_argument("--feed-url", help="RSS feed URL; {ticker} is filled in (default: eval.news_feed_url)")
    parser.add_argument("--max-age", type=float, help="days (default: eval.max_news_age)")
    parser.add_argument("--max-items", type=int, help="articles at most (default: eval.max_news_items)")
    return parser.parse_args(argv)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = config_from_args(args, {"eval.ticker_symbol": args.ticker, "eval.news_snapshot": args.output,
                                     "eval.news_feed_url": args.feed_url, "eval.max_news_age": args.max_age,
                                     "eval.max_news_items": args.max_items}).eval
    check_writable(config.news_snapshot)  # before the fetching
    snapshot = build_snapshot(config)
    save_snapshot(snapshot, config.news_snapshot)
    print(f"{len(snapshot.articles)} articles ({len(snapshot.skipped)} skipped) about {snapshot.ticker} "
          f"frozen in {config.news_snapshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
