"""Fail before working: a missing API key, a missing CUDA GPU and --help are answered before any
input is read, any output written or the fine-tune extras imported. Real subprocesses; the
extras are made unimportable by a sitecustomize that refuses them (as on a machine without them)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, run_script, script_env
from tests.labeller_support import numbered_articles, write_export

SCRIPTS = sorted(str(path.relative_to(REPO_ROOT)) for folder in ("dataset_builder", "finetune", "eval")
                 for path in (REPO_ROOT / folder).glob("*.py")
                 if 'if __name__ == "__main__"' in path.read_text(encoding="utf-8"))
FINETUNE_EXTRAS = ("torch", "transformers", "peft", "trl", "accelerate", "unsloth", "safetensors")


def refusing(tmp_path: Path, modules: tuple[str, ...]) -> dict[str, str]:
    """An environment whose Python cannot import `modules` (ImportError naming the module)."""
    folder = tmp_path / "refuse"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        "import sys\n\n\nclass Refuse:\n"
        f"    names = {set(modules)!r}\n\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in self.names:\n"
        "            raise ImportError(f'{name} refused by the test')\n\n\n"
        "sys.meta_path.insert(0, Refuse())\n", encoding="utf-8")
    env = script_env()
    env["PYTHONPATH"] = os.pathsep.join([str(folder), env["PYTHONPATH"]])
    return env


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_needs_no_fine_tune_extras(script, tmp_path):
    result = run_script(script, "--help", cwd=tmp_path, env=refusing(tmp_path, FINETUNE_EXTRAS))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage:") and "show this help message" in result.stdout


def test_unsloth_without_cuda_fails_before_transformers_is_imported(tmp_path):
    refused = tuple(name for name in FINETUNE_EXTRAS if name != "torch")
    result = run_script("finetune/train.py", "--backend", "unsloth", cwd=tmp_path, env=refusing(tmp_path, refused))
    if "torch" in result.stderr and "CUDA" not in result.stderr:
        pytest.fail(result.stderr[-2000:])
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: --backend unsloth needs a CUDA GPU and none is visible; use --backend hf (transformers + PEFT) "
        "to train on this machine"], result.stderr[-2000:]


@pytest.mark.parametrize("script", ["dataset_builder/step_03_label_articles.py",
                                    "dataset_builder/step_03b_explain_labels.py",
                                    "dataset_builder/batch_jobs.py"])
def test_a_labelling_script_without_its_key_reads_and_writes_nothing(tmp_path, script):
    config = tmp_path / "config.yaml"
    config.write_text("dataset:\n  labeller:\n    providers:\n      - {name: groq, kind: groq, "
                      "api_key_env: FINSENT_UNSET_KEY, models: [m]}\n", encoding="utf-8")
    news = write_export(tmp_path / "news" / "export.csv", numbered_articles(3))
    labelled = tmp_path / "step_01.csv"
    labelled.write_text('Article,JSON\nShares fell,"{""sentiment"": -0.5, ""confidence"": 0.9}"\n', encoding="utf-8")
    output, results = tmp_path / "out" / "step_03.csv", tmp_path / "out" / "step_03.jsonl"
    # batch_jobs.py's results file is not there: only the key's error says it was not read
    source = {"dataset_builder/step_03_label_articles.py": ["--input", news, "--output", output],
              "dataset_builder/step_03b_explain_labels.py": ["tweets", "--input", labelled, "--output", output],
              "dataset_builder/batch_jobs.py": ["status"]}[script]
    env = {key: value for key, value in script_env().items() if key != "FINSENT_UNSET_KEY"}
    result = run_script(script, "--config", config, *source, "--results", results, cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: provider 'groq': the environment variable FINSENT_UNSET_KEY is not set (set it or put it in .env)")
    assert not (tmp_path / "out").exists()
