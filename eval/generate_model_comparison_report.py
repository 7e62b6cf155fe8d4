"""Statistical comparison of the models in the sentiments folder: per-model details, every
comparison_pairs entry (the original's F and t columns, then Levene/Brown-Forsythe, Welch,
Wilcoxon on per-article means, Cohen's d, Holm-adjusted p-values, Fisher's exact test on
valid-JSON counts), ANOVA across quantization levels, per-article consistency and a Guide
sheet, to eval.comparison_report_file (xlsx) and CSVs in eval.report_output_csv_folder."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from eval.comparisons import comparison_sheets, quantization_families
from eval.excel_style import notes_frame, write_csv, write_workbook
from eval.metrics import article_metrics
from eval.sentiment_files import load_sentiments, resolve_pairs, report_parser
from finsent.cli import config_from_args
from utils.errors import cli_entry

log = logging.getLogger("generate_model_comparison_report")
CSV_NAMES = {"Model Details": "model_details.csv", "Statistical Comparisons": "statistical_comparisons.csv",
             "Quantization ANOVA": "quantization_anova.csv", "Article Consistency": "article_consistency.csv",
             "Pair Articles": "pair_articles.csv"}


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = report_parser(__doc__)
    parser.add_argument("--output", help="xlsx file (eval.comparison_report_file)")
    parser.add_argument("--csv-folder", help="folder for the CSVs (eval.report_output_csv_folder)")
    args = parser.parse_args(argv)
    config = config_from_args(args, {"eval.sentiment_save_folder": args.sentiments,
                                     "eval.comparison_report_file": args.output,
                                     "eval.report_output_csv_folder": args.csv_folder}).eval

    data = load_sentiments(config.sentiment_save_folder, config.models_to_test, args.strict)
    pairs = resolve_pairs(config.comparison_pairs, data.models, args.strict, data.skipped)
    families = quantization_families(data.models, config.quantization_families)
    sheets = comparison_sheets(data, article_metrics(data), pairs, families)
    sheets["Notes"] = notes_frame(data.skipped)
    write_workbook(config.comparison_report_file, sheets)
    for sheet, name in CSV_NAMES.items():
        write_csv(Path(config.report_output_csv_folder) / name, sheets[sheet])
    log.info("%d models, %d pairs, %d quantization families → %s", len(data.models), len(pairs),
             len(families), config.comparison_report_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
