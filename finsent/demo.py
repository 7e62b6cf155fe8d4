"""The main job: the whole finsent pipeline, offline, on the small examples in examples/.

Runs each stage's own script in turn, exactly as a user would, with the embedded llama.cpp
engine (Gemma 3 270M) standing in for the large labelling LLM and for the models under test:
steps 01–05 → fine-tune (real on a CUDA machine, a one-line skip elsewhere) → eval on the
frozen example news snapshot (2 iterations) and on the labelled test split → metrics,
comparison report and heatmaps. Ends by listing where every output is.

    python -m finsent.demo [--config config.yaml] [--iterations 2] [--snapshot news.json]
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from finetune.run_layout import OutputLayout
from finsent.chain import (Evaluation, Export, FineTunedModel, Progress, ScriptRun, Sentiments, Training, evaluate,
                           export, run_script, sentiments, train, yaml_flow)
from finsent.config import load_config
from utils.cli import OneLineErrorParser
from utils.engine import DEFAULT_MODEL_NAME, EmbeddedEngine, EngineSettings
from utils.errors import FinsentError, cli_entry

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_SNAPSHOT = REPO_ROOT / "examples" / "news_snapshot.json"
# A valid answer is ~50-100 tokens; the base model, free, rambles to whatever cap it is given.
DEMO_MAX_TOKENS = 160
# The same figures on every run: labelling and accuracy decode greedily (temperature 0); the
# news iterations sample (their spread is what the reports measure) from seeds DEMO_SEED + i.
DEMO_SEED = 42
# One request at a time on one slot: llama.cpp's answer to a prompt depends on what else shares
# its batch (two greedy runs on 4 slots labelled 10 of 12 articles differently), so the demo
# gives up batching for answers that repeat.
DEMO_SLOTS = 1
# Free, the base model never closes its JSON and writes to the cap: 96 tokens still hold a valid
# answer (~50-100), and the demo's minutes go to the answers that show something.
FREE_MAX_TOKENS = 96


def busy_machine_threads() -> int:
    """llama.cpp's threads by default: half the cores. On all of them, a machine that other work
    keeps busy spends most of the time waiting for the slowest thread (a 2-core machine at load
    4-16 took over an hour)."""
    return max(1, (os.cpu_count() or 2) // 2)


class Demo:
    """The demo's numbered steps: a stage script each (finsent/chain.py runs it); the first that fails stops it."""

    def __init__(self, config_path: str | None, total_steps: int):
        self.config_path = Path(config_path) if config_path else None
        self.progress = Progress(total_steps)

    def step(self, title: str, script: str, *args: str) -> None:
        self.progress.header(title)
        run = run_script(script, [*(["--config", self.config_path] if self.config_path else []), *args])
        self.require(title, script, run)
        self.progress.closed(title, run)

    @staticmethod
    def require(title: str, script: str, run: ScriptRun) -> None:
        if not run.ok:
            raise FinsentError(f"the demo stopped at '{title}': {script} failed (its error is above)")


def _cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def _models_under_test(config, threads: int) -> list[dict]:
    """The base model free and schema-constrained, and the fine-tune where one was exported."""
    finetuned_gguf = OutputLayout(config.finetune.output_dir).gguf_file(config.finetune.gguf_model_name, "q4_k_m")
    each = {"backend": "llamacpp", "seed": DEMO_SEED, "parallel": DEMO_SLOTS, "threads": threads}
    models = [
        {"name": "gemma3-270m-base", "model": DEFAULT_MODEL_NAME, "max_tokens": FREE_MAX_TOKENS, **each},
        {"name": "gemma3-270m-base-structured", "model": DEFAULT_MODEL_NAME, "structured": True, **each},
    ]
    if finetuned_gguf.is_file():
        finetuned = FineTunedModel(f"{config.finetune.gguf_model_name}-q4_k_m", finetuned_gguf, threads=threads)
        models.append({**finetuned.models_to_test_entry(DEMO_SLOTS), "seed": DEMO_SEED})
    return models


def run(config_path: str | None, iterations: int, snapshot: Path = EXAMPLE_SNAPSHOT,
        threads: int | None = None) -> None:
    threads = threads or busy_machine_threads()
    config = load_config(config_path)
    cuda = _cuda_available()
    demo = Demo(config_path, total_steps=13 if cuda else 12)  # without CUDA, one skip line for two steps
    demo.step("step 01: airline tweets → labelled CSV", "dataset_builder/step_01_process_tweets.py")
    demo.step("step 02: Financial PhraseBank → labelled CSV",
              "dataset_builder/step_02_process_financial_phrasebank.py")
    with EmbeddedEngine(EngineSettings(n_parallel=DEMO_SLOTS, n_threads=threads)) as engine:
        labeller = {"name": "embedded", "kind": "openai_compatible", "base_url": engine.base_url,
                    "models": [DEFAULT_MODEL_NAME], "response_format": "json_schema",
                    "timeout_s": 600}
        demo.step("step 03: news articles labelled by the embedded llama.cpp engine (Gemma 3 270M)",
                  "dataset_builder/step_03_label_articles.py",
                  "--set", f"dataset.labeller.providers={yaml_flow([labeller])}",
                  "--set", f"dataset.labeller.max_in_flight={engine.settings.n_parallel}",
                  "--set", "dataset.labeller.temperature=0")
    demo.step("step 04: join the labelled sources", "dataset_builder/step_04_join_outputs.py")
    demo.step("step 05: ShareGPT dataset with leak-free splits", "dataset_builder/step_05_build_sharegpt_dataset.py")
    if cuda:
        title = "fine-tune: a short real run on this GPU"
        demo.require(title, "finetune/train.py", train(Training(
            config.finetune.output_dir, max_steps=30, config=demo.config_path), demo.progress, title))
        title = "export: GGUF q4_k_m and Modelfile"
        demo.require(title, "finetune/export_gguf.py", export(Export(
            config.finetune.output_dir, ("q4_k_m",), config=demo.config_path), demo.progress, title)[1])
    else:
        demo.progress.note("fine-tune and export: skipped", "no CUDA GPU here: run `python finetune/train.py "
                           "--config config.yaml` on a GPU machine (docs/gpu.md: Colab T4, one H100, several GPUs)")
    models = _models_under_test(config, threads)
    title = f"eval: every model × {iterations} iterations on the frozen example news snapshot"
    demo.require(title, "eval/generate_model_sentiments.py", sentiments(Sentiments(
        snapshot, tuple(models), iterations, {"num_tokens_to_predict": DEMO_MAX_TOKENS}, config=demo.config_path),
        demo.progress, title))
    labelled_dir = Path(config.eval.report_output_csv_folder) / "labelled"
    title = "eval: accuracy of the base model on the labelled test split"
    demo.require(title, "eval/evaluate_labelled.py", evaluate(Evaluation(
        config.dataset.step_05_dir / "test.jsonl", labelled_dir, structured=True, max_tokens=DEMO_MAX_TOKENS,
        parallel=DEMO_SLOTS, threads=threads, settings=(f"eval.seed={DEMO_SEED}",), config=demo.config_path),
        demo.progress, title)[1])
    models = yaml_flow(models)
    pairs = yaml_flow([["gemma3-270m-base", "gemma3-270m-base-structured"]])
    # the snapshot's headlines label the heatmaps' and the page's articles (else their URL slugs)
    report_overrides = ["--set", f"eval.models_to_test={models}", "--set", f"eval.comparison_pairs={pairs}",
                        "--set", f"eval.news_snapshot={snapshot}"]
    demo.step("reports: per-article metrics", "eval/generate_model_metrics.py", *report_overrides)
    demo.step("reports: statistical comparisons", "eval/generate_model_comparison_report.py", *report_overrides)
    demo.step("reports: heatmaps", "eval/generate_heatmaps.py", *report_overrides)
    demo.step("reports: one HTML page of all the above", "eval/generate_report.py", *report_overrides)
    _print_outputs(config, labelled_dir)


def _print_outputs(config, labelled_dir: Path) -> None:
    dataset, evaluation = config.dataset, config.eval
    print("\nThe demo is done. Where everything is:")
    for what, where in [
        ("labelled sources (steps 01–03)", f"{dataset.step_01_csv}, {dataset.step_02_csv}, {dataset.step_03_csv}"),
        ("labeller cache (step 03)", dataset.step_03_results),
        ("joined data (step 04)", dataset.step_04_csv),
        ("ShareGPT splits + dataset card (step 05)", dataset.step_05_dir),
        ("model answers per iteration", evaluation.sentiment_save_folder),
        ("accuracy on labelled data", labelled_dir),
        ("per-article metrics", f"{evaluation.report_output_file}, {evaluation.report_output_csv_file}"),
        ("comparison report", evaluation.report_output_csv_folder),
        ("heatmaps", evaluation.heatmaps_folder),
        ("one HTML report (open it in a browser)", evaluation.html_report_file),
    ]:
        print(f"  {what:<42} {where}")


@cli_entry
def main(argv: list[str] | None = None) -> int:
    parser = OneLineErrorParser(prog="python -m finsent.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="YAML config (default: ./config.yaml)")
    parser.add_argument("--iterations", type=int, default=2, help="eval iterations per model")
    parser.add_argument("--snapshot", type=Path, default=EXAMPLE_SNAPSHOT, help="frozen news snapshot to judge")
    parser.add_argument("--threads", type=int, help="llama.cpp CPU threads (make demo THREADS=N; default: half "
                                                    f"the cores, here {busy_machine_threads()}: a busy machine "
                                                    "runs slower on all of them)")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        raise FinsentError(f"--threads {args.threads}: at least 1")
    run(args.config, args.iterations, args.snapshot, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
