"""prepare_base.py on the real Gemma 3 270M GGUF: a normal HF folder that transformers loads and
that answers like the GGUF it came from."""
from __future__ import annotations

import httpx
import pytest

from tests.conftest import run_script
from utils.chat_templates import chat_template


@pytest.mark.slow
def test_gemma_gguf_becomes_a_loadable_hf_folder(tmp_path, embedded_engine):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    output = tmp_path / "gemma"
    result = run_script("finetune/prepare_base.py", "--output", output, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "268M parameters" in result.stdout
    assert "quantization_config" not in (output / "config.json").read_text()

    model = AutoModelForCausalLM.from_pretrained(output)
    tokenizer = AutoTokenizer.from_pretrained(output)
    assert tokenizer.chat_template == chat_template("gemma-3")
    assert sum(p.numel() for p in model.parameters()) == 268_098_176
    # It predicts as the GGUF it came from does under llama.cpp: llama.cpp's greedy next word is
    # among the HF model's five likeliest (llama.cpp also quantizes activations, so not always first).
    text = "The company reported record quarterly revenue, and its shares"
    with torch.no_grad():
        logits = model(**tokenizer(text, return_tensors="pt")).logits[0, -1]
    top5 = [tokenizer.decode(token).strip() for token in logits.topk(5).indices]
    reply = httpx.post(f"{embedded_engine.base_url}/completions", timeout=120,
                       json={"prompt": text, "max_tokens": 3, "temperature": 0}).json()
    assert reply["choices"][0]["text"].split()[0] in top5

    again = run_script("finetune/prepare_base.py", "--output", output)
    assert again.returncode == 2 and "exists" in again.stderr and "--overwrite" in again.stderr
