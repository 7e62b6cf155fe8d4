"""benchmarks/bench_train_throughput.py end to end on the CPU (--tiny: a 2-layer model of the LLaMA-3 8B
shape's family, the real 128,256-word vocabulary): the random model's folder, one baseline and one variant
in their own processes, the results file after each. The tokenizer is made as gpu_carry.sh --tokenizers
makes it, from llama.cpp's Llama-3 vocab GGUF; transformers' reading adds a token past the model's
vocabulary, which made every Unsloth variant assert on the GPU (2026-12-02)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.finetune_fixtures import llama_cpp_vendor  # noqa: F401

REPO = Path(__file__).resolve().parents[2]


def test_tiny_run_measures_baseline_and_variant_with_a_tokenizer_the_model_covers(tmp_path, llama_cpp_vendor):  # noqa: F811
    from transformers import AutoTokenizer

    tokenizer_dir = tmp_path / "tok"
    models = llama_cpp_vendor / "models"
    AutoTokenizer.from_pretrained(str(models), gguf_file="ggml-vocab-llama-bpe.gguf").save_pretrained(tokenizer_dir)
    carried = AutoTokenizer.from_pretrained(tokenizer_dir)
    assert len(carried) > 128256  # the extra <|endoftext|> the fix is for

    output, model_dir = tmp_path / "throughput.json", tmp_path / "model"
    run = subprocess.run(
        [sys.executable, "benchmarks/bench_train_throughput.py", "--tiny", "--tokenizer", str(tokenizer_dir),
         "--model-dir", str(model_dir), "--output", str(output), "--backends", "hf", "--variants",
         "hf+padding_free", "--steps", "1", "--warmup-steps", "1", "--seq-len", "64", "--batch-size", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]

    config = json.loads((model_dir / "config.json").read_text())
    assert len(AutoTokenizer.from_pretrained(model_dir)) == config["vocab_size"] == 128256
    result = json.loads(output.read_text())
    assert list(result["variants"]) == ["hf", "hf+padding_free"]
    baseline, variant = result["variants"]["hf"], result["variants"]["hf+padding_free"]
    assert baseline["tokens_per_s"] > 0 and variant["tokens_per_s"] > 0
    assert variant["padding_free"] is True and baseline["padding_free"] is False
    assert variant["over_baseline"] == round(variant["tokens_per_s"] / baseline["tokens_per_s"], 3)
    assert result["settings"]["batch_size"] == 2 and result["settings"]["seq_len"] == 64
