"""Paired accuracy comparison of two or more evaluate_labelled runs on the same labelled rows:
for every pair, the difference in accuracy, macro-F1 and weighted F1 with paired bootstrap 95%
intervals, McNemar's exact test on right/wrong per row, Holm across pairs, and a verdict.
Writes a CSV and an xlsx (--output, default <eval.report_output_csv_folder>/labelled_comparison.csv);
generate_report.py puts the verdicts in the HTML report.

  python eval/compare_labelled.py reports/labelled/base reports/labelled/finetune"""
from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from eval.excel_style import write_csv, write_workbook
from eval.paired_accuracy import RESAMPLES, compare_runs, read_run
from finsent.cli import config_from_args
from utils.cli import stage_parser
from utils.errors import FinsentError, cli_entry


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument("folders", nargs="+", metavar="FOLDER", help="evaluate_labelled --output folders")
    parser.add_argument("--output", help="CSV file; the xlsx is written beside it")
    parser.add_argument("--resamples", type=int, default=RESAMPLES, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args(argv)
    if args.resamples < 100:
        raise FinsentError(f"--resamples {args.resamples}: at least 100 for a 95% interval")
    config = config_from_args(args).eval
    output = Path(args.output or Path(config.report_output_csv_folder) / "labelled_comparison.csv")

    table = compare_runs([read_run(folder) for folder in args.folders], args.resamples, args.seed)
    write_csv(output, table)
    workbook = write_workbook(output.with_suffix(".xlsx"), {"Paired Accuracy": table},
                              wrap_columns=("Verdict",))
    for line in table["Verdict"]:
        print(line)
    print(f"wrote {output}, {workbook}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
