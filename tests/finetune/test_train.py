"""finetune/train.py end to end on CPU (--backend hf, a tiny random Llama with the real Llama-3
tokenizer, ShareGPT rows from the real Financial PhraseBank): checkpoints, validation loss,
throughput log, LoRA adapter, merged model; --resume; bad input as one-line errors. Export and
serving, per family: tests/finetune/test_families.py."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_script
from tests.finetune_fixtures import (llama_cpp_vendor, sharegpt_splits, tiny_llama,  # noqa: F401
                                     write_sharegpt)

TRAIN = "finetune/train.py"
SMALL_RUN = ["--backend", "hf", "--family", "llama-3", "--max-seq-length", "256",
             "--set", "finetune.batch_size=4", "--set", "finetune.gradient_accumulation_steps=1",
             "--set", "finetune.logging_steps=1", "--set", "finetune.eval_steps=2", "--set", "finetune.save_steps=2",
             "--set", "finetune.learning_rate=1e-3", "--set", "finetune.quants=[q8_0,q4_k_m]"]


def train_args(model: Path, splits: dict[str, Path], output: Path, *extra: str) -> list[str]:
    return ["--base-model", model, "--train", splits["train"], "--validation", splits["validation"],
            "--output-dir", output, *SMALL_RUN, *extra]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_llama, sharegpt_splits) -> Path:  # noqa: F811
    output = tmp_path_factory.mktemp("run") / "out"
    result = run_script(TRAIN, *train_args(tiny_llama, sharegpt_splits, output, "--max-steps", "4"))
    assert result.returncode == 0, result.stderr[-3000:]
    return output


@pytest.mark.slow
def test_training_writes_checkpoints_adapter_merged_model_and_figures(trained):
    summary = json.loads((trained / "train_summary.json").read_text())
    assert summary["backend"] == "hf" and summary["processes"] == 1 and summary["precision"] == "fp32"
    assert 0 < summary["eval_loss"] < 20 and 0 < summary["train_loss"] < 20
    assert summary["tokens"] > 0 and summary["tokens_per_s"] > 0
    assert sorted(p.name for p in (trained / "checkpoints").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    state = json.loads((trained / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())
    assert [entry["step"] for entry in state["log_history"] if "eval_loss" in entry] == [2, 4]
    logged = [json.loads(line) for line in (trained / "throughput.jsonl").read_text().splitlines()]
    assert [record["step"] for record in logged] == [1, 2, 3, 4]
    assert all(record["tokens_per_s"] > 0 for record in logged)
    assert (trained / "adapter" / "adapter_model.safetensors").is_file()
    adapter_config = json.loads((trained / "adapter" / "adapter_config.json").read_text())
    assert set(adapter_config["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                     "up_proj", "down_proj"}


@pytest.mark.slow
def test_merged_model_loads_with_the_chat_template_and_differs_from_the_base(trained, tiny_llama):  # noqa: F811
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged = AutoModelForCausalLM.from_pretrained(trained / "merged")
    base = AutoModelForCausalLM.from_pretrained(tiny_llama)
    assert merged.dtype == torch.bfloat16
    base_weights = {name: weight.to(torch.bfloat16) for name, weight in base.state_dict().items()}
    changed = {name for name, weight in merged.state_dict().items() if not torch.equal(weight, base_weights[name])}
    assert {"model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"} <= changed
    assert "model.embed_tokens.weight" not in changed  # LoRA touched the target modules only
    assert "<|start_header_id|>" in AutoTokenizer.from_pretrained(trained / "merged").chat_template


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint(trained, tmp_path, tiny_llama, sharegpt_splits):  # noqa: F811
    output = tmp_path / "out"
    shutil.copytree(trained, output)
    result = run_script(TRAIN, *train_args(tiny_llama, sharegpt_splits, output, "--max-steps", "6", "--resume"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming from {output / 'checkpoints' / 'checkpoint-4'}" in result.stderr
    logged = [json.loads(line)["step"] for line in (output / "throughput.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3, 4, 5, 6]  # steps 1-4 of the first run, then only 5 and 6
    state = json.loads((output / "checkpoints" / "checkpoint-6" / "trainer_state.json").read_text())
    steps = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert steps == [1, 2, 3, 4, 5, 6]  # the history of the first run, then steps 5 and 6 only


def one_line_error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and lines, result.stderr
    assert lines[-1].startswith("error: ") and "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[-1]


def test_dataset_without_conversations_is_a_one_line_error(tmp_path, tiny_llama, sharegpt_splits):  # noqa: F811
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "Profit rose.", "label": "positive"}) + "\n")
    result = run_script(TRAIN, *train_args(tiny_llama, {**sharegpt_splits, "train": bad}, tmp_path / "out"))
    assert one_line_error(result) == f"error: {bad}: line 1: no 'conversations' list (expected step 05's ShareGPT format)"
    assert not (tmp_path / "out").exists()


def test_rows_longer_than_max_seq_length_are_a_one_line_error_before_training(tmp_path, tiny_llama,  # noqa: F811
                                                                              sharegpt_splits):  # noqa: F811
    # Real PhraseBank rows are ~100 Llama-3 tokens with the system prompt: 48 cuts every answer.
    args = [a if a != "256" else "48" for a in train_args(tiny_llama, sharegpt_splits, tmp_path / "out")]
    error = one_line_error(run_script(TRAIN, *args))
    assert error.startswith(f"error: {sharegpt_splits['train']}: 24 of 24 conversations (100.0%) are longer than "
                            "max_seq_length = 48 tokens"), error
    assert "raise --max-seq-length" in error
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_a_few_long_rows_are_only_counted(caplog):
    from finetune.data import check_lengths

    check_lengths([100] * 199 + [300], max_length=256, source="train.jsonl")  # 0.5%: a warning, no error
    assert caplog.messages == ["train.jsonl: 1 of 200 conversations (0.5%) are longer than max_seq_length = 256 "
                               "tokens (longest 300, median row 100): their answers are cut"]


def test_unknown_family_is_a_one_line_error(tmp_path, tiny_llama, sharegpt_splits):  # noqa: F811
    result = run_script(TRAIN, *train_args(tiny_llama, sharegpt_splits, tmp_path / "out"), "--family", "llama-2")
    assert "unknown model family 'llama-2'" in one_line_error(result)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_unsloth_without_cuda_names_the_hf_backend(tmp_path, tiny_llama, sharegpt_splits):  # noqa: F811
    result = run_script(TRAIN, *train_args(tiny_llama, sharegpt_splits, tmp_path / "out"), "--backend", "unsloth")
    line = one_line_error(result)
    assert "needs a CUDA GPU" in line and "--backend hf" in line


def test_existing_output_folder_needs_resume_or_overwrite(tmp_path, tiny_llama, sharegpt_splits):  # noqa: F811
    output = tmp_path / "out"
    output.mkdir()
    (output / "keep.txt").write_text("an earlier run")
    result = run_script(TRAIN, *train_args(tiny_llama, sharegpt_splits, output))
    line = one_line_error(result)
    assert str(output) in line and "--resume" in line and "--overwrite" in line
    assert (output / "keep.txt").read_text() == "an earlier run"
    result = run_script(TRAIN, *train_args(tiny_llama, sharegpt_splits, output, "--resume"))
    assert "no checkpoint" in one_line_error(result)


def test_offline_hub_id_is_a_one_line_error(tmp_path, sharegpt_splits):  # noqa: F811
    from tests.conftest import script_env

    result = run_script(TRAIN, *train_args(Path("meta-llama/Meta-Llama-3-8B"), sharegpt_splits, tmp_path / "out"),
                        env=script_env(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf")))
    line = one_line_error(result)
    assert "cannot load the base model 'meta-llama/Meta-Llama-3-8B'" in line and "hub id" in line


def test_help_names_the_options():
    result = run_script(TRAIN, "--help")
    assert result.returncode == 0
    for option in ("--backend", "--base-model", "--family", "--resume", "--overwrite", "--packing", "--full-finetune"):
        assert option in result.stdout


def test_backend_is_read_before_train_py_imports_transformers(tmp_path):
    """Unsloth must be imported before transformers, peft and trl: train.py reads the backend first,
    as its own parser and config will (flag over --set over the config file), and leaves arguments
    it cannot read to its own one-line error."""
    from finetune.recipe import chosen_backend
    from finsent.cli import config_from_args

    config = tmp_path / "config.yaml"
    config.write_text("finetune:\n  backend: hf\n")
    assert chosen_backend(["--config", str(config)], config_from_args) == "hf"
    assert chosen_backend(["--config", str(config), "--set", "finetune.backend=unsloth"], config_from_args) == "unsloth"
    assert chosen_backend(["--config", str(config), "--set", "finetune.backend=unsloth", "--backend", "hf",
                           "--max-steps", "2"], config_from_args) == "hf"
    assert chosen_backend(["--config", str(tmp_path / "missing.yaml")], config_from_args) is None
    assert chosen_backend(["--config", str(config), "--set", "finetune.backend=[1,"], config_from_args) is None
    assert chosen_backend(["--backend"], config_from_args) is None


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="Unsloth needs a CUDA GPU")
def test_unsloth_backend_trains_on_the_gpu(tmp_path, tiny_llama, sharegpt_splits):  # noqa: F811
    pytest.importorskip("unsloth", reason="unsloth is not installed")
    output = tmp_path / "out"
    result = run_script(TRAIN, *train_args(tiny_llama, sharegpt_splits, output, "--max-steps", "2"), "--backend", "unsloth")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((output / "train_summary.json").read_text())["backend"] == "unsloth"
    assert (output / "merged" / "config.json").is_file()


@pytest.mark.slow
def test_packing_fills_sequences_with_several_rows(tmp_path, tiny_llama, sharegpt_splits):  # noqa: F811
    output = tmp_path / "out"
    result = run_script(TRAIN, *train_args(tiny_llama, sharegpt_splits, output, "--max-steps", "1", "--packing",
                                           "--max-seq-length", "512", "--set", "finetune.save_final=false",
                                           "--set", "finetune.save_steps=0"))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((output / "train_summary.json").read_text())
    assert summary["packing"] is True
    from transformers import AutoTokenizer

    from finetune.data import read_sharegpt, tokenize_conversation

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    lengths = sorted(len(tokenize_conversation(tokenizer, "llama-3", c)["input_ids"])
                     for c in read_sharegpt(sharegpt_splits["train"]))
    # A step of 4 packed 512-token sequences carries more tokens than any 4 unpacked rows.
    assert summary["tokens"] > sum(lengths[-4:])
    assert not (output / "merged").exists() and not list(output.glob("checkpoints/checkpoint-*"))


def test_validation_is_capped_on_a_cpu_unless_eval_limit_says_otherwise(tmp_path, shared_data):
    from finetune.data import read_sharegpt, read_validation
    from finetune.settings import CPU_EVAL_LIMIT
    from tests.finetune_fixtures import phrasebank_rows

    path = write_sharegpt(tmp_path / "validation.jsonl", phrasebank_rows(shared_data, CPU_EVAL_LIMIT + 8))
    everything = read_sharegpt(path)
    assert len(everything) == CPU_EVAL_LIMIT + 8
    assert read_validation(path, None, cuda=False) == everything[:CPU_EVAL_LIMIT]  # the smoke run's minutes
    assert read_validation(path, None, cuda=True) == everything
    assert read_validation(path, 5, cuda=True) == everything[:5]
    assert read_validation(path, 1000, cuda=False) == everything
