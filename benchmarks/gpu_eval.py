"""What bounds evaluation served on one GPU (issue 26): rows/s of eval/evaluate_labelled.py through
the openai backend against llama-servers on the one GPU (benchmarks/llama_server.sh serve), in
several layouts and sampler settings, each against one server of 16 slots measured in the same run;
the GPU's busy share sampled by nvidia-smi during each; then the embedded llama.cpp engine on the
machine's CPUs on the same rows, and each layout's class agreement with it
(benchmarks/engine_agreement.py; the target is ≥ 99%). The workload is gpu_server_check.sh's: the
GGUF given (the fine-tuned q4_k_m), the trained prompt, no schema, --max-tokens 96, temperature 0.

    python benchmarks/gpu_eval.py --server LLAMA_SERVER --gguf GGUF --input TEST_JSONL \
        [--source financial_phrasebank] [--rows 240] [--validation-rows 20] \
        [--layouts 1x16,4x8,8x8,8x16] [--samplers topk1,topk1-alone,backend] [--llama8b GGUF] \
        [--work /tmp/gpu_eval] [--output benchmarks/results/gpu_eval.json]
    python benchmarks/gpu_eval.py --table FILE        # the table of a results file
    python benchmarks/gpu_eval.py --print-winner FILE # servers, slots, flags: a line each (llama_server.sh)

The first layout is the baseline. Each --samplers variant runs at the baseline's layout; when a
layout and a sampler variant both beat the baseline, their combination runs too. --llama8b: a
LLaMA-3 8B q4_k_m (random weights: the answers are not JSON; only rows/s counts) at the baseline's
layout and the fastest Gemma layout. The results file is rewritten after every variant (a machine
taken back keeps what was measured): figures, ratios, commands, each server's /metrics and GPU
memory, and `winner`, the fastest variant whose answers agreed with the embedded engine's on
≥ 99% of the rows both answered validly (≥ 90% valid JSON): llama_server.sh serves with its layout
by default. --cpu: servers without a GPU (tests/cpu_llama_server.py): no nvidia-smi, no winner.
Runs detached (setsid nohup, benchmarks/gpu_follow.sh). Exit 0 when every variant ran.
"""
from __future__ import annotations

import argparse
import datetime
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from utils.errors import FinsentError, cli_entry  # noqa: E402
from utils.io import atomic_write_json, read_json  # noqa: E402

SERVE = REPO_ROOT / "benchmarks" / "llama_server.sh"
# Fewer candidates a token: llama-server's flags (tools/server, common/arg.cpp of llama.cpp as
# llama-cpp-python 0.3.36 vendors it). At temperature 0 each picks the most likely token, as the
# default chain does: top-k 1 leaves one candidate for the samplers after it; "alone" drops the
# others (penalties, DRY, top-n-sigma, typical, top-p, min-p, XTC: no-ops at their defaults);
# backend samples on the GPU (llama.cpp's backend sampling, experimental), with the default chain
# less the samplers it cannot run there (DRY, top-n-sigma, typical, XTC: no-ops at their defaults).
SAMPLERS = {
    "topk1": ["--top-k", "1"],
    "topk1-alone": ["--samplers", "top_k", "--top-k", "1"],
    "backend": ["--backend-sampling", "--samplers", "penalties;top_k;top_p;min_p;temperature"],
}
AGREEMENT_TARGET = 0.99
MAX_TOKENS = 96
METRICS = ("prompt_tokens_total", "tokens_predicted_total", "tokens_predicted_seconds_total", "n_decode_total",
           "n_busy_slots_per_decode")


def layout(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"([1-9][0-9]*)x([1-9][0-9]*)", text.strip())
    if not match:
        raise FinsentError(f"--layouts: '{text}' is not SERVERSxSLOTS (e.g. 4x8)")
    return int(match[1]), int(match[2])


class GpuSampler:
    """nvidia-smi's utilization.gpu every 250 ms while it runs (none without a GPU)."""

    def __init__(self, file: Path, gpu: int | None):
        self.file, self.child = file, None
        if gpu is not None:
            self.child = subprocess.Popen(
                ["nvidia-smi", "-i", str(gpu), "--query-gpu=utilization.gpu,memory.used",
                 "--format=csv,noheader,nounits", "-lms", "250"], stdout=file.open("w"), stderr=subprocess.DEVNULL)

    def stop(self) -> dict:
        if self.child is None:
            return {"gpu_busy_pct": None, "gpu_samples": 0, "gpu_memory_used_mib_max": None}
        self.child.terminate()
        self.child.wait()
        samples = [[float(part) for part in line.split(",")] for line in self.file.read_text().splitlines()
                   if re.fullmatch(r"\s*[\d.]+\s*,\s*[\d.]+\s*", line)]
        busy = [sample[0] for sample in samples]
        return {"gpu_busy_pct": round(sum(busy) / len(busy), 1) if busy else None, "gpu_samples": len(busy),
                "gpu_memory_used_mib_max": max((sample[1] for sample in samples), default=None)}


def server_metrics(url: str) -> dict:
    """The server's /metrics counters (llama-server --metrics), {} when it gives none."""
    import httpx

    try:
        text = httpx.get(url.removesuffix("/v1") + "/metrics", timeout=10).text
    except httpx.HTTPError:
        return {}
    found = dict(re.findall(r"^llamacpp:(\w+) ([-\d.e+]+)$", text, re.M))
    return {name: float(found[name]) for name in METRICS if name in found}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a child of ours that exited but was not reaped is a zombie, not a server
    status = Path(f"/proc/{pid}/stat")
    return not (status.is_file() and status.read_text().split(") ", 1)[-1].startswith("Z"))


class Servers:
    """`bash benchmarks/llama_server.sh serve` of SERVERS × SLOTS, started in its own session."""

    def __init__(self, args: argparse.Namespace, gguf: Path, folder: Path, servers: int, slots: int, flags: list[str]):
        self.urls_file = folder / "urls"
        self.command = ["bash", str(SERVE), "serve", args.server, str(gguf), str(folder / "server.log"),
                        str(self.urls_file), *flags]
        self.env = {**os.environ, "SERVERS": str(servers), "SERVER_SLOTS": str(slots), "SERVER_FLAGS": "",
                    "SERVER_ON_GPU": "0" if args.cpu else "1"}
        self.described = f"SERVERS={servers} SERVER_SLOTS={slots} bash {shlex.join([str(SERVE.relative_to(REPO_ROOT)), *self.command[2:]])}"
        self.log = folder / "serve.log"
        self.child: subprocess.Popen | None = None
        self.servers: list[dict] = []

    def start(self, timeout_s: float) -> None:
        self.child = subprocess.Popen(self.command, cwd=REPO_ROOT, env=self.env, stdout=self.log.open("w"),
                                      stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while not self.urls_file.is_file():
            if self.child.poll() is not None or time.monotonic() > deadline:
                tail = " / ".join(self.log.read_text(errors="replace").strip().splitlines()[-3:])
                raise FinsentError(f"the servers did not start ({self.log}: {tail})")
            time.sleep(0.5)
        for line in self.urls_file.read_text().splitlines():
            url, pid, gpu = line.split("\t")
            self.servers.append({"url": url, "pid": int(pid), "gpu_memory": None if gpu == "-" else gpu})

    def stop(self) -> bool:
        """Stops them all; True when no server process is left."""
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()  # its trap stops every server
            try:
                self.child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.child.pid, signal.SIGKILL)
                self.child.wait()
        return not any(alive(server["pid"]) for server in self.servers)


class Run:
    def __init__(self, args: argparse.Namespace):
        self.args, self.work = args, Path(args.work)
        self.result = {
            "benchmark": "gpu_eval", "issue": 26,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "what": (f"{Path(args.gguf).name}, trained prompt, {'--structured' if args.structured else 'no schema'}, "
                     f"--max-tokens {MAX_TOKENS}, temperature 0, {args.rows} {args.source or ''} test rows of "
                     f"{args.input} + {args.validation_rows} validation rows"),
            "command": shlex.join([sys.executable, *sys.argv]),
            "on_gpu": not args.cpu, "agreement_target": AGREEMENT_TARGET, "variants": [], "embedded": None,
            "winner": None, "complete": False,
        }

    def save(self) -> None:
        atomic_write_json(self.args.output, self.result, indent=1)

    def evaluation(self, name: str, model, parallel: int, extra: tuple[str, ...] = (), rows: int | None = None):
        from finsent.chain import Evaluation

        folder = self.work / name
        return Evaluation(Path(self.args.input), folder / "eval", model, source=self.args.source,
                          limit=rows or self.args.rows, validation_limit=self.args.validation_rows,
                          parallel=parallel, num_ctx=4096, max_tokens=MAX_TOKENS, progress_bars=False,
                          extra=(*(["--structured"] if self.args.structured else []), *extra),
                          log=folder / "evaluate.log", echo=False)

    def variant(self, name: str, servers: int, slots: int, flags: list[str], *, gguf: Path | None = None,
                model: str = "gemma", server_args: tuple[str, ...] = (), rows: int | None = None) -> dict:
        """One layout measured: started, asked, counted, stopped; recorded and saved."""
        import shutil

        from finsent.chain import FineTunedModel, Progress, evaluate

        folder = self.work / name
        shutil.rmtree(folder, ignore_errors=True)  # evaluate_labelled's cache must not answer for it
        folder.mkdir(parents=True)
        served = Servers(self.args, gguf or Path(self.args.gguf), folder, servers, slots, [*flags, *server_args])
        record = {"name": name, "model": model, "servers": servers, "slots": slots, "server_flags": flags,
                  "server_command": served.described, "ok": False, "error": None}
        print(f"--- {name}: {servers} × {slots} slots {' '.join(flags)}", flush=True)
        gpu = None
        try:
            served.start(timeout_s=120 * servers + 60)
            gpu = GpuSampler(folder / "nvidia-smi.csv", None if self.args.cpu else self.args.gpu_index)
            evaluation = self.evaluation(name, FineTunedModel(name, server_urls=tuple(s["url"] for s in served.servers),
                                                              server_slots=slots), slots, rows=rows)
            metrics, run = evaluate(evaluation, Progress())
            record.update(gpu.stop())
            gpu = None
            record["evaluate_command"] = shlex.join(["python", "eval/evaluate_labelled.py",
                                                     *map(str, evaluation.arguments())])
            for server in served.servers:
                server["metrics"] = server_metrics(server["url"])
            if metrics is None:
                raise FinsentError(f"evaluate_labelled failed: {run.last_line()} ({evaluation.log})")
            record.update({"ok": True, "rows": metrics["rows"], "seconds": metrics["seconds"],
                           "rows_per_s": round(metrics["rows_per_s"], 2),
                           "valid_json_rate": metrics["valid_json_rate"], "output": str(evaluation.output)})
        except FinsentError as exc:
            record["error"] = str(exc)
            print(f"error: {name}: {exc}", file=sys.stderr, flush=True)
        finally:
            if gpu is not None:
                record.update(gpu.stop())
            record["all_stopped"] = served.stop()
            record["per_server"] = served.servers
        # the first variant of a model is its baseline (a failed one: no ratios)
        baseline = next((v for v in self.result["variants"] if v["model"] == model), record)
        if record["ok"] and baseline["ok"]:
            record["ratio_to_baseline"] = round(record["rows_per_s"] / baseline["rows_per_s"], 2)
            if baseline is not record:
                record["agreement_with_baseline"] = self.agreement(baseline["output"], record["output"])
        self.result["variants"].append(record)
        self.save()
        print(f"    {_cell(record.get('rows_per_s'))} rows/s, GPU busy {_cell(record.get('gpu_busy_pct'), 1)}%"
              f"{'' if record['ok'] else ' (failed)'}", flush=True)
        return record

    def baseline(self, model: str) -> dict | None:
        first = next((v for v in self.result["variants"] if v["model"] == model), None)
        return first if first and first["ok"] else None

    @staticmethod
    def agreement(reference: str, candidate: str) -> dict:
        from benchmarks.engine_agreement import compare_engines

        try:
            found = compare_engines(Path(reference), Path(candidate))
        except FinsentError as exc:
            return {"error": str(exc)}
        return {key: found[key] for key in ("class_agreement", "rows_compared", "identical_answers",
                                             "valid_json_rate", "passed")}

    def embedded(self) -> None:
        from finsent.chain import FineTunedModel, Progress, evaluate

        threads = self.args.threads or os.cpu_count()
        extra = ("--chat-template", self.args.chat_template) if self.args.chat_template else ()
        evaluation = self.evaluation("embedded", FineTunedModel("embedded", Path(self.args.gguf), threads=threads),
                                     16, extra)
        print(f"--- embedded engine: {threads} CPU threads, 16 slots", flush=True)
        metrics, run = evaluate(evaluation, Progress())
        self.result["embedded"] = {
            "threads": threads, "slots": 16, "ok": metrics is not None,
            "evaluate_command": shlex.join(["python", "eval/evaluate_labelled.py", *map(str, evaluation.arguments())]),
            **({"rows": metrics["rows"], "seconds": metrics["seconds"], "rows_per_s": round(metrics["rows_per_s"], 2),
                "valid_json_rate": metrics["valid_json_rate"]} if metrics else {"error": run.last_line()})}
        if metrics:
            for record in self.result["variants"]:
                if record["ok"] and record["model"] == "gemma":
                    record["agreement_with_embedded"] = self.agreement(str(evaluation.output), record["output"])
            baseline = self.baseline("gemma")
            if baseline:
                self.result["embedded"]["baseline_over_embedded"] = round(
                    baseline["rows_per_s"] / self.result["embedded"]["rows_per_s"], 2)
        self.save()

    def choose_winner(self) -> None:
        agreed = [v for v in self.result["variants"] if v["ok"] and v["model"] == "gemma"
                  and (v.get("agreement_with_embedded") or {}).get("class_agreement") is not None
                  and v["agreement_with_embedded"]["class_agreement"] >= AGREEMENT_TARGET
                  and min(v["agreement_with_embedded"]["valid_json_rate"].values()) >= 0.9]
        if self.args.cpu or not agreed:
            self.result["winner"] = None
            return
        best = max(agreed, key=lambda v: v["rows_per_s"])
        self.result["winner"] = {key: best[key] for key in ("name", "servers", "slots", "server_flags", "rows_per_s",
                                                            "ratio_to_baseline")}

    def measure(self) -> bool:
        args = self.args
        layouts = [layout(text) for text in args.layouts.split(",")]
        samplers = [name for name in args.samplers.split(",") if name]
        server_args = tuple(args.server_arg)
        records = [self.variant(f"{n}x{m}", n, m, [], server_args=server_args) for n, m in layouts]
        base_n, base_m = layouts[0]
        records += [self.variant(f"{base_n}x{base_m}-{name}", base_n, base_m, SAMPLERS[name], server_args=server_args)
                    for name in samplers]
        baseline = self.baseline("gemma")
        if baseline:
            faster = [r for r in records if r["ok"] and r["rows_per_s"] > baseline["rows_per_s"]]
            best_layout = max((r for r in faster if not r["server_flags"]), key=lambda r: r["rows_per_s"], default=None)
            best_sampler = max((r for r in faster if r["server_flags"]), key=lambda r: r["rows_per_s"], default=None)
            if best_layout and best_sampler:
                sampler = best_sampler["name"].split("-", 1)[1]
                name = f"{best_layout['name']}-{sampler}"
                if all(r["name"] != name for r in records):
                    self.variant(name, best_layout["servers"], best_layout["slots"], SAMPLERS[sampler],
                                 server_args=server_args)
        self.embedded()
        self.choose_winner()
        self.save()
        if args.llama8b:
            fastest = max((r for r in self.result["variants"] if r["ok"] and not r["server_flags"]),
                          key=lambda r: r["rows_per_s"], default=None)
            big = [(base_n, base_m)] + ([(fastest["servers"], fastest["slots"])]
                                        if fastest and (fastest["servers"], fastest["slots"]) != (base_n, base_m) else [])
            for n, m in big:
                self.variant(f"llama8b-{n}x{m}", n, m, [], gguf=Path(args.llama8b), model="llama-3-8b-random",
                             server_args=("--chat-template", "llama3"), rows=args.llama8b_rows)
        self.result["complete"] = True
        self.save()
        return all(v["ok"] for v in self.result["variants"]) and bool((self.result["embedded"] or {}).get("ok"))


def _cell(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(result: dict) -> str:
    lines = [f"{result['what']}; on GPU: {result['on_gpu']}",
             "| variant | servers × slots | flags | rows/s | × baseline | GPU busy % | GPU MiB (max) | valid JSON "
             "| class agreement with the embedded engine |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for v in result["variants"]:
        agreement = (v.get("agreement_with_embedded") or {}).get("class_agreement")
        lines.append(f"| {v['name']} | {v['servers']} × {v['slots']} | {' '.join(v['server_flags']) or '–'} | "
                     f"{_cell(v.get('rows_per_s'))} | {_cell(v.get('ratio_to_baseline'))} | {_cell(v.get('gpu_busy_pct'), 1)} | "
                     f"{_cell(v.get('gpu_memory_used_mib_max'), 0)} | {_cell(v.get('valid_json_rate'), 3)} | "
                     f"{_cell(agreement, 4)}{'' if v['ok'] else ' (failed: ' + str(v['error']) + ')'} |")
    embedded = result.get("embedded")
    if embedded:
        lines.append(f"embedded engine ({embedded['threads']} CPU threads, {embedded['slots']} slots): "
                     f"{_cell(embedded.get('rows_per_s'))} rows/s")
    winner = result.get("winner")
    lines.append(f"winner: {winner['name']}, {winner['rows_per_s']} rows/s" if winner else "winner: none")
    return "\n".join(lines)


def print_winner(file: Path) -> None:
    """servers, slots, then each flag, a line each; nothing without a measured winner."""
    if not file.is_file():
        return
    winner = read_json(file).get("winner")
    if winner:
        print("\n".join(map(str, [winner["servers"], winner["slots"], *winner["server_flags"]])))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", type=Path, help="print the table of a results file, and stop")
    parser.add_argument("--print-winner", type=Path, help="print a results file's winner for llama_server.sh, and stop")
    parser.add_argument("--server", help="a llama-server binary (benchmarks/build_llama_server_gpu.sh's)")
    parser.add_argument("--gguf", help="the GGUF served (the fine-tuned q4_k_m)")
    parser.add_argument("--input", help="labelled rows: step 05's test.jsonl (validation.jsonl beside it)")
    parser.add_argument("--source", default="financial_phrasebank", help="step 05's rows of this source")
    parser.add_argument("--rows", type=int, default=240, help="test rows (seeded sample)")
    parser.add_argument("--validation-rows", type=int, default=20)
    parser.add_argument("--layouts", default="1x16,4x8,8x8,8x16", help="SERVERSxSLOTS, comma-separated; first: the baseline")
    parser.add_argument("--samplers", default=",".join(SAMPLERS), help=f"of {', '.join(SAMPLERS)} (empty: none)")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="one more llama-server argument for the Gemma servers (repeat: --server-arg=--chat-template "
                             "--server-arg=gemma for a base GGUF that stores no template)")
    parser.add_argument("--chat-template", help="the embedded engine's family for a GGUF without a template (gemma-3)")
    parser.add_argument("--structured", action="store_true", help="the answer's JSON schema (a base model)")
    parser.add_argument("--threads", type=int, help="the embedded engine's CPU threads (default: every core)")
    parser.add_argument("--llama8b", help="a LLaMA-3 8B q4_k_m GGUF (random weights): rows/s only")
    parser.add_argument("--llama8b-rows", type=int, default=64)
    parser.add_argument("--gpu-index", type=int, default=0, help="the GPU nvidia-smi samples")
    parser.add_argument("--cpu", action="store_true", help="servers without a GPU: no GPU check or sampling, no winner")
    parser.add_argument("--work", default="/tmp/gpu_eval")
    parser.add_argument("--output", default=str(REPO_ROOT / "benchmarks" / "results" / "gpu_eval.json"))
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    args = parser.parse_args(argv)
    if not (args.table or args.print_winner):
        for flag in ("server", "gguf", "input"):
            if not getattr(args, flag):
                parser.error(f"--{flag} is needed")
        unknown = set(filter(None, args.samplers.split(","))) - set(SAMPLERS)
        if unknown:
            parser.error(f"--samplers: unknown {', '.join(sorted(unknown))} (known: {', '.join(SAMPLERS)})")
    return args


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.print_winner:
        print_winner(args.print_winner)
        return 0
    if args.table:
        print(table(read_json(args.table)))
        return 0
    if not (os.access(args.server, os.X_OK) and Path(args.server).is_file()):
        raise FinsentError(f"--server: not an executable: {args.server}")
    for flag in ("gguf", "input", "llama8b"):
        if getattr(args, flag) and not Path(getattr(args, flag)).exists():
            raise FinsentError(f"--{flag}: not found: {getattr(args, flag)}")
    if Path(args.output).exists() and not args.overwrite:
        raise FinsentError(f"--output: {args.output} exists (a recorded result?): name another file, or --overwrite")
    # a SIGTERM (the machine going back, a kill) stops the servers on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run = Run(args)
    complete = run.measure()
    print(table(run.result))
    print(f"wrote {args.output}")
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
