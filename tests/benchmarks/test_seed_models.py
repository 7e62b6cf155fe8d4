"""benchmarks/seed_models.py's bookkeeping between runs: a built random base is reused, a run of one
family keeps the others' records, and a results file that is not JSON is a one-line error."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.seed_models import BASE_MARKER, previous_results
from tests.finetune_fixtures import llama_cpp_vendor  # noqa: F401  (a fixture)
from utils.errors import FinsentError

REPO = Path(__file__).resolve().parents[2]


def build_only(work: Path, data: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "seed_models.py"), "--tiny", "--build-only",
                           "--families", "phi-3", "--data", str(data), "--work", str(work)],
                          capture_output=True, text=True, timeout=600, cwd=REPO)


def test_build_only_builds_once_then_reuses_the_base_and_clears_a_former_run(tmp_path, llama_cpp_vendor):  # noqa: F811
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "test"):
        (data / f"{split}.jsonl").write_text("{}\n", encoding="utf-8")
    work = tmp_path / "work"

    first = build_only(work, data)
    assert first.returncode == 0, first.stderr
    family = work / "phi-3"
    base = family / "Phi-3-mini-4k-instruct"
    marker = json.loads((family / BASE_MARKER).read_text())
    assert (base / "config.json").is_file() and marker["tiny"] is True and marker["base_bytes"] > 0
    assert '"base_reused": false' in first.stdout

    stale = family / "t4-b8"  # a former run's training folder
    stale.mkdir()
    weights = sorted(base.glob("*.safetensors"))
    stamps = [path.stat().st_mtime_ns for path in weights]
    second = build_only(work, data)
    assert second.returncode == 0, second.stderr
    assert '"base_reused": true' in second.stdout and "built before" in second.stdout
    assert [path.stat().st_mtime_ns for path in weights] == stamps  # not written again
    assert not stale.exists()

    (family / BASE_MARKER).unlink()  # a base without its marker was cut short: built anew
    third = build_only(work, data)
    assert third.returncode == 0 and '"base_reused": false' in third.stdout


def test_a_run_keeps_the_other_families_and_drops_what_it_redoes(tmp_path):
    path = tmp_path / "seed_models.json"
    path.write_text(json.dumps({"tiny": False, "note": "how the figures were made",
                                "families": {"llama-3": {"h100_tokens_per_s": 1.0}, "mistral": {"old": True}},
                                "not_run": {"mistral": "no device time", "phi-3": "later"}}))
    kept = previous_results(path, tiny=False, families=["mistral"])
    assert kept["families"] == {"llama-3": {"h100_tokens_per_s": 1.0}}
    assert kept["not_run"] == {"phi-3": "later"} and kept["note"] == "how the figures were made"
    assert previous_results(path, tiny=True, families=["mistral"]) == {}  # a tiny run never mixes with a GPU run
    assert previous_results(tmp_path / "absent.json", tiny=False, families=["mistral"]) == {}


def test_a_results_file_that_is_not_json_is_one_line_naming_it(tmp_path):
    path = tmp_path / "seed_models.json"
    path.write_text('{"families": {', encoding="utf-8")
    with pytest.raises(FinsentError, match=r"--results: .*seed_models\.json is not JSON .*line 1"):
        previous_results(path, tiny=False, families=["mistral"])
