"""Do two engines serving the same GGUF give the same answers? Two eval/evaluate_labelled.py output
folders on the same rows (gpu_server_check.sh: the embedded engine on the CPUs, then llama-server on
the GPU) are compared row by row, on the rows both answered with valid JSON, in class at t = 0.15
(`predicted_label_t015`: a fixed threshold, so a threshold chosen differently on validation changes
nothing). Prints each engine's valid-JSON rate, the class agreement and every disagreeing row; with
--output writes them as JSON. Exit 0 only when each engine gave valid JSON on at least --min-valid of
the rows and no row compared disagrees in class; 1 otherwise; 2 on bad input.

  python benchmarks/engine_agreement.py REFERENCE CANDIDATE [--min-valid 0.9] [--output FILE]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from eval.labelled import read_prediction_records  # noqa: E402
from utils.errors import FinsentError, cli_entry  # noqa: E402
from utils.io import atomic_write_json  # noqa: E402

MIN_VALID = 0.9
COLUMNS = ("split", "row", "text", "valid", "predicted_label_t015", "raw")


def read_answers(folder: Path) -> dict[tuple[str, int, str], dict[str, str]]:
    """predictions.csv's rows keyed by (split, row, text): what makes two runs' rows the same rows."""
    answers = {}
    for line, record in read_prediction_records(folder, COLUMNS):
        if record["valid"] not in ("True", "False"):
            raise FinsentError(f"{Path(folder) / 'predictions.csv'}: line {line}: valid {record['valid']!r} "
                               "is neither True nor False")
        answers[(record["split"], int(record["row"]), record["text"])] = record
    if not answers:
        raise FinsentError(f"{Path(folder) / 'predictions.csv'}: no rows")
    return answers


def compare_engines(reference: Path, candidate: Path, min_valid: float = MIN_VALID) -> dict:
    """The agreement figures of two runs; `passed` says whether the candidate engine can be relied on."""
    ours, theirs = read_answers(reference), read_answers(candidate)
    if ours.keys() != theirs.keys():
        only = sorted((ours.keys() ^ theirs.keys()), key=lambda key: key[:2])[0]
        raise FinsentError(f"{reference} and {candidate} hold different rows (e.g. {only[0]} row {only[1]} "
                           "is in one only): score the same --input, --limit and --validation-limit")
    valid = {name: sum(answers[key]["valid"] == "True" for key in answers) / len(answers)
             for name, answers in (("reference", ours), ("candidate", theirs))}
    compared = [key for key in ours if ours[key]["valid"] == "True" and theirs[key]["valid"] == "True"]
    disagreements = [{"split": key[0], "row": key[1], "reference": ours[key]["predicted_label_t015"],
                      "candidate": theirs[key]["predicted_label_t015"]}
                     for key in compared if ours[key]["predicted_label_t015"] != theirs[key]["predicted_label_t015"]]
    failures = [f"{name} engine: {rate:.1%} valid JSON, under {min_valid:.0%}"
                for name, rate in valid.items() if rate < min_valid]
    if disagreements:
        failures.append(f"{len(disagreements)} of {len(compared)} rows answered validly by both differ in class")
    agreement = round(1 - len(disagreements) / len(compared), 4) if compared else None
    return {"reference": str(reference), "candidate": str(candidate), "rows": len(ours),
            "valid_json_rate": {name: round(rate, 4) for name, rate in valid.items()},
            "rows_compared": len(compared), "class_agreement": agreement,
            "identical_answers": sum(ours[key]["raw"] == theirs[key]["raw"] for key in compared),
            "disagreements": disagreements, "min_valid": min_valid, "failures": failures, "passed": not failures}


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", type=Path, help="evaluate_labelled --output folder of the trusted engine")
    parser.add_argument("candidate", type=Path, help="evaluate_labelled --output folder of the engine checked")
    parser.add_argument("--min-valid", type=float, default=MIN_VALID, help="least valid-JSON share of each engine")
    parser.add_argument("--output", type=Path, help="write the figures as JSON")
    args = parser.parse_args(argv)
    result = compare_engines(args.reference, args.candidate, args.min_valid)
    rates = result["valid_json_rate"]
    print(f"valid JSON: reference {rates['reference']:.1%}, candidate {rates['candidate']:.1%} "
          f"of {result['rows']} rows; "
          f"same class on {result['rows_compared'] - len(result['disagreements'])}/{result['rows_compared']} rows "
          f"valid on both, identical answers on {result['identical_answers']}")
    for row in result["disagreements"]:
        print(f"  {row['split']} row {row['row']}: reference {row['reference']}, candidate {row['candidate']}")
    for failure in result["failures"]:
        print(f"FAIL: {failure}")
    if args.output:
        atomic_write_json(args.output, result, indent=1)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
