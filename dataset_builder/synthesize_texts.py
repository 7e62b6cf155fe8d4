"""Step 03's generation mode: the configured providers (dataset.labeller) write --count new short
financial texts over the grid of dataset.synthesis (style × topic × sentiment × strength), each
with its answer, validated (a text no longer than max_chars, the answer schema, the sentiment the
cell asked for; re-asked with the reason, then recorded as failed). Crash-safe and resumable as
labelling is: one record per text in the results JSONL (the cache a rerun continues; kill -9
loses at most the requests in flight), --retry-failed, --batch. The texts are written as a corpus
CSV (exact and near duplicates dropped) that step 04 takes as its source "synthetic".

  python dataset_builder/synthesize_texts.py --count 300 --config config.yaml
  python dataset_builder/step_04_join_outputs.py --config config.yaml --set dataset.corpus_csv=data/step_03_synthetic.csv"""
from __future__ import annotations

import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from dataset_builder.corpus import reference_texts
from dataset_builder.label_store import ResultStore
from dataset_builder.synthesis import corpus_rows, cost_estimate, grid_cells, synthesis_messages, synthesis_task, \
    write_corpus
from finsent.cli import config_from_args
from utils.cli import stage_parser
from utils.errors import FinsentError, cli_entry, quiet_client_logs
from utils.io import check_writable


def parse_args(argv=None):
    parser = stage_parser(__doc__)
    parser.add_argument("--count", type=int, required=True, help="texts to write in all (the grid's cells in turn)")
    parser.add_argument("--results", help="append-only JSONL of records, the cache (dataset.synthesis.results)")
    parser.add_argument("--output", help="corpus CSV for step 04 (dataset.synthesis.output_csv)")
    parser.add_argument("--against", action="append", default=[], metavar="PATH",
                        help="texts the new ones must not repeat: Financial PhraseBank's folder, a CSV/JSONL "
                             "with a text column (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="show the first prompt and the cost; call nothing")
    parser.add_argument("--retry-failed", action="store_true", help="ask again for texts recorded as failed")
    parser.add_argument("--batch", action="store_true", help="through each provider's Batch API (half the price)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request")
    return parser.parse_args(argv)


@cli_entry
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.count < 1:
        raise FinsentError(f"--count {args.count}: at least 1")
    config = config_from_args(args, {"dataset.synthesis.results": args.results,
                                     "dataset.synthesis.output_csv": args.output}).dataset
    against = []
    for path in map(Path, args.against):
        if not path.exists():
            raise FinsentError(f"--against {path}: not found")
        against += reference_texts(path)
    if not args.dry_run:  # before minutes of requests whose texts go there
        check_writable(config.synthesis.results)
        check_writable(config.synthesis.output_csv)
    cells = grid_cells(config.synthesis, args.count, config.label_threshold)
    store = ResultStore(config.synthesis.results)
    todo = store.pending(cells, retry_failed=args.retry_failed)
    print(f"{len(cells)} texts over the grid: {len(cells) - len(todo)} already recorded in "
          f"{config.synthesis.results}, {len(todo)} to write; cost:")
    print("\n".join(cost_estimate(todo, config.labeller.providers, config.labeller.max_tokens)))
    if args.dry_run:
        if todo:
            print("first prompt:\n" + json.dumps(synthesis_messages(todo[0]), indent=2, ensure_ascii=False))
        return 0
    from dataset_builder.batch_labeller import label_all  # the SDKs take seconds to import
    quiet_client_logs(args.verbose)
    try:
        summary = label_all(cells, todo, store, config.labeller, show_progress=not args.no_progress,
                            task=synthesis_task(config.synthesis.max_chars), batch_everything=args.batch)
    finally:
        store.close()
        rows, dropped = corpus_rows(store, cells, against)
        write_corpus(config.synthesis.output_csv, rows)
        for line in dropped:
            print(f"dropped {line}")
        print(f"wrote {len(rows)} texts to {config.synthesis.output_csv} ({len(dropped)} duplicates dropped)")
    print("\n".join(summary.lines()))
    if summary.failed:
        print(f"{summary.failed} failed: reasons in {config.synthesis.results}; --retry-failed asks again for them")
    if not rows:  # an empty corpus is no step 04 source: the run failed, whatever each request said
        print(f"error: no text was written to {config.synthesis.output_csv}: {summary.failed} failed (reasons in "
              f"{config.synthesis.results}); check dataset.labeller.providers, then --retry-failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
