"""Step 03: label news articles (newsdata.io CSV exports: title + description) with large
LLMs (OpenAI, Groq or any OpenAI-compatible server), concurrently and crash-safely.

Every article ends as one record in the results JSONL (the cache: a rerun, or a run after a
crash, continues where it stopped); the `Article,JSON` CSV is then rebuilt from it.

--batch (or `batch: true` on a provider) sends the articles through the Batch API at half the
price: the batch ids are recorded first, so a rerun after a kill resumes the same batches.
"""
from __future__ import annotations

import json
import sys

from dataset_builder.label_store import ResultStore
from dataset_builder.news_articles import article_messages, read_news, write_news_csv
from utils.cli import config_from_args, stage_parser
from utils.errors import cli_entry


def parse_args(argv=None):
    parser = stage_parser(__doc__)
    parser.add_argument("--input", help="folder of newsdata.io CSV exports, or one CSV "
                        "(default: dataset.news_dir)")
    parser.add_argument("--output", help="CSV with columns Article, JSON (default: dataset.step_03_csv)")
    parser.add_argument("--results", help="append-only JSONL of records, the cache "
                        "(default: dataset.step_03_results)")
    parser.add_argument("--limit", type=int, help="label only the first N articles of the input")
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


@cli_entry
def main(argv=None) -> int:
    args = parse_args(argv)
    config = config_from_args(args, {"dataset.news_dir": args.input, "dataset.step_03_csv": args.output,
                                     "dataset.step_03_results": args.results}).dataset
    articles = read_news(config.news_dir)[: args.limit]
    store = ResultStore(config.step_03_results)
    if args.batch_status or args.cancel_batch:
        from dataset_builder import batch_labeller  # the SDKs take seconds to import
        act = batch_labeller.cancel_batches if args.cancel_batch else batch_labeller.batch_status
        print("\n".join(act(store, config.labeller)))
        return 0
    todo = store.pending(articles, retry_failed=args.retry_failed)
    waiting = sum(len(batch["ids"]) for batch in store.open_batches())
    print(f"{len(articles)} articles in {config.news_dir}: {len(articles) - len(todo) - waiting} already "
          f"recorded in {config.step_03_results}, {waiting} waiting in open batches, {len(todo)} to label")
    if args.dry_run:
        if todo:
            print("first prompt:\n" + json.dumps(article_messages(todo[0], config.labeller.few_shot),
                                                 indent=2, ensure_ascii=False))
        return 0
    from dataset_builder.batch_labeller import label_in_batches  # the SDKs take seconds to import
    from dataset_builder.labeller import label_articles
    from dataset_builder.providers import quiet_client_logs
    quiet_client_logs(args.verbose)
    batched = args.batch or waiting or any(provider.batch for provider in config.labeller.providers)
    try:
        if batched:
            summary = label_in_batches(articles, todo, store, config.labeller,
                                       show_progress=not args.no_progress, batch_everything=args.batch)
        else:
            summary = label_articles(todo, store, config.labeller, show_progress=not args.no_progress)
    finally:
        store.close()
        rows = write_news_csv(config.step_03_csv, store.ok_rows(articles))
        print(f"wrote {rows} labelled articles to {config.step_03_csv}")
    print("\n".join(summary.lines()))
    if summary.failed:
        print(f"{summary.failed} failed: reasons in {config.step_03_results}; "
              f"--retry-failed asks again for them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
