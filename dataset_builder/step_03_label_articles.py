"""Step 03: label news articles (newsdata.io CSV exports: title + description) with large
LLMs (OpenAI, Groq or any OpenAI-compatible server), concurrently and crash-safely.

Every article ends as one record in the results JSONL (the cache: a rerun, or a run after a
crash, continues where it stopped); the `Article,JSON` CSV is then rebuilt from it. A record says
what made its label (provider, model, prompt hash, few-shot, temperature): a rerun with another
setup labels the article again, or with --keep-labels keeps the label it has and says so.

--batch (or `batch: true` on a provider) sends the articles through the Batch API at half the
price: the batch ids are recorded first, so a rerun after a kill resumes the same batches
(dataset_builder/batch_jobs.py status|cancel: where they stand, cancel them). Reasonings for the
human-labelled rows of steps 01/02: dataset_builder/step_03b_explain_labels.py.
"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from dataset_builder.labelling_run import LabellingJob, add_labelling_flags, run_labelling
from dataset_builder.news_articles import article_messages, read_news
from finsent.cli import config_from_args
from utils.cli import moved_flag, stage_parser
from utils.errors import cli_entry


def parse_args(argv=None):
    parser = stage_parser(__doc__)
    parser.add_argument("--input", help="folder of newsdata.io CSV exports, or one CSV (default: dataset.news_dir)")
    parser.add_argument("--output", help="CSV with columns Article, JSON (default: dataset.step_03_csv)")
    parser.add_argument("--results", help="append-only JSONL of records, the cache "
                        "(default: dataset.step_03_results)")
    add_labelling_flags(parser, "articles")
    # Flags step 03 had before their work became scripts of its own (issue 27).
    moved_flag(parser, "--explain", "python dataset_builder/step_03b_explain_labels.py {value}",
               value="tweets|financial_phrasebank")
    moved_flag(parser, "--batch-status", "python dataset_builder/batch_jobs.py status")
    moved_flag(parser, "--cancel-batch", "python dataset_builder/batch_jobs.py cancel")
    return parser.parse_args(argv)


@cli_entry
def main(argv=None) -> int:
    args = parse_args(argv)
    config = config_from_args(args, {"dataset.news_dir": args.input, "dataset.step_03_csv": args.output,
                                     "dataset.step_03_results": args.results}).dataset
    job = LabellingJob(source=Path(config.news_dir), read=read_news, items_are="articles",
                       rows_are="labelled articles", results=Path(config.step_03_results),
                       output=Path(config.step_03_csv),
                       messages=lambda article: article_messages(article, config.labeller.few_shot))
    return run_labelling(job, config.labeller, args)


if __name__ == "__main__":
    sys.exit(main())
