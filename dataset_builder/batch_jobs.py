"""The Batch API jobs a labelling run recorded in its results JSONL (step 03 --batch, step 03b
--batch, synthesize_texts.py --batch): `status` prints where each stands (asking the provider
for the open ones); `cancel` cancels the open ones, and the next run of the step records what
they answered before the cancel (the rest as failed). The providers of dataset.labeller are
asked, so their keys must be set.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from dataset_builder.label_store import ResultStore
from dataset_builder.labelling_run import check_keys
from finsent.cli import config_from_args
from utils.cli import stage_parser
from utils.errors import FinsentError, cli_entry, quiet_client_logs


def parse_args(argv=None):
    parser = stage_parser(__doc__)
    parser.add_argument("action", choices=["status", "cancel"],
                        help="status: where each recorded batch stands; cancel: cancel every open batch")
    parser.add_argument("--results", help="the results JSONL whose batches these are (default: "
                        "dataset.step_03_results; step 03b's is <input>_explained.jsonl, "
                        "synthesize_texts.py's dataset.synthesis.results)")
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request")
    return parser.parse_args(argv)


@cli_entry
def main(argv=None) -> int:
    args = parse_args(argv)
    config = config_from_args(args).dataset
    results = Path(args.results or config.step_03_results)
    check_keys(config.labeller)  # before the results are read
    if not results.is_file():  # a results file that is not there recorded no batch: a wrong path
        raise FinsentError(f"{results}: no such results file (--results names the one a labelling run wrote)")
    store = ResultStore(results)
    from dataset_builder import batch_labeller  # the SDKs take seconds to import
    quiet_client_logs(args.verbose)
    act = batch_labeller.cancel_batches if args.action == "cancel" else batch_labeller.batch_status
    print("\n".join(act(store, config.labeller)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
