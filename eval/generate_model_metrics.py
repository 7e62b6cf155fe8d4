"""Per model × article metrics of the sentiments folder (Inference Rate (s), Valid JSON Rate,
Sentiment Variance, Mean Sentiment, Mean Confidence), to eval.report_output_file (xlsx) and
eval.report_output_csv_file (csv)."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from eval.excel_style import notes_frame, write_csv, write_workbook
from eval.metrics import article_metrics
from eval.sentiment_files import load_sentiments, report_parser
from finsent.cli import config_from_args
from utils.errors import cli_entry

log = logging.getLogger("generate_model_metrics")


def beside(path: str | None, suffix: str) -> str | None:
    """--output other.xlsx alone: its CSV is other.csv, not the config's file (an earlier run's)."""
    return str(Path(path).with_suffix(suffix)) if path else None


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = report_parser(__doc__)
    parser.add_argument("--output", help="xlsx file (eval.report_output_file)")
    parser.add_argument("--csv", help="csv file (eval.report_output_csv_file; with --output only: beside it)")
    args = parser.parse_args(argv)
    config = config_from_args(args, {"eval.sentiment_save_folder": args.sentiments,
                                     "eval.report_output_file": args.output,
                                     "eval.report_output_csv_file": args.csv or beside(args.output, ".csv")}).eval

    data = load_sentiments(config.sentiment_save_folder, config.models_to_test, args.strict)
    metrics = article_metrics(data)
    write_workbook(config.report_output_file,
                   {"Model Details": metrics, "Notes": notes_frame(data.skipped)}, decimals=2)
    write_csv(config.report_output_csv_file, metrics)
    log.info("%d rows (%d model(s) × their articles) → %s, %s", len(metrics), len(data.models),
             config.report_output_file, config.report_output_csv_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
