"""finetune/publish.py on a real tiny run (a random Llama-3 trained one step with LoRA, merged and
exported to GGUF by the stage's own scripts): the dry run's file list and the model card, and
every failure path against real HTTP: a local server standing in for the Hub (HF_ENDPOINT) that
refuses the token, and a port where nothing listens."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from eval.backends import ModelSpec
from eval.labelled import LABEL_VALUE, LabelledInput, Prediction, evaluate, read_phrasebank, write_outputs
from tests.conftest import run_script, script_env
from tests.finetune_fixtures import llama_cpp_vendor, sharegpt_splits, tiny_llama  # noqa: F401
from tests.hub_server import refusing_hub
from utils.engine import free_port
from utils.prompts import system_prompt

NAME = "tiny-llama-finsent"
TOKEN = "hf_secretTOKENthatMustNeverBePrinted"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_llama, sharegpt_splits) -> dict:  # noqa: F811
    root = tmp_path_factory.mktemp("publish")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({"finetune": {
        "output_dir": str(root / "run"), "train_file": str(sharegpt_splits["train"]), "validation_file": None,
        "quants": ["f16"], "max_seq_length": 512, "batch_size": 4, "gradient_accumulation_steps": 1,
        "logging_steps": 1, "save_steps": 0, "model_name": NAME}}), encoding="utf-8")
    trained = run_script("finetune/train.py", "--config", config, "--backend", "hf", "--family", "llama-3",
                         "--base-model", tiny_llama, "--max-steps", "1")
    assert trained.returncode == 0, trained.stderr[-3000:]
    exported = run_script("finetune/export_gguf.py", "--config", config)
    assert exported.returncode == 0, exported.stderr[-3000:]
    return {"root": root, "config": config, "run": root / "run"}


@pytest.fixture(scope="module")
def labelled(run_dir, shared_data) -> Path:
    """An evaluate_labelled output of this model, written by its own writer (80% of 200 rows right)."""
    rows = read_phrasebank(shared_data / "financial_phrasebank" / "Sentences_AllAgree.txt")[:200]
    rng = np.random.default_rng(0)
    predictions = [Prediction("test", row, True, LABEL_VALUE[row.label] * 0.8 if rng.random() < 0.8 else 0.0, 0.9,
                              "reason") for row in rows]
    folder = run_dir["root"] / "labelled"
    spec = ModelSpec(backend="llamacpp", model=NAME, name=NAME)
    write_outputs(folder, predictions, evaluate(predictions, spec, LabelledInput(rows, [], "test.jsonl", "none"), 1.0))
    return folder


def publish(run_dir: dict, *args: str, **env: str):
    environment = {k: v for k, v in script_env(**env).items() if k != "HF_TOKEN" or "HF_TOKEN" in env}
    return run_script("finetune/publish.py", "--config", run_dir["config"], *args, cwd=run_dir["root"],
                      env=environment)


def test_dry_run_lists_every_file_and_writes_the_card(run_dir, labelled):
    result = publish(run_dir, "--push-to-hub", "someone/tiny-llama-finsent", "--dry-run", "--labelled", labelled)
    assert result.returncode == 0, result.stderr[-2000:]
    run = run_dir["run"]
    expected = sorted(["README.md", "train_summary.json", f"gguf/{NAME}-f16.gguf", "gguf/Modelfile.f16",
                       *(p.relative_to(run).as_posix() for p in (run / "merged").rglob("*") if p.is_file()),
                       *(p.relative_to(run).as_posix() for p in (run / "adapter").rglob("*") if p.is_file())])
    listed = [line.split()[-1] for line in result.stdout.splitlines()[:-2]]
    assert sorted(listed) == expected  # no checkpoint, no log
    gguf_line = next(line for line in result.stdout.splitlines() if line.endswith(f"gguf/{NAME}-f16.gguf"))
    assert gguf_line.split()[0] == f"{(run / 'gguf' / f'{NAME}-f16.gguf').stat().st_size / 1e6:.1f}"
    assert f"{len(expected)} files" in result.stdout and "for the private repo someone/tiny-llama-finsent" in result.stdout
    assert result.stdout.splitlines()[-1] == "dry run: nothing uploaded"


def test_the_card_says_what_the_model_is_and_how_it_did(run_dir, labelled):
    assert publish(run_dir, "--push-to-hub", "someone/tiny-llama-finsent", "--dry-run", "--labelled",
                   labelled).returncode == 0
    card = (run_dir["run"] / "README.md").read_text(encoding="utf-8")
    front = yaml.safe_load(card.split("---")[1])
    assert front["license"] == "llama3" and "finsent" in front["tags"] and "lora" in front["tags"]
    assert card.startswith("---\n") and f"# {NAME}\n" in card
    assert "chat family `llama-3`" in card and "backend `hf`" in card
    assert "- recipe: LoRA r = 32, alpha = 32, dropout 0; 1 step, learning rate 0.0002" in card  # the run's, not 3 epochs
    assert system_prompt() in card
    metrics = json.loads((labelled / "metrics.json").read_text())
    chosen = metrics["at_chosen_threshold"]
    row = next(line for line in card.splitlines() if line.startswith(f"| {NAME} | test.jsonl | 200 |"))
    assert f"| {chosen['accuracy']:.3f} | {chosen['macro_f1']:.3f} | {chosen['weighted_f1']:.3f} [" in row
    low, high = map(float, row.split("[")[1].split("]")[0].split(", "))
    assert low < chosen["weighted_f1"] < high and high - low < 0.2
    assert (f"ollama create {NAME}-f16 -f {NAME}/gguf/Modelfile.f16" in card
            and f"hf download someone/tiny-llama-finsent gguf/{NAME}-f16.gguf gguf/Modelfile.f16" in card)


def one_error_line(result) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len([line for line in lines if line.startswith("error:")]) == 1 and lines[-1].startswith("error: ")
    assert TOKEN not in result.stdout + result.stderr
    return lines[-1]


def test_no_token_is_one_line(run_dir):
    line = one_error_line(publish(run_dir, "--push-to-hub", "someone/repo"))
    assert line == ("error: --push-to-hub someone/repo: no Hugging Face token: set HF_TOKEN in the environment or "
                    "in .env (a token with write access)")


def test_a_refused_token_from_dotenv_is_one_line_and_never_shown(run_dir):
    (run_dir["root"] / ".env").write_text(f"HF_TOKEN={TOKEN}\n", encoding="utf-8")
    try:
        with refusing_hub() as hub:
            result = publish(run_dir, "--push-to-hub", "someone/repo", HF_ENDPOINT=f"http://127.0.0.1:{hub.server_port}")
    finally:
        (run_dir["root"] / ".env").unlink()
    line = one_error_line(result)
    assert line.startswith("error: --push-to-hub someone/repo: the token was refused (HTTP 401); check HF_TOKEN "
                           "has write access")
    assert hub.requests >= 1  # it was asked, over real HTTP


def test_no_network_is_one_line(run_dir):
    line = one_error_line(publish(run_dir, "--push-to-hub", "someone/repo", HF_TOKEN=TOKEN,
                                  HF_ENDPOINT=f"http://127.0.0.1:{free_port()}"))
    assert line.startswith("error: --push-to-hub someone/repo: cannot reach the Hugging Face Hub (offline?)")


def test_a_bad_repo_id_or_run_folder_is_one_line(run_dir, tmp_path):
    assert one_error_line(publish(run_dir, "--push-to-hub", "no slash here", "--dry-run")) == (
        "error: --push-to-hub 'no slash here': expected USER/REPO (letters, digits, '-', '_', '.')")
    assert one_error_line(publish(run_dir, "--push-to-hub", "a/b", "--dry-run", "--output-dir", tmp_path)) == (
        f"error: {tmp_path}: no merged/, adapter/ or gguf/ to publish (train and export first)")
    assert one_error_line(publish(run_dir, "--push-to-hub", "a/b", "--dry-run", "--labelled", tmp_path)) == (
        f"error: --labelled {tmp_path}: no evaluate_labelled metrics.json in it")
