"""Run every model of `models_to_test` × `sample_size` iterations over the frozen news snapshot
and write `<sentiment_save_folder>/<model>/<TICKER>_<i>.json` in the original study's format.
A rerun skips complete files; --force redoes them."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from eval.backends import parse_model_entries
from eval.news import build_snapshot, load_snapshot, save_snapshot
from eval.sentiment_runner import run_models, stopped_error, summary_table, write_summary
from finsent.cli import config_from_args
from utils.cli import stage_parser
from utils.errors import FinsentError, cli_entry
from utils.io import check_writable


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = stage_parser(__doc__)
    parser.add_argument("--snapshot", help="news snapshot to reuse (default: eval.news_snapshot; "
                                           "fetched and frozen there if it does not exist)")
    parser.add_argument("--force", action="store_true", help="redo iterations whose files are complete")
    parser.add_argument("--sample-size", type=int, help="iterations per model (default: eval.sample_size)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = config_from_args(args, {"eval.sample_size": args.sample_size}).eval
    specs = parse_model_entries(config.models_to_test, config)
    if not specs:
        raise FinsentError("models_to_test is empty: name at least one model in the config")
    check_writable(config.sentiment_save_folder, folder=True)  # before hours of answers
    check_writable(config.generation_summary_file)
    snapshot_path = Path(args.snapshot or config.news_snapshot)
    if args.snapshot or snapshot_path.exists():
        snapshot = load_snapshot(snapshot_path)
    else:
        snapshot = build_snapshot(config)
        save_snapshot(snapshot, snapshot_path)
    print(f"{len(specs)} model(s) × {config.sample_size} iteration(s) × {len(snapshot.articles)} "
          f"{snapshot.ticker} articles from {snapshot_path}")
    summaries = run_models(specs, snapshot, config, force=args.force, progress=not args.no_progress)
    write_summary(summaries, config.generation_summary_file)
    print(summary_table(summaries))
    print(f"results in {config.sentiment_save_folder}/, summary in {config.generation_summary_file}")
    error = stopped_error(summaries)
    if error:
        raise error
    return 0


if __name__ == "__main__":
    sys.exit(main())
