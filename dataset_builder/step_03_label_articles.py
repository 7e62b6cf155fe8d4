"""Step 03: label news articles (newsdata.io CSV exports: title + description) with large
LLMs (OpenAI, Groq or any OpenAI-compatible server), concurrently and crash-safely.

Every article ends as one record in the results JSONL (the cache: a rerun, or a run after a
crash, continues where it stopped); the `Article,JSON` CSV is then rebuilt from it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

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
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


@cli_entry
def main(argv=None) -> int:
    args = parse_args(argv)
    config = config_from_args(args, {"dataset.news_dir": args.input, "dataset.step_03_csv": args.output,
                                     "dataset.step_03_results": args.results}).dataset
    articles = read_news(config.news_dir)[: args.limit]
    store = ResultStore(config.step_03_results)
    todo = store.pending(articles, retry_failed=args.retry_failed)
    print(f"{len(articles)} articles in {config.news_dir}: {len(articles) - len(todo)} already "
          f"recorded in {config.step_03_results}, {len(todo)} to label")
    if args.dry_run:
        if todo:
            print("first prompt:\n" + json.dumps(article_messages(todo[0], config.labeller.few_shot),
                                                 indent=2, ensure_ascii=False))
        return 0
    store.forget_failed({article.id for article in todo})
    from dataset_builder.labeller import label_articles  # the SDKs take seconds to import
    try:
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
