"""LoRA training throughput on the LLaMA-3 8B shape: Unsloth against plain transformers + PEFT
(`--backend hf`), and variants of each (padding-free batches, another attention kernel, liger-kernel,
torch.compile, no gradient checkpointing, another batch size) beside their baseline, measured in the
same run on the same data.

The model has Meta-Llama-3-8B's config with random weights (throughput does not depend on what
the weights hold, only that they are not zeros); the tokenizer is Llama-3's. Every training row is
2,048 real tokens: random documents joined with EOS and cut to length (packed, no padding). Base
in bf16, LoRA on all linear layers, TRL's SFTTrainer, as finetune/train.py trains. Each backend runs
in its own process, since importing Unsloth patches transformers for the whole process.

A variant is `BACKEND[+OPTION...]`: padding_free (each batch flattened into one row, position_ids
restarting at every document: no attention across documents, where the baseline's rows attend across
their EOS joins), attn=sdpa|flex_attention|flash_attention_2|eager, liger, compile, gc=on|off, bs=N;
e.g. `hf+padding_free+attn=flex_attention+liger`. Each backend's plain baseline runs first.

MFU = 6 * N * tokens/s / the GPU's dense bf16 peak (finetune.recipe.PEAK_TFLOPS), N = the parameters
in the matmuls of the forward and backward: the frozen base without its input embedding (a lookup),
lm_head included, plus the trainable LoRA adapters. 6N is the usual convention (as if every weight got
its gradient); `mfu_4n` is finetune/train.py's LoRA convention (frozen weights get no weight gradient).
Attention FLOPs and gradient checkpointing's recomputation are left out of both.

Prints tokens/s, peak GPU memory and MFU per variant and the Unsloth/hf ratio; writes
benchmarks/results/train_throughput.json. Needs a CUDA GPU (about 60 GiB for the defaults);
`--tiny` runs the same path on a 2-layer model, on CPU too (the hf variants CPU can run), to check the
script (its results go to a temporary file unless --output says otherwise).
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
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # `python benchmarks/x.py` puts benchmarks/ first instead
RESULT_PATH = REPO_ROOT / "benchmarks" / "results" / "train_throughput.json"

from finetune.settings import ATTN_IMPLEMENTATIONS  # noqa: E402
from utils.errors import FinsentError, cli_entry  # noqa: E402
from utils.io import atomic_write_json  # noqa: E402

BACKENDS = ("unsloth", "hf")
# Where a --tiny run writes unless told: never over the GPU figures of RESULT_PATH.
TINY_RESULT_PATH = Path(tempfile.gettempdir()) / "train_throughput_tiny.json"
TARGETS = {"unsloth_tokens_per_s": 13000, "hf_tokens_per_s": 9000, "unsloth_over_hf": 1.3}
VARIANT_OPTIONS = "padding_free, attn=" + "|".join(ATTN_IMPLEMENTATIONS) + ", liger, compile, gc=on|off, bs=N"


@dataclass(frozen=True)
class Variant:
    """One measured setup; None: the run's flag (--gradient-checkpointing, --batch-size)."""

    backend: str
    padding_free: bool = False
    attn_implementation: str | None = None
    liger: bool = False
    compile: bool = False
    gradient_checkpointing: str | None = None
    batch_size: int | None = None

    @classmethod
    def parse(cls, spec: str) -> "Variant":
        """`hf+padding_free+attn=flex_attention` → Variant; a bad spec is a one-line error (exit 2)."""
        backend, *options = spec.split("+")
        if backend not in BACKENDS:
            raise FinsentError(f"--variants {spec}: the backend is one of {', '.join(BACKENDS)}")
        fields: dict = {}
        for option in options:
            name, _, value = option.partition("=")
            if option in ("padding_free", "liger", "compile"):
                fields[option] = True
            elif name == "attn" and value in ATTN_IMPLEMENTATIONS:
                fields["attn_implementation"] = value
            elif name == "gc" and value in ("on", "off"):
                fields["gradient_checkpointing"] = value
            elif name == "bs" and value.isdigit() and int(value) > 0:
                fields["batch_size"] = int(value)
            else:
                raise FinsentError(f"--variants {spec}: unknown option '{option}' ({VARIANT_OPTIONS})")
        variant = cls(backend, **fields)
        if backend == "unsloth" and (variant.attn_implementation or variant.liger or variant.compile):
            # as finetune.recipe.check_speed_options refuses them for finetune/train.py
            raise FinsentError(f"--variants {spec}: Unsloth brings its own kernels; attn=, liger and compile "
                             "are hf options")
        return variant

    @property
    def name(self) -> str:
        options = [option for option, on in (("padding_free", self.padding_free), ("liger", self.liger),
                                             ("compile", self.compile)) if on]
        if self.attn_implementation:
            options.append(f"attn={self.attn_implementation}")
        if self.gradient_checkpointing:
            options.append(f"gc={self.gradient_checkpointing}")
        if self.batch_size:
            options.append(f"bs={self.batch_size}")
        return "+".join([self.backend, *options])

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
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS,
                        help="baselines to measure, in this order (default: unsloth hf)")
    parser.add_argument("--variants", nargs="+", default=[],
                        help=f"variants to measure after the baselines, BACKEND[+OPTION...], options: {VARIANT_OPTIONS}")
    parser.add_argument("--padding-free", action="store_true",
                        help="also measure each backend with padding-free batches (the variant BACKEND+padding_free)")
    parser.add_argument("--attn-implementation", choices=ATTN_IMPLEMENTATIONS,
                        help="also measure the hf backend with this attention kernel (with the other variant flags)")
    parser.add_argument("--liger", action="store_true", help="also measure the hf backend with liger-kernel's kernels")
    parser.add_argument("--compile", action="store_true", help="also measure the hf backend under torch.compile")
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
    parser.add_argument("--output", type=Path, default=None,
                        help=f"JSON results file (default: {RESULT_PATH.relative_to(REPO_ROOT)}; with --tiny "
                             f"{TINY_RESULT_PATH})")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # "create" or a variant's name
    parser.add_argument("--child-output", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def variants_to_measure(args: argparse.Namespace) -> list[Variant]:
    """Each backend's baseline, then --variants, then what the variant flags ask of each backend."""
    variants = [Variant(backend) for backend in args.backends]
    variants += [Variant.parse(spec) for spec in args.variants]
    for backend in args.backends:
        hf_only = backend == "hf"
        flagged = Variant(backend, padding_free=args.padding_free,
                          attn_implementation=args.attn_implementation if hf_only else None,
                          liger=args.liger and hf_only, compile=args.compile and hf_only)
        if flagged != Variant(backend):
            variants.append(flagged)
    for variant in list(variants):  # a variant of a backend not in --backends still gets its baseline
        if Variant(variant.backend) not in variants:
            variants.insert(0, Variant(variant.backend))
    return list(dict.fromkeys(variants))


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
    drop_tokens_beyond(args.model_dir / "tokenizer.json", config.vocab_size)
    params = sum(p.numel() for p in model.parameters())
    args.child_output.write_text(json.dumps({"params": params}))


def drop_tokens_beyond(tokenizer_json: Path, vocab_size: int) -> None:
    """Removes the added tokens whose ids the model has no row for. transformers' reading
    of Llama-3's vocab GGUF adds <|endoftext|> as id 128,256, one past Meta-Llama-3-8B's vocabulary:
    Unsloth took it for the pad token and its fused cross-entropy asserted on the GPU (target out of
    bounds), where a real Llama-3 tokenizer has exactly the model's 128,256 ids."""
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    kept = [token for token in data["added_tokens"] if token["id"] < vocab_size]
    if len(kept) < len(data["added_tokens"]):
        atomic_write_json(tokenizer_json, {**data, "added_tokens": kept}, indent=None)


def packed_rows(n_rows: int, seq_len: int, vocab: int, eos: int,
                seed: int = 0) -> tuple[list[list[int]], list[list[int]]]:
    """Random documents (64–1,024 tokens, EOS last) joined and cut into rows of seq_len tokens; with each
    row's document lengths (the pieces of the documents it holds), for the padding-free variants."""
    rng = random.Random(seed)
    stream: list[int] = []
    ends: list[int] = []
    while len(stream) < n_rows * seq_len:
        stream.extend(rng.randrange(1000, vocab) for _ in range(rng.randint(64, 1024)))
        stream.append(eos)
        ends.append(len(stream))
    rows, seq_lengths = [], []
    for i in range(n_rows):
        start, stop = i * seq_len, (i + 1) * seq_len
        cuts = [start, *(end for end in ends if start < end < stop), stop]
        rows.append(stream[start:stop])
        seq_lengths.append([b - a for a, b in zip(cuts, cuts[1:])])
    return rows, seq_lengths


def load_unsloth(args: argparse.Namespace, variant: Variant):
    from unsloth import FastLanguageModel  # first: it patches transformers and TRL
    import torch

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(args.model_dir), max_seq_length=args.seq_len, dtype=torch.bfloat16,
        load_in_4bit=False, local_files_only=True)
    model = FastLanguageModel.get_peft_model(
        model, r=args.lora_r, lora_alpha=args.lora_r, lora_dropout=0.0, bias="none",
        target_modules=LORA_TARGETS, random_state=0,
        use_gradient_checkpointing="unsloth" if gradient_checkpointing(args, variant) == "on" else False)
    return model, tokenizer


def gradient_checkpointing(args: argparse.Namespace, variant: Variant) -> str:
    return variant.gradient_checkpointing or args.gradient_checkpointing


def load_hf(args: argparse.Namespace, variant: Variant):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.bfloat16, device_map=device,
                                                 attn_implementation=variant.attn_implementation or "sdpa")
    if gradient_checkpointing(args, variant) == "on":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(r=args.lora_r, lora_alpha=args.lora_r, lora_dropout=0.0,
                                             bias="none", target_modules=LORA_TARGETS, task_type="CAUSAL_LM"))
    return model, AutoTokenizer.from_pretrained(args.model_dir)


def train_and_time(args: argparse.Namespace) -> None:
    variant = Variant.parse(args.child)
    backend = variant.backend
    model, tokenizer = (load_unsloth if backend == "unsloth" else load_hf)(args, variant)
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from finetune.recipe import Device, Precision, count_params, flops_per_token, peak_flops

    cuda = torch.cuda.is_available()
    steps_total = args.warmup_steps + args.steps
    batch_size = variant.batch_size or args.batch_size
    rows, seq_lengths = packed_rows(batch_size * args.grad_accum * steps_total, args.seq_len,
                                    model.config.vocab_size, tokenizer.eos_token_id)
    # seq_lengths tells TRL's padding-free collator where each document starts (position_ids restart there)
    dataset = Dataset.from_dict({"input_ids": rows, **({"seq_lengths": seq_lengths} if variant.padding_free else {})})
    tokens_per_step = batch_size * args.grad_accum * args.seq_len

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.stamps: list[float] = []

        def on_step_end(self, *_args, **_kwargs):
            if cuda:
                torch.cuda.synchronize()
            self.stamps.append(time.perf_counter())

    timer = StepTimer()
    config = SFTConfig(
        output_dir=tempfile.mkdtemp(prefix=f"bench-{backend}-"),
        # TRL refuses max_length under padding_free without packing; the rows are seq_len already
        max_length=None if variant.padding_free else args.seq_len, packing=False, padding_free=variant.padding_free,
        use_liger_kernel=variant.liger, torch_compile=variant.compile,
        per_device_train_batch_size=batch_size, gradient_accumulation_steps=args.grad_accum,
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
    tokens_per_s = tokens_per_step * args.steps / seconds
    matmul_params = count_params(str(args.model_dir))[1] + trainable
    peak = peak_flops(Device.detect(), Precision(name="bf16", load_in_4bit=False))
    # 6N: flops_per_token's full fine-tune count, the usual convention; 4N: its LoRA count (train.py's log)
    mfu, mfu_4n = ((tokens_per_s * flops_per_token(matmul_params, full_finetune) / peak if peak else None)
                   for full_finetune in (True, False))
    result = {
        "variant": variant.name, "backend": backend, "padding_free": variant.padding_free,
        "attn_implementation": model.config._attn_implementation, "liger": variant.liger,
        "compile": variant.compile, "gradient_checkpointing": gradient_checkpointing(args, variant),
        "batch_size": batch_size, "loss_type": config.loss_type,
        "tokens_per_s": round(tokens_per_s, 1),
        "step_s": round(seconds / args.steps, 4), "timed_steps": args.steps,
        "tokens_per_step": tokens_per_step, "train_wall_s": round(wall, 1),
        "mfu": None if mfu is None else round(mfu, 4), "mfu_4n": None if mfu_4n is None else round(mfu_4n, 4),
        "matmul_params": matmul_params,
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
        return {"variant": role, "error": f"exit code {proc.returncode}", "process_wall_s": wall}
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


def write_results(output: Path, args: argparse.Namespace, runs: dict, started: float) -> float | None:
    """Writes the variants measured so far to `output` (atomically); returns Unsloth's tokens/s over hf's."""
    ratio = None
    if all("tokens_per_s" in runs.get(b, {}) for b in BACKENDS):
        ratio = round(runs["unsloth"]["tokens_per_s"] / runs["hf"]["tokens_per_s"], 3)
    result = {
        "benchmark": "train_throughput", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device_name(), "model": "LLaMA-3 8B shape (Meta-Llama-3-8B config, random weights)"
        + (" [tiny]" if args.tiny else ""),
        "settings": {"seq_len": args.seq_len, "batch_size": args.batch_size, "grad_accum": args.grad_accum,
                     "timed_steps": args.steps, "warmup_steps": args.warmup_steps, "lora_r": args.lora_r,
                     "lora_targets": LORA_TARGETS, "gradient_checkpointing": args.gradient_checkpointing,
                     "precision": "bf16 base, bf16 autocast",
                     "packing": "documents joined by EOS, cut to seq_len; padding_free variants: each batch one "
                                "row, position_ids restarting at every document",
                     "mfu": "6 * N * tokens/s / dense bf16 peak, N = matmul parameters (base without its input "
                            "embedding, lm_head included) + LoRA; mfu_4n: 4 * N (finetune/train.py's LoRA count)"},
        # the baselines first, under their backend's name; each variant's over_baseline: its tokens/s over them
        "variants": runs, "unsloth_over_hf": ratio, "targets": TARGETS,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    atomic_write_json(output, result, indent=2)  # it makes the folder
    return ratio


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
        raise FinsentError("--steps and --warmup-steps must be at least 1")
    if not (args.tokenizer / "tokenizer.json").is_file():
        raise FinsentError(f"no tokenizer.json in --tokenizer {args.tokenizer}")
    variants = variants_to_measure(args)  # a bad --variants spec fails here, before any model is made
    output = args.output or (TINY_RESULT_PATH if args.tiny else RESULT_PATH)
    args.model_dir = args.model_dir or default_model_dir(args.tiny)
    started = time.perf_counter()
    if not (args.model_dir / "config.json").is_file():
        created = run_child("create", args, argv)
        if "error" in created:
            raise FinsentError(f"creating the random model in {args.model_dir} failed ({created['error']})")
        print(f"random model in {args.model_dir}: {created['params'] / 1e9:.2f} B parameters, "
              f"{created['process_wall_s']} s")
    runs: dict = {}
    for variant in variants:
        runs[variant.name] = run_child(variant.name, args, argv)
        baseline = runs.get(variant.backend, {})
        if variant.name != variant.backend and "tokens_per_s" in runs[variant.name] and "tokens_per_s" in baseline:
            runs[variant.name]["over_baseline"] = round(runs[variant.name]["tokens_per_s"] / baseline["tokens_per_s"], 3)
        print(f"{variant.name}: {json.dumps(runs[variant.name])}", flush=True)
        # after every variant: a run cut short (a lent machine taken back) keeps what it measured
        ratio = write_results(output, args, runs, started)
    width = max(len(name) for name in runs)
    print(f"\n{'variant':<{width}} {'tokens/s':>10} {'x base':>7} {'peak GiB':>9} {'MFU':>6} {'step s':>8}")
    for name, run in runs.items():
        mfu = f"{run['mfu']:.1%}" if run.get("mfu") is not None else "-"
        print(f"{name:<{width}} {run.get('tokens_per_s', 'failed'):>10} {run.get('over_baseline', '-'):>7} "
              f"{run.get('peak_gib') or '-':>9} {mfu:>6} {run.get('step_s', '-'):>8}")
    print(f"unsloth / hf = {ratio}; targets: Unsloth {TARGETS['unsloth_tokens_per_s']}, hf {TARGETS['hf_tokens_per_s']} "
          f"tokens/s; results in {output}")
    return 0


main = cli_entry(main)

if __name__ == "__main__":
    sys.exit(main())
