"""One labelling run, as step 03 (news articles) and step 03b (reasonings for the human-labelled
rows of steps 01/02) make it: what is recorded already, what is left to ask, the dry run, the
labelling (synchronous or through the Batch API), and the `Article,JSON` CSV rebuilt from the
results JSONL. The scripts say only what they label and where it is kept (a `LabellingJob`) and
share the flags of `add_labelling_flags`.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from dataset_builder.label_store import LabelSetup, ResultStore
from dataset_builder.news_articles import write_news_csv
from dataset_builder.settings import LabellerConfig
from utils.errors import quiet_client_logs
from utils.io import check_writable
from utils.llm_client import api_key


@dataclass(frozen=True)
class LabellingJob:
    """What a run labels and where its work is kept."""

    source: Path                                    # read by `read`; named in the run's first line
    read: Callable[[Path], list[Any]]               # items with `.id` and `.text`, in input order
    items_are: str                                  # "articles", "rows to explain": the first line
    rows_are: str                                   # "labelled articles", "explained rows": the CSV's line
    results: Path                                   # the results JSONL, the cache
    output: Path                                    # the `Article,JSON` CSV rebuilt from it
    messages: Callable[[Any], list[dict[str, str]]]  # the request for one item, as first sent
    # Makes the labeller's Task (None: label news articles); called only once there is work to send,
    # as it imports the labeller, whose SDKs take seconds to load.
    task: Callable[[], Any] | None = None


def add_labelling_flags(parser: argparse.ArgumentParser, items: str) -> None:
    """The flags every labelling script takes; `items` names what it labels ("articles")."""
    parser.add_argument("--limit", type=int, help=f"label only the first N {items} of the input")
    parser.add_argument("--keep-labels", action="store_true",
                        help="keep the labels recorded by another setup (another provider or model, prompt, "
                             f"few-shot or temperature) instead of labelling those {items} again")
    parser.add_argument("--dry-run", action="store_true", help="show the first prompt; call nothing")
    parser.add_argument("--retry-failed", action="store_true",
                        help=f"ask again for {items} recorded as failed (ok ones are never redone)")
    parser.add_argument("--batch", action="store_true",
                        help=f"send every provider's {items} through its Batch API (half the price, answers "
                             "within 24 h); waits for the batches, a rerun resumes them (batch_jobs.py "
                             "status|cancel: where they stand, cancel them)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request")


def check_keys(config: LabellerConfig) -> None:
    """Every provider's API key is set (else one error line naming it), checked before any input
    is read or output written."""
    for provider in config.providers:
        api_key(provider.api_key_env, f"provider '{provider.name}'")


def _other_setup_line(count: int, keep: bool) -> str | None:
    """What became of the records another setup made (None: there are none)."""
    if not count:
        return None
    made = (f"{count} recorded by another setup (another provider or model, prompt, few-shot or "
            "temperature than this run's)")
    return (f"kept the labels of {made}: --keep-labels" if keep
            else f"{made}: labelled again (--keep-labels keeps their labels)")


def run_labelling(job: LabellingJob, config: LabellerConfig, flags: argparse.Namespace) -> int:
    """Label what `job` has left to label; `flags` are those of `add_labelling_flags`. A missing key
    or a path that cannot be written fails before the input is read (a dry run needs neither)."""
    if not flags.dry_run:
        check_keys(config)
        check_writable(job.results)
        check_writable(job.output)
    items = job.read(job.source)[: flags.limit]
    store = ResultStore(job.results)
    setup = LabelSetup(config, job.messages)
    todo = store.pending(items, retry_failed=flags.retry_failed, setup=None if flags.keep_labels else setup)
    in_batches = {key for batch in store.open_batches() for key in batch["ids"]}
    waiting = sum(item.id in in_batches for item in items)
    print(f"{len(items)} {job.items_are} in {job.source}: {len(items) - len(todo) - waiting} already recorded in "
          f"{job.results}, {waiting} waiting in open batches, {len(todo)} to label")
    other_setup = _other_setup_line(len(store.made_otherwise(items, setup)), flags.keep_labels)
    if other_setup:
        print(other_setup)
    if flags.dry_run:
        if todo:
            print("first prompt:\n" + "".join(f"--- {m['role']} ---\n{m['content']}\n"
                                              for m in setup.messages(todo[0])), end="")
        return 0
    from dataset_builder.batch_labeller import label_all  # the SDKs take seconds to import
    quiet_client_logs(flags.verbose)  # cli_entry quieted them; --verbose brings the request lines back
    try:
        summary = label_all(items, todo, store, config, show_progress=not flags.no_progress,
                            task=job.task() if job.task else None, batch_everything=flags.batch)
    finally:
        store.close()
        rows = write_news_csv(job.output, store.ok_rows(items))
        print(f"wrote {rows} {job.rows_are} to {job.output}")
    print("\n".join(summary.lines()))
    if other_setup and flags.keep_labels:
        print(other_setup)
    if summary.failed:
        print(f"{summary.failed} failed: reasons in {job.results}; --retry-failed asks again for them")
    return 0
