"""benchmarks/engine_agreement.py (gpu_server_check.sh's verdict) on two prediction folders written in
evaluate_labelled's format by its own table code (eval.labelled.prediction_table): it compares only the
rows both engines answered with valid JSON, and exits 1 on a class disagreement or under 90% valid."""
from __future__ import annotations

import json
from pathlib import Path

from eval.labelled import LabelledRow, Prediction, prediction_table
from tests.conftest import run_script

SCRIPT = "benchmarks/engine_agreement.py"
TEXTS = ["Operating profit rose to EUR 13.1 mn.", "The company will hold its AGM in March.",
         "Net sales fell by 12 percent.", "Shares were flat in early trade.", "Orders doubled in the quarter."]


def answer(sentiment: float) -> str:
    return json.dumps({"reasoning": "The text says so.", "sentiment": sentiment, "confidence": 0.9})


def write_run(folder: Path, sentiments: list[float | None]) -> Path:
    """predictions.csv of 10 test rows and 2 validation rows; None: an answer that is not valid JSON."""
    predictions = []
    for index, sentiment in enumerate(sentiments):
        split, number = ("test", index + 1) if index < 10 else ("validation", index - 9)
        row = LabelledRow(number, TEXTS[index % len(TEXTS)] + f" ({index})", "neutral", "financial_phrasebank")
        predictions.append(
            Prediction(split, row, True, sentiment, 0.9, "The text says so.", raw=answer(sentiment))
            if sentiment is not None else
            Prediction(split, row, False, error="no JSON object in the answer", raw='{"reasoning": "The'))
    folder.mkdir(parents=True)
    prediction_table(predictions, threshold=0.3).to_csv(folder / "predictions.csv", index=False)
    return folder


REFERENCE = [0.8, 0.0, -0.6, 0.1, 0.9, -0.2, 0.0, 0.5, -0.9, 0.3, 0.0, 0.7]


def test_engines_that_agree_on_every_valid_row_pass(tmp_path):
    candidate = list(REFERENCE)
    candidate[0] = 0.6  # another value, the same class at t = 0.15
    candidate[3] = None  # invalid on the candidate only: not compared, 11/12 valid
    result_file = tmp_path / "agreement.json"
    result = run_script(SCRIPT, write_run(tmp_path / "cpu", REFERENCE), write_run(tmp_path / "gpu", candidate),
                        "--output", result_file)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "same class on 11/11 rows valid on both, identical answers on 10" in result.stdout
    figures = json.loads(result_file.read_text())
    assert figures["valid_json_rate"] == {"reference": 1.0, "candidate": round(11 / 12, 4)}
    assert figures["class_agreement"] == 1.0 and figures["disagreements"] == [] and figures["passed"] is True


def test_a_class_disagreement_fails_and_names_the_row(tmp_path):
    candidate = list(REFERENCE)
    candidate[5] = 0.2  # test row 6: negative on the reference, positive here
    candidate[10] = 0.2  # validation row 1: neutral → positive
    candidate[2] = None  # invalid here, whatever its class would be: not a disagreement
    result = run_script(SCRIPT, write_run(tmp_path / "cpu", REFERENCE), write_run(tmp_path / "gpu", candidate))
    assert result.returncode == 1
    assert "  test row 6: reference negative, candidate positive" in result.stdout
    assert "  validation row 1: reference neutral, candidate positive" in result.stdout
    assert "FAIL: 2 of 11 rows answered validly by both differ in class" in result.stdout


def test_too_few_valid_answers_fail_even_where_the_valid_ones_agree(tmp_path):
    candidate = [None, None, *REFERENCE[2:]]  # 10/12 valid: 83%
    result = run_script(SCRIPT, write_run(tmp_path / "cpu", REFERENCE), write_run(tmp_path / "gpu", candidate))
    assert result.returncode == 1
    assert "FAIL: candidate engine: 83.3% valid JSON, under 90%" in result.stdout
    assert "same class on 10/10 rows" in result.stdout
    # no valid answer on either side: nothing to compare, and it fails rather than passing vacuously
    nothing = [None] * len(REFERENCE)
    result = run_script(SCRIPT, write_run(tmp_path / "none-a", nothing), write_run(tmp_path / "none-b", nothing))
    assert result.returncode == 1 and "FAIL: reference engine: 0.0% valid JSON" in result.stdout


def test_runs_on_different_rows_are_a_one_line_error(tmp_path):
    reference = write_run(tmp_path / "cpu", REFERENCE)
    result = run_script(SCRIPT, reference, write_run(tmp_path / "gpu", REFERENCE[:-1]))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {reference} and {tmp_path / 'gpu'} hold different rows (e.g. validation row 2 is in one only): "
        "score the same --input, --limit and --validation-limit"]
    result = run_script(SCRIPT, reference, tmp_path / "missing")
    assert result.returncode == 2 and f"{tmp_path / 'missing' / 'predictions.csv'}: not found" in result.stderr
