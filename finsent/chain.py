"""The chain train → export → evaluate, written once: each step a function over its stage's own
script (finetune/train.py, finetune/export_gguf.py, eval/evaluate_labelled.py,
eval/generate_model_sentiments.py), run in a subprocess as a user runs it, with the flags its
callers share (the demo, benchmarks/seed_models.py, benchmarks/gpu_quality.sh) written here.

Each step prints a header line and a closing line. A finished training or export is reused on a
rerun while its command and its inputs are unchanged (the run folder's finished_steps.json,
finetune/run_layout.py); evaluate_labelled resumes by its own answer cache and
generate_model_sentiments skips the iterations it wrote.

    python -m finsent.chain train --base-model DIR --train FILE --output-dir DIR [--backend hf] ...
    python -m finsent.chain export --run DIR --quants f16,q8_0,q4_k_m [--gguf-dir DIR] [--name NAME]
    python -m finsent.chain evaluate --input FILE --output DIR [--gguf FILE | --server-url URL ...] [FLAGS...]
    python -m finsent.chain sentiments --gguf FILE --snapshot FILE --sample-size N --save-folder DIR ...

Flags the runner does not know are passed on to the stage script (evaluate, train).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import yaml  # noqa: E402

from finetune.run_layout import OutputLayout, gguf_name  # noqa: E402
from utils.cli import OneLineErrorParser  # noqa: E402
from utils.errors import FinsentError, cli_entry  # noqa: E402
from utils.io import atomic_write_json, atomic_write_text  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
# tqdm's redraws end so; a log of a 2-epoch run would be mostly them
PROGRESS_BAR_LINE = re.compile(r"it/s\]\s*$")
# The context of a fine-tune's accuracy run: one labelled text and its answer need ~600 tokens.
LABELLED_NUM_CTX = 2048


def yaml_flow(value: object) -> str:
    """A value for `--set KEY=VALUE` (YAML flow syntax: JSON is valid YAML)."""
    return json.dumps(value)


def given_flags(values: dict[str, object]) -> list:
    """`--flag value` for each flag whose value is given (None: the script's default)."""
    return [part for flag, value in values.items() if value is not None for part in (flag, value)]


def set_flags(settings: tuple[str, ...]) -> list:
    return [part for setting in settings for part in ("--set", setting)]


class Progress:
    """One header line a step (`=== [n/N] title` when the total is known, else a UTC time stamp)
    and one closing line with its seconds."""

    def __init__(self, total: int | None = None):
        self.total, self.done = total, 0

    def header(self, title: str) -> None:
        self.done += 1
        counter = f"[{self.done}/{self.total}]" if self.total else time.strftime("[%H:%M:%S]", time.gmtime())
        print(f"\n=== {counter} {title}", flush=True)

    def note(self, title: str, message: str) -> None:
        """A step that does not run, counted as one."""
        self.header(title)
        print(message, flush=True)

    @staticmethod
    def closed(title: str, run: ScriptRun) -> None:
        how = "done" if run.ok else f"failed (exit {run.returncode})"
        print(f"--- {title}: {how} in {run.seconds:.0f} s", flush=True)


@dataclass(frozen=True)
class ScriptRun:
    returncode: int
    seconds: float
    log: Path | None = None
    reused: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def last_line(self) -> str:
        """The log's last line (a failed script's error), or ''."""
        if self.log is None or not self.log.is_file():
            return ""
        return (self.log.read_text(encoding="utf-8", errors="replace").strip().splitlines() or [""])[-1]

    def require(self, what: str) -> None:
        if not self.ok:
            where = f" ({self.log})" if self.log else " (its error is above)"
            raise FinsentError(f"{what} failed{where}")


def run_script(script: str, args: list, *, log: Path | None = None, echo: bool = True,
               env: dict[str, str] | None = None) -> ScriptRun:
    """`python <repo>/<script> args...` in the working directory. With `log`, its output (less the
    progress bars' redraws) is written there too, or only there when `echo` is off."""
    command = [sys.executable, str(REPO_ROOT / script), *map(str, args)]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    started = time.perf_counter()
    if log is None:
        code = subprocess.run(command, env=full_env).returncode
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w", encoding="utf-8") as kept, subprocess.Popen(
                command, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                errors="replace") as child:
            for line in child.stdout:
                if PROGRESS_BAR_LINE.search(line):
                    continue
                kept.write(line)
                if echo:
                    sys.stdout.write(line)
                    sys.stdout.flush()
        code = child.returncode
    return ScriptRun(code, round(time.perf_counter() - started, 1), log)


def _signature(path: Path) -> object:
    """What tells a changed input: size and modification time of the file, or of each file of a folder."""
    if path.is_file():
        stat = path.stat()
        return [stat.st_size, stat.st_mtime_ns]
    return sorted([str(f.relative_to(path)), f.stat().st_size, f.stat().st_mtime_ns]
                  for f in path.rglob("*") if f.is_file())


def fingerprint(command: list, inputs: list[Path | None], config: Path | None) -> dict:
    """A step's command and its inputs' signatures; the config it read (./config.yaml by default) is one."""
    config = config or Path("config.yaml")
    named = [p for p in (*inputs, config) if p is not None and Path(p).exists()]
    return {"command": [str(part) for part in command],
            "inputs": {str(Path(p).resolve()): _signature(Path(p)) for p in named}}


class FinishedSteps:
    """The run folder's record of its finished steps: each step's fingerprint and its outputs."""

    def __init__(self, layout: OutputLayout):
        self.path = layout.finished_steps

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # none yet, or torn: the step runs again
            return {}

    def reusable(self, step: str, identity: dict) -> list[Path] | None:
        """The outputs of `step` when it finished with this fingerprint and they are all still there."""
        record = self._read().get(step)
        if not record or record["fingerprint"] != identity:
            return None
        outputs = [Path(p) for p in record["outputs"]]
        return outputs if all(p.exists() for p in outputs) else None

    def mark(self, step: str, identity: dict, outputs: list[Path]) -> None:
        steps = self._read()
        steps[step] = {"fingerprint": identity, "outputs": [str(p) for p in outputs]}
        atomic_write_json(self.path, steps, indent=2)

    def forget(self, step: str) -> None:
        steps = self._read()
        if steps.pop(step, None) is not None:
            atomic_write_json(self.path, steps, indent=2)


@dataclass(frozen=True)
class Training:
    """One finetune/train.py run into `output_dir` (from scratch: --overwrite); what is None is the
    config's. `fallback_backend`: trained again with it when `backend` fails."""
    output_dir: Path
    backend: str | None = None  # None: finetune.backend
    fallback_backend: str | None = None
    base_model: str | Path | None = None
    family: str | None = None
    train_file: Path | None = None
    validation_file: Path | None = None
    max_steps: int | None = None
    epochs: float | None = None
    learning_rate: float | None = None
    max_seq_length: int | None = None
    packing: bool | None = None
    full_finetune: bool = False
    settings: tuple[str, ...] = ()  # finetune.KEY=VALUE, each a --set
    extra: tuple[str, ...] = ()  # more train.py flags
    config: Path | None = None
    log: Path | None = None
    echo: bool = True

    @property
    def layout(self) -> OutputLayout:
        return OutputLayout(Path(self.output_dir))

    def arguments(self, backend: str | None) -> list:
        optional = {"--base-model": self.base_model, "--family": self.family, "--train": self.train_file,
                    "--validation": self.validation_file, "--max-steps": self.max_steps, "--epochs": self.epochs,
                    "--learning-rate": self.learning_rate, "--max-seq-length": self.max_seq_length}
        args: list = [*(["--config", self.config] if self.config else []), *(["--backend", backend] if backend else []),
                      "--output-dir", self.output_dir, "--overwrite"]
        args += given_flags(optional)
        if self.packing is not None:
            args.append("--packing" if self.packing else "--no-packing")
        if self.full_finetune:
            args.append("--full-finetune")
        return [*args, *set_flags(self.settings), *self.extra]


def train(training: Training, progress: Progress, title: str | None = None) -> ScriptRun:
    """finetune/train.py, or the run it finished before with the same command and inputs."""
    title = title or f"fine-tune ({training.backend or 'finetune.backend'}) into {training.output_dir}"
    progress.header(title)
    layout, finished = training.layout, FinishedSteps(training.layout)
    inputs = [training.train_file, training.validation_file,
              Path(training.base_model) if training.base_model else None]
    identity = fingerprint(["train.py", *training.arguments(training.backend)], inputs, training.config)
    if finished.reusable("train", identity):
        print(f"reused: {layout.summary} (trained before with the same command and inputs)", flush=True)
        return ScriptRun(0, 0.0, training.log, reused=True)
    run = run_script("finetune/train.py", training.arguments(training.backend), log=training.log, echo=training.echo)
    fallback = training.fallback_backend
    if not run.ok and fallback and fallback != training.backend:
        print(f"training with {training.backend} failed (the log above says why): again with {fallback}", flush=True)
        if training.log:
            training.log.replace(training.log.with_name(f"{training.log.stem}-{training.backend}-failed"
                                                        f"{training.log.suffix}"))
        run = run_script("finetune/train.py", training.arguments(fallback), log=training.log, echo=training.echo)
    if run.ok and layout.summary.is_file():
        finished.mark("train", identity, [layout.summary])
    progress.closed(title, run)
    return run


@dataclass(frozen=True)
class Export:
    """finetune/export_gguf.py over a training's merged model. With `quantize_binary` (a llama-quantize),
    the script writes f16 and that binary each other quant."""
    run_dir: Path
    quants: tuple[str, ...]
    gguf_dir: Path | None = None  # default: the run folder's gguf/
    name: str | None = None  # default: export_gguf's, the base model's name + -finsent
    family: str | None = None
    llama_cpp_source: Path | None = None
    quantize_binary: Path | None = None
    config: Path | None = None
    log: Path | None = None
    echo: bool = True

    @property
    def layout(self) -> OutputLayout:
        return OutputLayout(Path(self.run_dir))

    @property
    def folder(self) -> Path:
        return Path(self.gguf_dir) if self.gguf_dir else self.layout.gguf

    def arguments(self) -> list:
        by_script = ("f16",) if self.quantize_binary else self.quants
        optional = {"--config": self.config, "--name": self.name, "--family": self.family,
                    "--llama-cpp-source": self.llama_cpp_source}
        return ["--model", self.layout.merged, "--gguf-dir", self.folder, "--quants", ",".join(by_script),
                *given_flags(optional)]

    def file(self, quant: str) -> Path | None:
        if self.name:
            return self.folder / gguf_name(self.name, quant)
        found = sorted(self.folder.glob(f"*-{quant}.gguf"))
        return found[0] if found else None


def export(spec: Export, progress: Progress, title: str | None = None) -> tuple[dict[str, Path], ScriptRun]:
    """The GGUFs of `spec.quants` ({quant: file}; a failed export: those it wrote)."""
    title = title or f"export: GGUF {', '.join(spec.quants)}"
    progress.header(title)
    finished = FinishedSteps(spec.layout)
    identity = fingerprint(["export_gguf.py", *spec.arguments(), *(["--quantize", spec.quantize_binary]
                                                                   if spec.quantize_binary else [])],
                         [spec.layout.merged], spec.config)
    reused = finished.reusable("export", identity)
    if reused:
        print(f"reused: {', '.join(p.name for p in reused)} (exported before from the same model)", flush=True)
        return dict(zip(spec.quants, reused)), ScriptRun(0, 0.0, spec.log, reused=True)
    finished.forget("export")
    run = run_script("finetune/export_gguf.py", spec.arguments(), log=spec.log, echo=spec.echo)
    if run.ok and spec.quantize_binary:
        run = _quantize_with(spec, run)
    files = {quant: path for quant in spec.quants if (path := spec.file(quant)) and path.is_file()}
    if run.ok and len(files) == len(spec.quants):
        finished.mark("export", identity, [files[quant] for quant in spec.quants])
    progress.closed(title, run)
    return files, run


def _quantize_with(spec: Export, exported: ScriptRun) -> ScriptRun:
    """Each quant but f16 by the llama-quantize binary, its output in gguf/quantize-<quant>.log."""
    started = time.perf_counter()
    f16 = spec.file("f16")
    name = f16.name.removesuffix(gguf_name("", "f16"))
    for quant in (q for q in spec.quants if q != "f16"):
        log = spec.folder / f"quantize-{quant}.log"
        with log.open("w", encoding="utf-8") as output:
            code = subprocess.run([str(spec.quantize_binary), str(f16), str(spec.folder / gguf_name(name, quant)),
                                   quant.upper()], stdout=output, stderr=subprocess.STDOUT).returncode
        if code != 0:
            print("\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-5:]), file=sys.stderr)
            raise FinsentError(f"{spec.quantize_binary} failed for {quant} ({log})")
    return ScriptRun(0, round(exported.seconds + time.perf_counter() - started, 1), exported.log)


@dataclass(frozen=True)
class FineTunedModel:
    """A fine-tune under test, asked as it was trained (its system prompt and the bare text, no
    schema): a GGUF on the embedded engine, or any OpenAI-compatible server holding it."""
    name: str
    gguf: Path | None = None
    # …/v1 of each server that serves it as "finsent" (benchmarks/llama_server.sh's served_urls):
    # the openai backend keeps `server_slots` requests in flight on each, the least busy first
    server_urls: tuple[str, ...] = ()
    threads: int | None = None  # the embedded engine's CPU threads
    server_slots: int | None = None  # each server's slots (None: the run's parallel)

    def __post_init__(self):
        if (self.gguf is None) == (not self.server_urls):
            raise FinsentError(f"model {self.name}: give a GGUF or server URLs, one of them")

    def _served(self) -> dict:
        """The servers as the openai backend's entry keys."""
        slots = {"parallel": self.server_slots} if self.server_slots else {}
        return {"backend": "openai", "model": "finsent", "base_urls": list(self.server_urls), **slots}

    def evaluate_flags(self) -> list:
        if self.server_urls:
            model = ["--model", yaml_flow(self._served())]
        else:
            model = ["--gguf", self.gguf, *(["--threads", self.threads] if self.threads else [])]
        return [*model, "--name", self.name, "--prompt", "trained", "--no-structured"]

    def models_to_test_entry(self, parallel: int, num_ctx: int | None = None) -> dict:
        """The model as one eval.models_to_test entry (generate_model_sentiments)."""
        entry: dict = {"name": self.name, "prompt": "trained", "parallel": parallel}
        if self.server_urls:
            return {**entry, **self._served()}
        entry.update({"backend": "llamacpp", "gguf": str(self.gguf)})
        if num_ctx:
            entry["num_ctx"] = num_ctx
        if self.threads:
            entry["threads"] = self.threads
        return entry


@dataclass(frozen=True)
class Evaluation:
    """One eval/evaluate_labelled.py run into `output`: a fine-tune, or the embedded base model
    (model None) with the prompt and schema given. Answers greedily (temperature 0): the same
    figures on every run."""
    input: Path
    output: Path
    model: FineTunedModel | None = None
    prompt: str | None = None  # the base model's: few-shot or trained
    structured: bool | None = None  # the base model's
    source: str | None = None
    limit: int | None = None
    validation_limit: int | None = None
    parallel: int | None = None
    num_ctx: int | None = None
    max_tokens: int | None = None
    threads: int | None = None  # the base model's engine
    progress_bars: bool = True
    settings: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()  # more evaluate_labelled flags (--expected-sentiment, --label-map, ...)
    config: Path | None = None
    log: Path | None = None
    echo: bool = True
    env: dict[str, str] = field(default_factory=dict)

    def arguments(self) -> list:
        args: list = [*(["--config", self.config] if self.config else []), "--input", self.input,
                      "--output", self.output]
        if self.model:
            args += self.model.evaluate_flags()
        else:
            args += ["--prompt", self.prompt] if self.prompt else []
            args += [] if self.structured is None else ["--structured" if self.structured else "--no-structured"]
        optional = {"--source": self.source, "--limit": self.limit, "--validation-limit": self.validation_limit,
                    "--parallel": self.parallel, "--num-ctx": self.num_ctx, "--max-tokens": self.max_tokens,
                    "--threads": None if self.model else self.threads}
        args += given_flags(optional)
        args += [] if self.progress_bars else ["--no-progress"]
        return [*args, *set_flags(("eval.default_temperature=0", *self.settings)), *self.extra]


def evaluate(evaluation: Evaluation, progress: Progress, title: str | None = None) -> tuple[dict | None, ScriptRun]:
    """Its metrics.json (None where it wrote none) and the run."""
    title = title or f"evaluate {evaluation.model.name if evaluation.model else 'the base model'} on {evaluation.input}"
    progress.header(title)
    run = run_script("eval/evaluate_labelled.py", evaluation.arguments(), log=evaluation.log, echo=evaluation.echo,
                     env=evaluation.env)
    metrics_file = Path(evaluation.output) / "metrics.json"
    metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if run.ok and metrics_file.is_file() else None
    progress.closed(title, run)
    return metrics, run


@dataclass(frozen=True)
class Sentiments:
    """eval/generate_model_sentiments.py: `models` (models_to_test entries) × `sample_size` iterations
    on a news snapshot. `eval_settings` (eval keys) go as --set over `config`, or, with `run_config`,
    are written there as the run's whole config (built-in defaults for the rest) and read from it."""
    snapshot: Path
    models: tuple[dict, ...]
    sample_size: int
    eval_settings: dict = field(default_factory=dict)
    run_config: Path | None = None
    config: Path | None = None
    progress_bars: bool = True
    log: Path | None = None
    echo: bool = True

    def arguments(self) -> list:
        settings = {"models_to_test": list(self.models), **self.eval_settings}
        if self.run_config:
            return ["--config", self.run_config, "--snapshot", self.snapshot, "--sample-size", self.sample_size,
                    *([] if self.progress_bars else ["--no-progress"])]
        return [*(["--config", self.config] if self.config else []), "--snapshot", self.snapshot,
                "--sample-size", self.sample_size, *([] if self.progress_bars else ["--no-progress"]),
                *[part for key, value in settings.items() for part in ("--set", f"eval.{key}={yaml_flow(value)}")]]


def sentiments(spec: Sentiments, progress: Progress, title: str | None = None) -> ScriptRun:
    title = title or f"eval: every model × {spec.sample_size} iterations on {spec.snapshot}"
    progress.header(title)
    if spec.run_config:
        spec.run_config.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(spec.run_config, yaml.safe_dump(
            {"eval": {"models_to_test": list(spec.models), "sample_size": spec.sample_size, **spec.eval_settings}},
            sort_keys=False))
    run = run_script("eval/generate_model_sentiments.py", spec.arguments(), log=spec.log, echo=spec.echo)
    progress.closed(title, run)
    return run


# ---- the command line (benchmarks/gpu_quality.sh's steps) ----

def _existing(flag: str, path: str | None, *, folder: bool = False) -> Path | None:
    """A path flag's value, refused in one line when it does not exist."""
    if path is None:
        return None
    found = Path(path)
    if not (found.is_dir() if folder else found.exists()):
        raise FinsentError(f"{flag}: {'folder' if folder else 'file'} not found: {path}")
    return found


def _model_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gguf", help="the fine-tune's GGUF, run on the embedded engine")
    parser.add_argument("--server-url", action="append", default=[],
                        help="…/v1 of a server serving the fine-tune as 'finsent' (instead of --gguf); "
                             "once per server, requests go to the least busy")
    parser.add_argument("--server-slots", type=int,
                        help="requests in flight per server, its slots (default: --parallel)")
    parser.add_argument("--name", help="the model's name in the outputs")
    parser.add_argument("--threads", type=int, help="the embedded engine's CPU threads")


def _fine_tuned(args: argparse.Namespace) -> FineTunedModel | None:
    if not (args.gguf or args.server_url):
        return None
    if not args.name:
        raise FinsentError("--name: needed with --gguf or --server-url")
    if args.gguf and args.server_url:
        raise FinsentError("--gguf and --server-url exclude each other")
    if args.server_slots is not None and (args.server_slots < 1 or not args.server_url):
        raise FinsentError("--server-slots: a whole number ≥ 1, with --server-url")
    return FineTunedModel(args.name, _existing("--gguf", args.gguf), tuple(args.server_url), args.threads,
                          args.server_slots)


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    parser = OneLineErrorParser(prog="python -m finsent.chain", description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    # no abbreviations: a flag passed on to the script (--valid...) must not be read as one of ours
    steps = parser.add_subparsers(dest="step", required=True,
                                  parser_class=lambda **kw: OneLineErrorParser(allow_abbrev=False, **kw))

    training = steps.add_parser("train", help="finetune/train.py (reused when finished before alike)")
    training.add_argument("--output-dir", required=True, help="the run folder (finetune/run_layout.py)")
    training.add_argument("--backend", help="default: finetune.backend")
    training.add_argument("--fallback-backend", help="trained again with it when --backend fails")
    training.add_argument("--base-model")
    training.add_argument("--family")
    training.add_argument("--train", help="step 05's train.jsonl")
    training.add_argument("--validation", help="step 05's validation.jsonl")
    training.add_argument("--log", help="the training's output, also written here")

    exporting = steps.add_parser("export", help="finetune/export_gguf.py of a run's merged model")
    exporting.add_argument("--run", required=True, help="the training's run folder (its merged/ is exported)")
    exporting.add_argument("--quants", required=True, help="comma-separated, e.g. f16,q8_0,q4_k_m")
    exporting.add_argument("--gguf-dir", help="default: the run folder's gguf/")
    exporting.add_argument("--name")
    exporting.add_argument("--family")
    exporting.add_argument("--llama-cpp-source")
    exporting.add_argument("--quantize", help="a llama-quantize binary for every quant but f16")

    evaluating = steps.add_parser("evaluate", help="eval/evaluate_labelled.py, temperature 0")
    evaluating.add_argument("--input", required=True)
    evaluating.add_argument("--output", required=True)
    evaluating.add_argument("--parallel", type=int)
    evaluating.add_argument("--num-ctx", type=int, default=LABELLED_NUM_CTX)
    evaluating.add_argument("--no-progress", action="store_true")
    _model_flags(evaluating)

    asking = steps.add_parser("sentiments", help="eval/generate_model_sentiments.py on a fine-tune")
    asking.add_argument("--snapshot", required=True)
    asking.add_argument("--sample-size", type=int, required=True)
    asking.add_argument("--temperature", type=float, required=True)
    asking.add_argument("--save-folder", required=True, help="eval.sentiment_save_folder")
    asking.add_argument("--summary-file", required=True, help="eval.generation_summary_file")
    asking.add_argument("--run-config", required=True, help="the run's config, written here")
    asking.add_argument("--parallel", type=int, required=True)
    asking.add_argument("--num-ctx", type=int)
    _model_flags(asking)
    # train and evaluate pass what they do not know on to their script; the others know every flag
    args, passed_on = parser.parse_known_args(argv)
    if passed_on and args.step not in ("train", "evaluate"):
        parser.error(f"unrecognized arguments: {' '.join(passed_on)}")
    return args, passed_on


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args, passed_on = parse_args(argv)
    progress = Progress()
    if args.step == "train":
        run = train(Training(Path(args.output_dir), args.backend, args.fallback_backend, args.base_model,
                             args.family, _existing("--train", args.train),
                             _existing("--validation", args.validation),
                             extra=tuple(passed_on), log=Path(args.log) if args.log else None), progress)
        run.require("training")
    elif args.step == "export":
        quants = tuple(args.quants.split(","))
        quantize = args.quantize and (shutil.which(args.quantize) or args.quantize)
        if quantize and not os.access(quantize, os.X_OK):
            raise FinsentError(f"--quantize: not an executable: {args.quantize}")
        _existing("--run", args.run, folder=True)
        files, run = export(Export(Path(args.run), quants, _path(args.gguf_dir), args.name, args.family,
                                   _path(args.llama_cpp_source), _path(quantize)), progress)
        run.require("export")
        for quant, path in files.items():
            print(f"{quant}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    elif args.step == "evaluate":
        _existing("--input", args.input)
        _, run = evaluate(Evaluation(Path(args.input), Path(args.output), _fine_tuned(args), parallel=args.parallel,
                                     num_ctx=args.num_ctx, threads=args.threads,
                                     progress_bars=not args.no_progress, extra=tuple(passed_on)), progress)
        run.require("evaluate_labelled")
    else:
        model = _fine_tuned(args)
        if model is None:
            raise FinsentError("sentiments: give --gguf or --server-url")
        run = sentiments(Sentiments(
            _existing("--snapshot", args.snapshot), (model.models_to_test_entry(args.parallel, args.num_ctx),),
            args.sample_size, {"default_temperature": args.temperature, "structured": False,
                               "sentiment_save_folder": args.save_folder,
                               "generation_summary_file": args.summary_file},
            run_config=Path(args.run_config), progress_bars=False), progress)
        run.require("generate_model_sentiments")
    return 0


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


if __name__ == "__main__":
    sys.exit(main())
