"""One self-contained HTML report of the eval results (eval.html_report_file): per-model
summary, every comparison pair with a plain-language verdict, accuracy on labelled data
(evaluate_labelled outputs found under eval.report_output_csv_folder or given by --labelled)
with a paired verdict for every two runs on the same rows (eval/paired_accuracy.py),
the heatmaps inline, and links to the xlsx/csv reports. Opens offline. Run it after the
other report scripts: it embeds and links what they wrote."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from eval.comparisons import pair_comparisons
from eval.heatmaps import FIGURE_TITLES
from eval.html_report import find_labelled, png_picture, relative_links, render_report
from eval.metrics import model_details
from eval.paired_accuracy import report_comparisons
from eval.sentiment_files import load_sentiments, resolve_pairs, report_parser
from finsent.cli import config_from_args
from utils.errors import cli_entry
from utils.io import atomic_write_text

log = logging.getLogger("generate_report")


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = report_parser(__doc__)
    parser.add_argument("--output", help="HTML file (eval.html_report_file)")
    parser.add_argument("--labelled", action="append", default=[], metavar="FOLDER",
                        help="evaluate_labelled output folder(s) to include, besides those under "
                             "eval.report_output_csv_folder")
    args = parser.parse_args(argv)
    config = config_from_args(args, {"eval.sentiment_save_folder": args.sentiments,
                                     "eval.html_report_file": args.output}).eval

    data = load_sentiments(config.sentiment_save_folder, config.models_to_test, args.strict)
    pairs = resolve_pairs(config.comparison_pairs, data.models, args.strict, data.skipped)
    reports = Path(config.report_output_csv_folder)
    labelled = find_labelled([reports, *map(Path, args.labelled)])
    heatmaps_folder = Path(config.heatmaps_folder)
    heatmaps = [png_picture(heatmaps_folder / name, title) for name, title in FIGURE_TITLES.items()
                if (heatmaps_folder / name).is_file()]
    output = Path(config.html_report_file)
    links = relative_links(output, [Path(config.report_output_file), Path(config.report_output_csv_file),
                                    Path(config.comparison_report_file), *sorted(reports.glob("*.csv")),
                                    *(result.folder / name for result in labelled
                                      for name in ("metrics.xlsx", "predictions.csv"))])
    page = render_report(sentiments=config.sentiment_save_folder, details=model_details(data),
                         comparisons=pair_comparisons(data, pairs), notes=data.skipped,
                         labelled=labelled, heatmaps=heatmaps, heatmaps_folder=heatmaps_folder, links=links,
                         accuracy_pairs=report_comparisons(result.folder for result in labelled))
    atomic_write_text(output, page)
    log.info("%d models, %d pairs, %d labelled runs, %d heatmaps", len(data.models), len(pairs),
             len(labelled), len(heatmaps))
    print(f"HTML report: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
