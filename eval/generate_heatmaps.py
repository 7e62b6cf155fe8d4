"""Seaborn heatmaps (rows = models, columns = articles) of mean sentiment, sentiment variance,
valid-JSON rate, mean confidence and inference time, plus a per-model summary figure, as PNGs
in eval.heatmaps_folder; rendered in parallel processes."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from eval.heatmaps import metric_jobs, render_all, summary_job
from eval.metrics import article_metrics, model_details
from eval.news import snapshot_headlines
from eval.sentiment_files import load_sentiments, report_parser
from finsent.cli import config_from_args
from utils.errors import cli_entry

log = logging.getLogger("generate_heatmaps")


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = report_parser(__doc__)
    parser.add_argument("--output", help="folder for the PNGs (eval.heatmaps_folder)")
    parser.add_argument("--workers", type=int, help="worker processes (eval.heatmap_workers; 0 = one per core)")
    args = parser.parse_args(argv)
    config = config_from_args(args, {"eval.sentiment_save_folder": args.sentiments,
                                     "eval.heatmaps_folder": args.output,
                                     "eval.heatmap_workers": args.workers}).eval

    data = load_sentiments(config.sentiment_save_folder, config.models_to_test, args.strict)
    folder = Path(config.heatmaps_folder)
    titles = data.article_titles(headlines=snapshot_headlines(config.news_snapshot))
    jobs = metric_jobs(article_metrics(data), data.models, folder, titles)
    jobs.append(summary_job(model_details(data), folder))
    paths = render_all(jobs, config.heatmap_workers or None)
    log.info("%d heatmaps of %d models → %s", len(paths), len(data.models), folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
