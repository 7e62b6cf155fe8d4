"""evaluate_labelled.py with no model flags gives a useful figure on the embedded base model
(schema-constrained decoding, the choice printed), and a run whose answers are mostly invalid
says so in one line naming the flag to try. Real engine, few rows and short answers."""
import json

from tests.conftest import run_script

FPB_SAMPLE = ["--input", "examples/financial_phrasebank", "--fpb-agreement", "AllAgree"]


def test_no_model_flags_decode_schema_constrained(tmp_path, repo_root):
    out = tmp_path / "defaults"
    result = run_script("eval/evaluate_labelled.py", *FPB_SAMPLE, "--output", out, "--limit", "1", "--max-tokens", "160",
                        "--no-progress", "--threads", "2", cwd=repo_root)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "the embedded base model: schema-constrained decoding (--structured) unless --no-structured"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["structured"] is True and metrics["rows"] == 1
    assert metrics["valid_json_rate"] >= 0.5
    assert not [line for line in lines if line.startswith("warning:")]


def test_mostly_invalid_answers_are_named_with_the_flag_to_try(tmp_path, repo_root):
    out = tmp_path / "free"
    result = run_script("eval/evaluate_labelled.py", *FPB_SAMPLE, "--output", out, "--limit", "1",
                        "--no-structured", "--max-tokens", "4", "--no-progress", "--threads", "2", cwd=repo_root)
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "metrics.json").read_text())["valid_json_rate"] == 0  # 4 tokens close no JSON
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: only 0% of the answers are valid JSON, and the scores count the others as "
                        "wrong: try --structured (decoding constrained to the answer's schema)"]
