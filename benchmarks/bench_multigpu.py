"""Multi-GPU fine-tune throughput on the LLaMA-3 8B shape: LoRA on 1 GPU and on 2 GPUs (DDP), and
an FSDP full fine-tune on 2 GPUs, all through finetune/train.py under `accelerate launch` with
the configs in finetune/accelerate/. Prints tokens/s, the DDP/1-GPU ratio and peak memory per
GPU; writes benchmarks/results/multigpu.json. On one GPU it measures the 1-GPU run and records
the others as skipped.

Model: random weights with Meta-Llama-3-8B's config (throughput does not depend on the values),
its real tokenizer (llama.cpp's Llama-3 vocab from llama-cpp-python's sdist, see
finetune/llama_cpp_source.py). Data: synthetic ShareGPT conversations packed into 2,048-token
sequences. Tokens/s counts non-padding tokens of all GPUs over the optimizer steps after the
warm-up steps (evaluation off, no checkpoints, no final save).

  python benchmarks/bench_multigpu.py [--steps 30] [--warmup-steps 5] [--batch-size 2]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from finetune.multigpu import keep_multicast_off  # noqa: E402
from utils.io import atomic_write_json  # noqa: E402

# Meta-Llama-3-8B's config.json (the architecture only).
LLAMA3_8B = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
                 rope_theta=500000.0, rms_norm_eps=1e-5, hidden_act="silu", tie_word_embeddings=False,
                 bos_token_id=128000, eos_token_id=128001)
WORDS = ("revenue profit margin guidance quarter shares investors dividend growth forecast market demand "
         "costs outlook earnings sales operating cash flow debt rating analyst upgrade downgrade merger "
         "acquisition contract order backlog supply chain inflation rates central bank currency").split()


def build_model(folder: Path, vocab_gguf: Path) -> None:
    """The 8B shape with random bf16 weights (initialised on the GPU: seconds, not minutes)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from finetune.recipe import prepare_tokenizer

    if (folder / "config.json").is_file():
        return
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(vocab_gguf.parent, gguf_file=vocab_gguf.name),
                                  "llama-3")
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(LlamaConfig(**LLAMA3_8B, dtype="bfloat16")).to(torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    torch.cuda.empty_cache()


def build_data(path: Path, conversations: int, seed: int = 0) -> None:
    """ShareGPT rows of ~500 tokens: a system prompt, a long 'news' text, a JSON answer."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for _ in range(conversations):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(300, 500)))
            answer = json.dumps({"reasoning": " ".join(rng.choice(WORDS) for _ in range(30)),
                                 "sentiment": round(rng.uniform(-1, 1), 2), "confidence": 0.8})
            out.write(json.dumps({"conversations": [
                {"from": "system", "value": "You are a financial sentiment analyst."},
                {"from": "human", "value": text}, {"from": "gpt", "value": answer}],
                "source": "synthetic", "label": "neutral"}) + "\n")


def run_setup(name: str, accelerate_config: str, gpus: int, model: Path, data: Path, work: Path,
              args: argparse.Namespace, *extra: str) -> dict:
    output = work / name
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(REPO / "finetune" / "accelerate" / accelerate_config), "--num_processes", str(gpus),
               str(REPO / "finetune" / "train.py"), "--backend", "hf", "--base-model", str(model),
               "--family", "llama-3", "--train", str(data), "--set", "finetune.validation_file=null",
               "--output-dir", str(output), "--overwrite", "--packing", "--max-seq-length", "2048",
               "--max-steps", str(args.steps), "--set", f"finetune.batch_size={args.batch_size}",
               "--set", "finetune.gradient_accumulation_steps=1", "--set", "finetune.logging_steps=1",
               "--set", "finetune.save_steps=0", "--set", "finetune.save_final=false",
               "--set", "finetune.warmup_ratio=0", *extra]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in range(gpus)),
           "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    print(f"[{name}] {' '.join(command[2:])}", flush=True)
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    (work / f"{name}.log").write_text(result.stdout + result.stderr, encoding="utf-8")
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"[{name}] failed ({wall:.0f} s): {tail}", flush=True)
        return {"status": "failed", "error": tail, "wall_s": round(wall, 1), "gpus": gpus}
    summary = json.loads((output / "train_summary.json").read_text())
    steps = [json.loads(line) for line in (output / "throughput.jsonl").read_text().splitlines()]
    measured = [s for s in steps if s["step"] > args.warmup_steps]
    tokens = sum(s["tokens"] for s in measured)
    seconds = sum(s["train_seconds"] for s in measured)
    figures = {"status": "ok", "gpus": gpus, "tokens_per_s": round(tokens / seconds, 1),
               "tokens_per_s_per_gpu": round(tokens / seconds / gpus, 1), "measured_steps": len(measured),
               "tokens_per_step": round(tokens / len(measured)), "mfu": summary["mfu"],
               "peak_gib_per_gpu": summary.get("peak_gib_per_gpu"), "wall_s": round(wall, 1),
               "train_loss": summary["train_loss"]}
    print(f"[{name}] {figures['tokens_per_s']:.0f} tokens/s on {gpus} GPU(s), peak "
          f"{figures['peak_gib_per_gpu']} GiB, wall {wall:.0f} s", flush=True)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per setup")
    parser.add_argument("--warmup-steps", type=int, default=5, help="first steps left out of tokens/s")
    parser.add_argument("--batch-size", type=int, default=2, help="packed 2,048-token sequences per GPU per step")
    parser.add_argument("--gpus", type=int, default=None, help="GPUs to use (default: all visible, at most 2)")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/finsent-bench-multigpu"))
    parser.add_argument("--vocab-gguf", type=Path, default=None,
                        help="llama.cpp's ggml-vocab-llama-bpe.gguf (default: from llama-cpp-python's sdist)")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "multigpu.json")
    args = parser.parse_args()
    keep_multicast_off()

    import torch

    if not torch.cuda.is_available():
        print("bench_multigpu needs CUDA GPUs", file=sys.stderr)
        return 2
    gpus = min(args.gpus or torch.cuda.device_count(), 2)
    vocab = args.vocab_gguf
    if vocab is None:
        from finetune.llama_cpp_source import llama_cpp_dir

        vocab = llama_cpp_dir() / "models" / "ggml-vocab-llama-bpe.gguf"
    args.work_dir.mkdir(parents=True, exist_ok=True)
    model, data = args.work_dir / "llama3-8b-random", args.work_dir / "train.jsonl"
    build_model(model, vocab)
    build_data(data, conversations=max(200, args.steps * args.batch_size * 2 * 2048 // 450 + 50))

    results = {"device": torch.cuda.get_device_name(0), "gpus_visible": torch.cuda.device_count(),
               "model": "Meta-Llama-3-8B config, random weights", "seq_len": 2048, "packing": True,
               "batch_size_per_gpu": args.batch_size, "steps": args.steps, "warmup_steps": args.warmup_steps,
               "setups": {}}
    setups = results["setups"]
    setups["lora_1gpu"] = run_setup("lora_1gpu", "single_gpu.yaml", 1, model, data, args.work_dir, args)
    skipped = {"status": "skipped", "reason": f"needs 2 GPUs, {gpus} visible"}
    if gpus >= 2:
        setups["lora_ddp_2gpu"] = run_setup("lora_ddp_2gpu", "ddp.yaml", 2, model, data, args.work_dir, args)
        setups["full_fsdp_2gpu"] = run_setup("full_fsdp_2gpu", "fsdp.yaml", 2, model, data, args.work_dir, args,
                                             "--full-finetune")
    else:
        setups["lora_ddp_2gpu"] = setups["full_fsdp_2gpu"] = skipped
    one, two = setups["lora_1gpu"], setups["lora_ddp_2gpu"]
    if one.get("status") == "ok" and two.get("status") == "ok":
        results["ddp_speedup_2gpu_vs_1gpu"] = round(two["tokens_per_s"] / one["tokens_per_s"], 3)
        print(f"DDP 2 GPUs / 1 GPU: {results['ddp_speedup_2gpu_vs_1gpu']:.2f}x (target >= 1.8x)")
    atomic_write_json(args.output, results)
    print(f"wrote {args.output}")
    return 0 if all(s.get("status") != "failed" for s in setups.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
