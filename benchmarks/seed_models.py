"""The seed's models at full size through the product's own scripts: LLaMA-3 8B Instruct, Mistral 7B
Instruct v0.3 and Phi-3 mini 4k Instruct, each as its released config with random weights and its
real vocabulary (finetune/random_models.py), trained on 2,048-token rows of step 05's data (packed).

Per family:
1. t4: finetune/train.py --backend unsloth, LoRA on a 4-bit base in fp16 (bf16 off, as on a T4),
   the README's Colab settings; the largest batch of 8, 4, 2, 1 that trains: peak GPU memory
   (torch.cuda.max_memory_allocated, train_summary.json) against a T4's 15.0 GiB, seconds per step;
2. h100: the same in bf16 on a 16-bit base: tokens/s; this run also saves the merged model;
3. export: finetune/export_gguf.py (f16 and q4_k_m; LLaMA-3 and Mistral also q8_0 and q5_k_m, config.yaml's set), then
   eval/evaluate_labelled.py --gguf on the q4_k_m, on the machine's CPUs, 3 rows of step 05's test
   split; each stage's wall time and disk use.
Results: benchmarks/results/seed_models.json (`families` keyed llama-3, mistral, phi-3), written
after every stage, so a run cut short keeps what ran; a run of some families keeps the others'
records (each record names the command, date and device that made it). A built random base is kept
beside a marker (<work>/<family>/base.json) and reused by the next run: `--build-only` builds the bases
while the GPU is busy with something else.

  python benchmarks/seed_models.py [--families llama-3,mistral,phi-3] [--data data/sharegpt] [--steps 10]
  python benchmarks/seed_models.py --families mistral --build-only   # the random base only (CPU, disk)
  python benchmarks/seed_models.py --tiny   # CPU proof of the plumbing: tiny configs, --backend hf
  python benchmarks/seed_models.py --table benchmarks/results/seed_models.json   # BENCHMARKS.md's table
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import yaml

if __package__ in (None, ""):  # run as a script: the repo root, not benchmarks/, is the import root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from finetune.llama_cpp_source import llama_cpp_dir  # noqa: E402
from finetune.random_models import SPECS, save_random_model  # noqa: E402
from finetune.settings import QUANTS  # noqa: E402
from finsent.chain import Evaluation, Export, FineTunedModel, Progress, Training  # noqa: E402
from finsent.chain import evaluate as chain_evaluate  # noqa: E402
from finsent.chain import export as chain_export  # noqa: E402
from finsent.chain import train as chain_train  # noqa: E402
from finsent.config import load_config  # noqa: E402
from utils.errors import FinsentError, cli_entry  # noqa: E402
from utils.io import atomic_write_json  # noqa: E402

FAMILIES = ("llama-3", "mistral", "phi-3")
T4_GIB = 15.0
T4_BATCHES = (8, 4, 2, 1)
WARMUP_STEPS = 2  # Unsloth compiles each decoder block in step 1 (and finishes in 2): not steady throughput
STEP_LINE = re.compile(r"step (\d+): loss [\d.naif]+, (\d+) tokens/s")  # finetune/trainer_setup.py's per-step log line
# LLaMA-3 and Mistral export config.yaml's default quants; Phi-3 f16 (the quantizer's input, kept so its
# size is measured) and q4_k_m. An 8B family at its peak holds ~51 GB: merged, f16 and three quants.
QUANTS_OF = {"llama-3": list(QUANTS), "mistral": list(QUANTS)}  # every quantization; the others: f16, q4_k_m
BASE_MARKER = "base.json"  # written once a random base is saved whole: its build figures; a rerun reuses the base
REPO = Path(__file__).resolve().parents[1]
PROGRESS = Progress()  # a time-stamped header a step: the run takes hours at full size


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated, of " + ",".join(FAMILIES))
    parser.add_argument("--data", type=Path, default=Path("data/sharegpt"), help="step 05's output folder")
    parser.add_argument("--work", type=Path, default=Path("outputs/seed_models"), help="models, runs, GGUFs")
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per training run")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--tiny", action="store_true", help="tiny configs on CPU (--backend hf): the plumbing only")
    parser.add_argument("--keep", action="store_true", help="keep the models and GGUFs (8B: ~60 GB a family)")
    parser.add_argument("--build-only", action="store_true",
                        help="build (or find) each family's random base and stop: the next run trains on it")
    parser.add_argument("--table", type=Path, metavar="RESULTS", help="print RESULTS as BENCHMARKS.md's table and stop")
    parser.add_argument("--results", type=Path, help="default: benchmarks/results/seed_models.json "
                                                     "(--tiny: <work>/seed_models_tiny.json)")
    return parser.parse_args(argv)


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def step_rates(log: Path, train_seconds: float) -> dict:
    """Each logged step's tokens/s (logging_steps 1), and the steady rate and seconds per step after
    the warm-up steps. Packed rows give every step the same tokens, so the rate over steps is their
    harmonic mean and a step's share of `train_seconds` is proportional to 1 / its rate."""
    rates = [int(m.group(2)) for m in STEP_LINE.finditer(log.read_text(encoding="utf-8", errors="replace"))]
    steady = rates[WARMUP_STEPS:]
    if not steady or not all(rates):
        return {"step_tokens_per_s": rates, "steady_tokens_per_s": None, "steady_seconds_per_step": None}
    return {"step_tokens_per_s": rates, "steady_tokens_per_s": round(len(steady) / sum(1 / r for r in steady), 1),
            "steady_seconds_per_step": round(train_seconds * sum(1 / r for r in steady) / len(steady)
                                             / sum(1 / r for r in rates), 2)}


def train(family: str, base: Path, args, output: Path, *, precision: str, four_bit: bool, batch: int,
          save_final: bool) -> tuple[dict | None, float, str]:
    """One train.py run: (train_summary.json or None, wall seconds, the log's last line)."""
    training = Training(output, "hf" if args.tiny else "unsloth", base_model=base, family=family,
                        train_file=args.data / "train.jsonl", max_steps=args.steps, max_seq_length=args.seq_len,
                        packing=True, settings=(f"finetune.precision={precision}",
                                                f"finetune.load_in_4bit={str(four_bit).lower()}",
                                                f"finetune.batch_size={batch}",
                                                f"finetune.save_final={str(save_final).lower()}"),
                        config=args.config, log=output.with_suffix(".log"), echo=False)
    run = chain_train(training, PROGRESS, f"{family}/{output.name}: train")
    summary = training.layout.summary
    if not run.ok or not summary.is_file():
        return None, run.seconds, run.last_line()
    figures = json.loads(summary.read_text())
    return {**figures, **step_rates(run.log, figures["train_seconds"])}, run.seconds, run.last_line()


def t4_path(family: str, base: Path, args, work: Path) -> dict:
    """The largest batch whose LoRA on a 4-bit base in fp16 peaks within a T4's memory (on a larger
    GPU a batch that does not fit runs anyway: its peak says so). On CPU: fp32, 16-bit base."""
    record: dict = {"t4_seq_len": args.seq_len, "t4_tried": {}}
    for batch in T4_BATCHES:
        summary, seconds, last = train(family, base, args, work / f"t4-b{batch}", precision="fp32" if args.tiny
                                       else "fp16", four_bit=not args.tiny, batch=batch, save_final=False)
        if summary is None:
            record["t4_tried"][batch] = {"error": last}
            if "out of memory" in last.lower():
                continue
            break
        peak = summary.get("peak_gib")
        tried = {"peak_gib": peak, "seconds_per_step": round(summary["train_seconds"] / args.steps, 2),
                 "steady_seconds_per_step": summary["steady_seconds_per_step"],
                 "steady_tokens_per_s": summary["steady_tokens_per_s"],
                 "step_tokens_per_s": summary["step_tokens_per_s"], "wall_s": seconds}
        record["t4_tried"][batch] = tried
        if peak is None or peak <= T4_GIB:
            return {**record, "t4_batch": batch, "t4_peak_gib": peak, "t4_fits": None if peak is None else True,
                    "t4_seconds_per_step": tried["seconds_per_step"],
                    "t4_steady_seconds_per_step": tried["steady_seconds_per_step"]}
    return {**record, "t4_batch": None, "t4_peak_gib": None, "t4_fits": False}


def h100_path(family: str, base: Path, args, work: Path) -> dict:
    summary, seconds, last = train(family, base, args, work / "h100", precision="fp32" if args.tiny else "bf16",
                                   four_bit=False, batch=T4_BATCHES[0], save_final=True)
    if summary is None:
        return {"train_ok": False, "h100_error": last, "h100_train_wall_s": seconds}
    return {"train_ok": True, "h100_tokens_per_s": summary["tokens_per_s"],
            "h100_steady_tokens_per_s": summary["steady_tokens_per_s"],
            "h100_step_tokens_per_s": summary["step_tokens_per_s"], "h100_peak_gib": summary.get("peak_gib"),
            "h100_mfu": summary.get("mfu"), "h100_train_wall_s": seconds,
            "merged_bytes": disk_bytes(work / "h100" / "merged")}


def export_and_serve(family: str, args, work: Path) -> dict:
    quants = tuple(QUANTS_OF.get(family, ["f16", "q4_k_m"]))
    files, run = chain_export(Export(work / "h100", quants, log=work / "export.log", echo=False), PROGRESS,
                              f"{family}/h100: export {', '.join(quants)}")
    record: dict = {"export_ok": run.ok, "export_s": run.seconds,
                    "quants": {quant: {"file": path.name, "bytes": disk_bytes(path)} for quant, path in files.items()}}
    if "q4_k_m" not in files:
        return {**record, "served_ok": False, "answers_valid": 0}
    # on the machine's CPUs: what a user without a GPU serves
    served = FineTunedModel(files["q4_k_m"].stem, files["q4_k_m"])
    metrics, run = chain_evaluate(Evaluation(args.data / "test.jsonl", work / "eval", served, limit=3,
                                             validation_limit=3, num_ctx=args.seq_len, progress_bars=False,
                                             log=work / "eval.log", echo=False, env={"CUDA_VISIBLE_DEVICES": ""}),
                                  PROGRESS, f"{family}/h100: q4_k_m answers 3 test rows")
    return {**record, "served_ok": run.ok, "serve_s": run.seconds,
            "answers_valid": round((metrics or {}).get("valid_json_rate", 0) * 3)}


def built_base(family: str, work: Path, llama_cpp: Path, tiny: bool) -> tuple[Path, dict]:
    """The family's random base in work and its build figures: the one a run before saved whole (its
    marker says so), else a new one; every other folder in work is a former run's and goes."""
    base, marker = work / SPECS[family].hub_id.split("/")[-1], work / BASE_MARKER
    built = json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() and base.is_dir() else None
    if built is not None and built.get("tiny") != tiny:
        built = None
    for entry in (work.iterdir() if work.is_dir() else ()):
        if built is not None and entry in (base, marker):
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    if built is not None:
        PROGRESS.header(f"{family}: the random base {base} built before ({built['build_s']} s) is reused")
        return base, {**built, "base_reused": True}
    PROGRESS.header(f"{family}: building the random base {base}")
    start = time.perf_counter()
    # Named as released, so the GGUFs are too (Meta-Llama-3-8B-Instruct → llama-3-8b-finsent-q4_k_m.gguf).
    save_random_model(family, base, llama_cpp, tiny=tiny)
    built = {"build_s": round(time.perf_counter() - start, 1), "base_bytes": disk_bytes(base), "tiny": tiny}
    atomic_write_json(marker, built)
    return base, {**built, "base_reused": False}


def previous_results(path: Path, tiny: bool, families: list[str]) -> dict:
    """What a run before recorded in path, less what this run redoes: its other families are kept."""
    if not path.is_file():
        return {}
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise FinsentError(f"--results: {path} is not JSON ({error.msg}, line {error.lineno}): move it away") from None
    if results.get("tiny", False) != tiny:
        return {}
    for key in ("families", "not_run"):
        results[key] = {family: record for family, record in results.get(key, {}).items() if family not in families}
    return results


def environment() -> dict:
    """The device and the versions that produced the figures."""
    import torch
    from importlib import metadata

    versions = {}
    for package in ("torch", "transformers", "trl", "peft", "unsloth", "bitsandbytes", "llama-cpp-python", "xllamacpp"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {"device": device, "cpu_count": os.cpu_count(), "versions": versions}


def table(results: dict) -> str:
    """BENCHMARKS.md's family × stage table of a results file."""
    def gb(value) -> str:
        return "–" if value is None else f"{value / 1e9:.1f}"

    rows = ["| family (config) | random base GB | T4 path (4-bit base, fp16): batch × 2,048 tokens, peak GiB | its s/step on "
            "the GPU, steady (all) | 16-bit base, bf16: tokens/s steady (all), peak GiB | merged GB | export s | GGUF GB | "
            "q4_k_m served on the CPUs: s, valid answers |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for family, r in results["families"].items():
        if r.get("t4_batch"):
            t4 = f"**{r['t4_batch']}**, **{r['t4_peak_gib']}**"
            t4_step = f"{r.get('t4_steady_seconds_per_step') or '–'} ({r['t4_seconds_per_step']})"
        else:
            tried = ", ".join(f"b{b}: {t.get('peak_gib', 'error')}" for b, t in r.get("t4_tried", {}).items())
            t4, t4_step = (f"none fits ({tried})" if tried else "not run"), "–"
        steady = r.get("h100_steady_tokens_per_s")
        h100 = (f"**{'–' if steady is None else f'{steady:,.0f}'}** ({r['h100_tokens_per_s']:,.0f}), {r['h100_peak_gib']}"
                if r.get("train_ok") else r.get("h100_error", "not run"))
        quants = ", ".join(f"{q} {gb(v['bytes'])}" for q, v in r.get("quants", {}).items()) or "–"
        served = f"{'yes' if r.get('served_ok') else 'no'}, {r.get('serve_s', '–')} s, {r.get('answers_valid', '–')} of 3"
        rows.append(f"| {family} ({r['hub_config'].split('/')[-1]}) | {gb(r.get('base_bytes'))} | {t4} | {t4_step} | {h100} | "
                    f"{gb(r.get('merged_bytes'))} | {r.get('export_s', '–')} | {quants} | {served} |")
    for family, why in results.get("not_run", {}).items():
        rows.append(f"| {family} | not run: {why} |" + " |" * 7)
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table:
        print(table(json.loads(args.table.read_text(encoding="utf-8"))))
        return 0
    families = args.families.split(",")
    unknown = [f for f in families if f not in SPECS]
    if unknown:
        raise FinsentError(f"--families: unknown {', '.join(unknown)} (known: {', '.join(FAMILIES)})")
    for split in ("train", "test"):
        if not (args.data / f"{split}.jsonl").is_file():
            raise FinsentError(f"--data: {args.data / f'{split}.jsonl'} not found (dataset_builder step 05's output)")
    if args.tiny:
        args.seq_len, args.steps = min(args.seq_len, 512), min(args.steps, 2)
    results_path = args.results or (args.work / "seed_models_tiny.json" if args.tiny
                                    else REPO / "benchmarks" / "results" / "seed_models.json")
    llama_cpp = llama_cpp_dir()
    # The README's settings (config.yaml's finetune section) without the validation loss or checkpoints.
    args.config = args.work / "seed_models.yaml"
    args.work.mkdir(parents=True, exist_ok=True)
    finetune = {**load_config(REPO / "config.yaml").finetune.model_dump(mode="json"),
                "validation_file": None, "save_steps": 0, "logging_steps": 1}
    args.config.write_text(yaml.safe_dump({"finetune": finetune}), encoding="utf-8")
    given = argv if argv is not None else sys.argv[1:]
    command, run_environment = " ".join(["python", "benchmarks/seed_models.py", *given]), environment()
    if args.build_only:
        for family in families:
            print(f"{family}: {json.dumps(built_base(family, args.work / family, llama_cpp, args.tiny)[1])}")
        return 0
    results = {"families": {}, **previous_results(results_path, args.tiny, families),
               "tiny": args.tiny, "steps": args.steps, "seq_len": args.seq_len, "t4_limit_gib": T4_GIB}
    for family in families:
        work = args.work / family
        record: dict = {"hub_config": SPECS[family].hub_id, "command": command,
                        "date": time.strftime("%Y-%m-%d"), "environment": run_environment}
        results["families"][family] = record

        def stage(figures: dict) -> None:  # recorded as each stage ends: a run cut short keeps what ran
            record.update(figures)
            atomic_write_json(results_path, results, indent=2)

        base, built = built_base(family, work, llama_cpp, args.tiny)
        stage({key: built[key] for key in ("build_s", "base_bytes", "base_reused")})
        stage(t4_path(family, base, args, work))
        stage(h100_path(family, base, args, work))
        if not args.keep:  # the merged model has what export needs; an 8B base is 16 GB of disk
            shutil.rmtree(base)
            (work / BASE_MARKER).unlink()
        stage(export_and_serve(family, args, work) if record["train_ok"] else
              {"export_ok": False, "quants": {}, "served_ok": False, "answers_valid": 0})
        if not args.keep:
            for folder in (work / "h100" / "merged", work / "h100" / "gguf", work / "h100" / "adapter"):
                shutil.rmtree(folder, ignore_errors=True)
        print(f"{family}: {json.dumps(record)}", flush=True)
    print(f"results: {results_path}")
    return 0


main = cli_entry(main)

if __name__ == "__main__":
    sys.exit(main())
