"""LoRA training throughput on the LLaMA-3 8B shape: Unsloth against plain transformers + PEFT
(`--backend hf`), measured in the same run on the same data.

The model has Meta-Llama-3-8B's config with random weights (throughput does not depend on what
the weights hold, only that they are not zeros); the tokenizer is Llama-3's. Every training row is
2,048 real tokens: random documents joined with EOS and cut to length (packed, no padding). Base
in bf16, LoRA on all linear layers, TRL's SFTTrainer, as finetune/train.py trains. Each backend runs
in its own process, since importing Unsloth patches transformers for the whole process.

Prints tokens/s and peak GPU memory per backend and the Unsloth/hf ratio; writes
benchmarks/results/train_throughput.json. Needs a CUDA GPU (about 60 GiB for the defaults);
`--tiny` runs the same path on a 2-layer model, on CPU too (hf backend), to check the script.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULT_PATH = REPO_ROOT / "benchmarks" / "results" / "train_throughput.json"

# Meta-Llama-3-8B's config.json (the shape; the weights here are random).
LLAMA3_8B = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": False,
    "attention_dropout": 0.0, "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu",
    "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
    "max_position_embeddings": 8192, "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None,
    "rope_theta": 500000.0, "tie_word_embeddings": False, "use_cache": False, "vocab_size": 128256,
}
TINY = {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2}
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", default=["unsloth", "hf"], choices=["unsloth", "hf"],
                        help="backends to measure, in this order (default: unsloth hf)")
    parser.add_argument("--tokenizer", type=Path, required=True,
                        help="a Llama-3 tokenizer folder (tokenizer.json): AutoTokenizer.from_pretrained(DIR, "
                             "gguf_file='ggml-vocab-llama-bpe.gguf').save_pretrained(OUT), DIR being "
                             "vendor/llama.cpp/models of llama-cpp-python's sdist")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="where the random-weight model is written (default: /dev/shm if it has room, else a temp dir)")
    parser.add_argument("--seq-len", type=int, default=2048, help="tokens per packed row")
    parser.add_argument("--batch-size", type=int, default=4, help="rows per step")
    parser.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps")
    parser.add_argument("--steps", type=int, default=12, help="timed optimizer steps")
    parser.add_argument("--warmup-steps", type=int, default=3, help="untimed optimizer steps first")
    parser.add_argument("--gradient-checkpointing", choices=["on", "off"], default="on",
                        help="on: Unsloth's offloaded checkpointing / transformers' non-reentrant one")
    parser.add_argument("--lora-r", type=int, default=16, help="LoRA rank (alpha = rank)")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model of the same family, to test the script")
    parser.add_argument("--output", type=Path, default=RESULT_PATH, help="JSON results file")
    parser.add_argument("--child", choices=["create", "unsloth", "hf"], help=argparse.SUPPRESS)
    parser.add_argument("--child-output", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# child processes
def create_random_model(args: argparse.Namespace) -> None:
    """Random bf16 weights with the 8B config, written as safetensors beside the tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**{**LLAMA3_8B, **(TINY if args.tiny else {})})
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    model.config.torch_dtype = torch.bfloat16
    model.save_pretrained(args.model_dir, max_shard_size="5GB")
    AutoTokenizer.from_pretrained(args.tokenizer).save_pretrained(args.model_dir)
    params = sum(p.numel() for p in model.parameters())
    args.child_output.write_text(json.dumps({"params": params}))


def packed_rows(n_rows: int, seq_len: int, vocab: int, eos: int, seed: int = 0) -> list[list[int]]:
    """Random documents (64–1,024 tokens) joined by EOS and cut into rows of seq_len tokens."""
    rng = random.Random(seed)
    stream: list[int] = []
    while len(stream) < n_rows * seq_len:
        stream.extend(rng.randrange(1000, vocab) for _ in range(rng.randint(64, 1024)))
        stream.append(eos)
    return [stream[i * seq_len:(i + 1) * seq_len] for i in range(n_rows)]


def load_unsloth(args: argparse.Namespace):
    from unsloth import FastLanguageModel  # first: it patches transformers and TRL
    import torch

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(args.model_dir), max_seq_length=args.seq_len, dtype=torch.bfloat16,
        load_in_4bit=False, local_files_only=True)
    model = FastLanguageModel.get_peft_model(
        model, r=args.lora_r, lora_alpha=args.lora_r, lora_dropout=0.0, bias="none",
        target_modules=LORA_TARGETS, random_state=0,
        use_gradient_checkpointing="unsloth" if args.gradient_checkpointing == "on" else False)
    return model, tokenizer


def load_hf(args: argparse.Namespace):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.bfloat16, device_map=device,
                                                 attn_implementation="sdpa")
    if args.gradient_checkpointing == "on":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(r=args.lora_r, lora_alpha=args.lora_r, lora_dropout=0.0,
                                             bias="none", target_modules=LORA_TARGETS, task_type="CAUSAL_LM"))
    return model, AutoTokenizer.from_pretrained(args.model_dir)


def train_and_time(args: argparse.Namespace) -> None:
    backend = args.child
    model, tokenizer = (load_unsloth if backend == "unsloth" else load_hf)(args)
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    cuda = torch.cuda.is_available()
    steps_total = args.warmup_steps + args.steps
    rows = packed_rows(args.batch_size * args.grad_accum * steps_total, args.seq_len,
                       model.config.vocab_size, tokenizer.eos_token_id)
    dataset = Dataset.from_dict({"input_ids": rows})
    tokens_per_step = args.batch_size * args.grad_accum * args.seq_len

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.stamps: list[float] = []

        def on_step_end(self, *_args, **_kwargs):
            if cuda:
                torch.cuda.synchronize()
            self.stamps.append(time.perf_counter())

    timer = StepTimer()
    config = SFTConfig(
        output_dir=tempfile.mkdtemp(prefix=f"bench-{backend}-"), max_length=args.seq_len, packing=False,
        per_device_train_batch_size=args.batch_size, gradient_accumulation_steps=args.grad_accum,
        max_steps=steps_total, learning_rate=2e-4, lr_scheduler_type="constant", warmup_steps=0,
        logging_steps=1, save_strategy="no", report_to=[], bf16=cuda, seed=0,
        gradient_checkpointing=False,  # each backend set its own above
        dataset_kwargs={"skip_prepare_dataset": True}, remove_unused_columns=False,
        dataloader_num_workers=0, optim="adamw_torch_fused" if cuda else "adamw_torch")
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[timer])
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - started
    seconds = timer.stamps[-1] - timer.stamps[args.warmup_steps - 1]  # the timed steps only
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    result = {
        "backend": backend, "tokens_per_s": round(tokens_per_step * args.steps / seconds, 1),
        "step_s": round(seconds / args.steps, 4), "timed_steps": args.steps,
        "tokens_per_step": tokens_per_step, "train_wall_s": round(wall, 1),
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
        "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2) if cuda else None,
        "trainable_params": trainable, "final_loss": trainer.state.log_history[-2].get("loss")
        if len(trainer.state.log_history) > 1 else None,
    }
    args.child_output.write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------------
# the run
def run_child(role: str, args: argparse.Namespace, argv: list[str]) -> dict:
    out = Path(tempfile.mkstemp(prefix=f"bench-{role}-", suffix=".json")[1])
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--model-dir", str(args.model_dir),
           "--child", role, "--child-output", str(out)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wall = round(time.perf_counter() - started, 1)
    if proc.returncode != 0 or not out.read_text():
        return {"backend": role, "error": f"exit code {proc.returncode}", "process_wall_s": wall}
    return {**json.loads(out.read_text()), "process_wall_s": wall}


def default_model_dir(tiny: bool) -> Path:
    need = 4 if tiny else 20 * 2**30
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and shutil.disk_usage(shm).free > need else Path(tempfile.gettempdir())
    return base / ("finsent-llama3-tiny-random" if tiny else "finsent-llama3-8b-random")


def device_name() -> str:
    try:
        import torch
        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"CPU ({platform.processor() or platform.machine()})"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.child == "create":
        create_random_model(args)
        return 0
    if args.child:
        train_and_time(args)
        return 0
    if args.warmup_steps < 1 or args.steps < 1:
        sys.exit("error: --steps and --warmup-steps must be at least 1")
    if not (args.tokenizer / "tokenizer.json").is_file():
        sys.exit(f"error: no tokenizer.json in --tokenizer {args.tokenizer}")
    args.model_dir = args.model_dir or default_model_dir(args.tiny)
    started = time.perf_counter()
    if not (args.model_dir / "config.json").is_file():
        created = run_child("create", args, argv)
        if "error" in created:
            sys.exit(f"error: creating the random model in {args.model_dir} failed ({created['error']})")
        print(f"random model in {args.model_dir}: {created['params'] / 1e9:.2f} B parameters, "
              f"{created['process_wall_s']} s")
    runs = {}
    for backend in args.backends:
        runs[backend] = run_child(backend, args, argv)
        print(f"{backend}: {json.dumps(runs[backend])}", flush=True)
    ratio = None
    if all("tokens_per_s" in runs.get(b, {}) for b in ("unsloth", "hf")):
        ratio = round(runs["unsloth"]["tokens_per_s"] / runs["hf"]["tokens_per_s"], 3)
    result = {
        "benchmark": "train_throughput", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device_name(), "model": "LLaMA-3 8B shape (Meta-Llama-3-8B config, random weights)"
        + (" [tiny]" if args.tiny else ""),
        "settings": {"seq_len": args.seq_len, "batch_size": args.batch_size, "grad_accum": args.grad_accum,
                     "timed_steps": args.steps, "warmup_steps": args.warmup_steps, "lora_r": args.lora_r,
                     "lora_targets": LORA_TARGETS, "gradient_checkpointing": args.gradient_checkpointing,
                     "precision": "bf16 base, bf16 autocast", "packing": "documents joined by EOS, cut to seq_len"},
        "backends": runs, "unsloth_over_hf": ratio,
        "targets": {"tokens_per_s": 8000, "unsloth_over_hf": 1.3},
        "wall_s": round(time.perf_counter() - started, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".json.partial")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, args.output)
    print(f"\n{'backend':<8} {'tokens/s':>10} {'peak GiB':>9} {'step s':>8}")
    for backend, run in runs.items():
        print(f"{backend:<8} {run.get('tokens_per_s', 'failed'):>10} {run.get('peak_gib') or '-':>9} "
              f"{run.get('step_s', '-'):>8}")
    print(f"unsloth / hf = {ratio} (target 1.3); target 8000 tokens/s; results in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
