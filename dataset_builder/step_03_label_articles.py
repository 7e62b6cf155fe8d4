"""Step 03: label news articles (newsdata.io CSV exports: title + description) with large
LLMs (OpenAI, Groq or any OpenAI-compatible server), concurrently and crash-safely.

Every article ends as one record in the results JSONL (the cache: a rerun, or a run after a
crash, continues where it stopped); the `Article,JSON` CSV is then rebuilt from it. A record says
what made its label (provider, model, prompt hash, few-shot, temperature): a rerun with another
setup labels the article again, or with --keep-labels keeps the label it has and says so.

--batch (or `batch: true` on a provider) sends the articles through the Batch API at half the
price: the batch ids are recorded first, so a rerun after a kill resumes the same batches.
--explain asks instead for the reasoning of rows that steps 01/02 labelled from human labels.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from dataset_builder.explain import explain_results, explain_task, explained_csv, read_labelled_rows
from dataset_builder.label_store import LabelSetup, ResultStore
from dataset_builder.news_articles import article_messages, read_news, write_news_csv
from finsent.cli import config_from_args
from utils.cli import stage_parser
from utils.errors import cli_entry, quiet_client_logs
from utils.io import check_writable
from utils.llm_client import api_key


def parse_args(argv=None):
    parser = stage_parser(__doc__)
    parser.add_argument("--input", help="folder of newsdata.io CSV exports, or one CSV "
                        "(default: dataset.news_dir); with --explain, the labelled CSV")
    parser.add_argument("--output", help="CSV with columns Article, JSON (default: dataset.step_03_csv)")
    parser.add_argument("--results", help="append-only JSONL of records, the cache "
                        "(default: dataset.step_03_results)")
    parser.add_argument("--limit", type=int, help="label only the first N articles of the input")
    parser.add_argument("--explain", choices=["tweets", "financial_phrasebank"],
                        help="instead of news, ask for a reasoning for each row of step 01 (tweets) or "
                             "02 (financial_phrasebank), given its human label, which stays; writes "
                             "<step output>_explained.csv (step 04 prefers it) and caches in "
                             "<step output>_explained.jsonl")
    parser.add_argument("--keep-labels", action="store_true",
                        help="keep the labels recorded by another setup (another provider or model, prompt, "
                             "few-shot or temperature) instead of labelling those articles again")
    parser.add_argument("--dry-run", action="store_true", help="show the first prompt; call nothing")
    parser.add_argument("--retry-failed", action="store_true",
                        help="ask again for articles recorded as failed (ok ones are never redone)")
    parser.add_argument("--batch", action="store_true",
                        help="send every provider's articles through its Batch API (half the price, "
                             "answers within 24 h); waits for the batches, a rerun resumes them")
    parser.add_argument("--batch-status", action="store_true",
                        help="print where each recorded batch stands, then exit")
    parser.add_argument("--cancel-batch", action="store_true",
                        help="cancel every open batch, then exit (a rerun records what they answered)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request")
    return parser.parse_args(argv)


def _work(args, config):
    """(source, items, task, results JSONL, output CSV, what the items are) of this run."""
    if args.explain:  # rows of step 01/02, their label given: only a reasoning is asked for
        source = Path(args.input or {"tweets": config.step_01_csv,
                                     "financial_phrasebank": config.step_02_csv}[args.explain])
        read, task, what = read_labelled_rows, explain_task(), "rows to explain"
        results, output = Path(args.results or explain_results(source)), Path(args.output or explained_csv(source))
    else:
        source, read, task, what = config.news_dir, read_news, None, "articles"
        results, output = Path(config.step_03_results), Path(config.step_03_csv)
    if not (args.dry_run or args.batch_status):  # a path that cannot be written fails before any work
        check_writable(results)
        check_writable(output)
    return source, read(source), task, results, output, what


def _other_setup_line(count: int, keep: bool) -> str | None:
    """What became of the records another setup made (None: there are none)."""
    if not count:
        return None
    made = (f"{count} recorded by another setup (another provider or model, prompt, few-shot or "
            "temperature than this run's)")
    return (f"kept the labels of {made}: --keep-labels" if keep
            else f"{made}: labelled again (--keep-labels keeps their labels)")


@cli_entry
def main(argv=None) -> int:
    args = parse_args(argv)
    config = config_from_args(args, {} if args.explain else {
        "dataset.news_dir": args.input, "dataset.step_03_csv": args.output,
        "dataset.step_03_results": args.results}).dataset
    if not args.dry_run:  # a missing key fails before the articles are read or anything is written
        for provider in config.labeller.providers:
            api_key(provider.api_key_env, f"provider '{provider.name}'")
    source, items, task, results, output, what = _work(args, config)
    items = items[: args.limit]
    store = ResultStore(results)
    setup = LabelSetup(config.labeller, task.messages if task else
                       lambda article: article_messages(article, config.labeller.few_shot))
    if args.batch_status or args.cancel_batch:
        from dataset_builder import batch_labeller  # the SDKs take seconds to import
        act = batch_labeller.cancel_batches if args.cancel_batch else batch_labeller.batch_status
        print("\n".join(act(store, config.labeller)))
        return 0
    todo = store.pending(items, retry_failed=args.retry_failed, setup=None if args.keep_labels else setup)
    in_batches = {key for batch in store.open_batches() for key in batch["ids"]}
    waiting = sum(item.id in in_batches for item in items)
    print(f"{len(items)} {what} in {source}: {len(items) - len(todo) - waiting} already recorded in "
          f"{results}, {waiting} waiting in open batches, {len(todo)} to label")
    other_setup = _other_setup_line(len(store.made_otherwise(items, setup)), args.keep_labels)
    if other_setup:
        print(other_setup)
    if args.dry_run:
        if todo:
            print("first prompt:\n" + "".join(f"--- {m['role']} ---\n{m['content']}\n"
                                              for m in setup.messages(todo[0])), end="")
        return 0
    from dataset_builder.batch_labeller import label_all  # the SDKs take seconds to import
    quiet_client_logs(args.verbose)  # cli_entry quieted them; --verbose brings the request lines back
    try:
        summary = label_all(items, todo, store, config.labeller, show_progress=not args.no_progress, task=task,
                            batch_everything=args.batch)
    finally:
        store.close()
        rows = write_news_csv(output, store.ok_rows(items))
        print(f"wrote {rows} {'explained rows' if args.explain else 'labelled articles'} to {output}")
    print("\n".join(summary.lines()))
    if other_setup and args.keep_labels:
        print(other_setup)
    if summary.failed:
        print(f"{summary.failed} failed: reasons in {results}; --retry-failed asks again for them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
