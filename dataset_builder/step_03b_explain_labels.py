"""Step 03b: a reasoning written by large LLMs for each row that step 01 (tweets) or step 02
(financial_phrasebank) labelled from human annotations, in place of its templated one. The model
is told the label and asked why the text has it; only its reasoning is kept, the sentiment and
confidence stay the annotators'.

The rows are cached and resumable as step 03's articles are (--retry-failed, --keep-labels,
--batch), in `<input>_explained.jsonl`; the explained rows are written to `<input>_explained.csv`,
which step 04 prefers, row by row, to the templated ones.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from dataset_builder.explain import explain_messages, explain_results, explain_task, explained_csv, \
    read_labelled_rows
from dataset_builder.labelling_run import LabellingJob, add_labelling_flags, run_labelling
from finsent.cli import config_from_args
from utils.cli import stage_parser
from utils.errors import cli_entry

# Each source's labelled CSV, by its config key.
LABELLED_CSV_KEY = {"tweets": "step_01_csv", "financial_phrasebank": "step_02_csv"}


def parse_args(argv=None):
    parser = stage_parser(__doc__)
    parser.add_argument("rows", choices=sorted(LABELLED_CSV_KEY),
                        help="whose rows: step 01's (tweets) or step 02's (financial_phrasebank)")
    parser.add_argument("--input", help="the labelled CSV (columns Article, JSON) to explain (default: "
                        "dataset.step_01_csv for tweets, dataset.step_02_csv for financial_phrasebank)")
    parser.add_argument("--output", help="CSV of the explained rows (default: <input>_explained.csv, where "
                        "step 04 looks)")
    parser.add_argument("--results", help="append-only JSONL of records, the cache "
                        "(default: <input>_explained.jsonl)")
    add_labelling_flags(parser, "rows")
    return parser.parse_args(argv)


@cli_entry
def main(argv=None) -> int:
    args = parse_args(argv)
    config = config_from_args(args).dataset
    source = Path(args.input or getattr(config, LABELLED_CSV_KEY[args.rows]))
    job = LabellingJob(source=source, read=read_labelled_rows, items_are="rows to explain",
                       rows_are="explained rows", results=Path(args.results or explain_results(source)),
                       output=Path(args.output or explained_csv(source)), messages=explain_messages,
                       task=explain_task)
    return run_labelling(job, config.labeller, args)


if __name__ == "__main__":
    sys.exit(main())
