"""Benchmark of step 03's labeller: Financial PhraseBank sentences as articles against the
tests' fault-injecting OpenAI-compatible server (300 ms latency, 5% injected faults).

Baseline, measured in the same run: the original's way, one request at a time with the same
retry policy (max_in_flight = 1), on a subset to keep the run short. Target: ≥ 20× the
baseline's articles/s, 0 lost, 0 duplicated. Writes benchmarks/results/labelling.json.

With --batch: the same articles through the server's Batch API (step 03 --batch) against the
synchronous path as the baseline, both priced at --price-input/--price-output per million
tokens (batch tokens at batch_discount 0.5). Target: the batch run costs ≤ 0.55× the
synchronous one, 0 lost, 0 duplicated; its wall time is the test server's (--batch-request-s
per request), not a real provider's. Writes benchmarks/results/labelling_batch.json.

    python benchmarks/bench_labelling.py [--articles 2000] [--baseline-articles 100]
    python benchmarks/bench_labelling.py --batch [--articles 2000]
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # `python benchmarks/x.py` puts benchmarks/ first instead

from dataset_builder.batch_labeller import label_in_batches  # noqa: E402
from dataset_builder.label_store import ResultStore  # noqa: E402
from dataset_builder.labeller import label_articles  # noqa: E402
from dataset_builder.news_articles import NewsArticle, article_id  # noqa: E402
from dataset_builder.settings import LabellerConfig  # noqa: E402
from contextlib import contextmanager  # noqa: E402

import httpx  # noqa: E402

PHRASEBANK = REPO_ROOT.parent / "shared" / "data" / "financial_phrasebank" / "Sentences_50Agree.txt"
RESULTS = REPO_ROOT / "benchmarks" / "results" / "labelling.json"
BATCH_RESULTS = REPO_ROOT / "benchmarks" / "results" / "labelling_batch.json"


def phrasebank_articles(path: Path, count: int) -> list[NewsArticle]:
    """The first `count` distinct sentences of the Financial PhraseBank (ISO-8859-1, sentence@label)."""
    articles: dict[str, NewsArticle] = {}
    for line in path.read_text(encoding="iso-8859-1").splitlines():
        sentence = line.rpartition("@")[0].strip()
        if sentence and article_id(sentence) not in articles:
            articles[article_id(sentence)] = NewsArticle(article_id(sentence), sentence, None)
        if len(articles) == count:
            break
    if len(articles) < count:
        sys.exit(f"error: {path} holds only {len(articles)} distinct sentences, {count} asked")
    return list(articles.values())


@contextmanager
def fault_server(args: argparse.Namespace):
    """The tests' fault server in its own process, as a real provider would be: its work
    does not share the labeller's interpreter. Yields its base URL."""
    command = [sys.executable, "-m", "tests.fault_server", "--latency", str(args.latency),
               "--fault-rate", str(args.fault_rate), "--seed", str(args.seed), "--retry-after", "1",
               "--batch-request-s", str(args.batch_request_s)]
    server = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        yield server.stdout.readline().strip()
    finally:
        server.terminate()
        server.wait(10)


def run(articles: list[NewsArticle], in_flight: int, args: argparse.Namespace, workdir: Path,
        batch: bool = False) -> dict:
    """Label `articles` against a fresh fault server (synchronously, or through its Batch API);
    count what was lost or duplicated, and price the tokens."""
    with fault_server(args) as base_url:
        config = LabellerConfig(
            providers=[{"name": "fault-server", "base_url": base_url, "models": ["bench"],
                        "timeout_s": args.timeout, "price_input_per_million": args.price_input,
                        "price_output_per_million": args.price_output}],
            max_in_flight=in_flight,  # the default retry policy, the same for every run
            batch_poll_initial_s=1.0, batch_poll_max_s=5.0)
        results = workdir / f"labels_{in_flight}{'_batch' if batch else ''}.jsonl"
        store = ResultStore(results)
        started, cpu_started = time.perf_counter(), time.process_time()
        progress = sys.stderr.isatty()
        summary = (label_in_batches(articles, articles, store, config, progress, batch_everything=True)
                   if batch else label_articles(articles, store, config, show_progress=progress))
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
        store.close()
        stats = httpx.get(base_url.removesuffix("/v1") + "/stats").json()
    lines = Counter(record["id"] for record in map(json.loads, results.read_text(encoding="utf-8").splitlines())
                    if record.get("kind") != "batch")
    usage = summary.usage["fault-server"]
    faults = stats["faults"]
    return {"articles": len(articles), "max_in_flight": in_flight, "seconds": round(seconds, 2),
            "articles_per_s": round(len(articles) / seconds, 2),
            "labeller_cpu_s": round(cpu_seconds, 2), "ok": summary.ok,
            "failed": summary.failed, "lost": len({a.id for a in articles} - set(lines)),
            "duplicated": sum(n - 1 for n in lines.values()),
            "requests": sum(faults.values()), "faults_injected": {k: v for k, v in faults.items() if k != "ok"},
            "batches_created": stats["batches_created"], "synchronous_requests": usage.requests,
            "batch_requests": usage.batch_requests,
            "prompt_tokens": usage.prompt_tokens + usage.batch_prompt_tokens,
            "completion_tokens": usage.completion_tokens + usage.batch_completion_tokens,
            "cost_usd": round(usage.cost(config.providers[0]), 6)}


def compare_batch(articles: list[NewsArticle], args: argparse.Namespace, workdir: Path) -> dict:
    """Step 03 --batch against the synchronous path on the same articles: wall time and cost."""
    synchronous = run(articles, args.in_flight, args, workdir)
    batch = run(articles, args.in_flight, args, workdir, batch=True)
    for name, figures in (("synchronous", synchronous), ("batch", batch)):
        print(f"{name}: {figures['articles']} articles in {figures['seconds']:.1f} s, {figures['ok']} ok, "
              f"{figures['failed']} failed, {figures['lost']} lost, {figures['duplicated']} duplicated, "
              f"{figures['batches_created']} batches, priced ${figures['cost_usd']:.4f}", flush=True)
    ratio = batch["cost_usd"] / synchronous["cost_usd"]
    met = ratio <= 0.55 and batch["lost"] == 0 and batch["duplicated"] == 0
    print(f"cost ratio batch / synchronous: {ratio:.3f} (target <= 0.55, 0 lost, 0 duplicated): "
          f"{'met' if met else 'NOT met'}; wall time ratio {batch['seconds'] / synchronous['seconds']:.2f} "
          f"(the test server's, {args.batch_request_s} s per batch request)")
    return {"synchronous": synchronous, "batch": batch, "cost_ratio": round(ratio, 3),
            "wall_time_ratio": round(batch["seconds"] / synchronous["seconds"], 3),
            "target_cost_ratio": 0.55, "met": met}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--baseline-articles", type=int, default=100,
                        help="the one-at-a-time baseline runs on the first N articles only")
    parser.add_argument("--in-flight", type=int, default=64, help="max_in_flight of the concurrent run")
    parser.add_argument("--latency", type=float, default=0.3, help="server latency per request, s")
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=2.0, help="client timeout (a hung request), s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--phrasebank", type=Path, default=PHRASEBANK)
    parser.add_argument("--output", type=Path, help=f"default: {RESULTS.name}, with --batch {BATCH_RESULTS.name}")
    parser.add_argument("--batch", action="store_true", help="compare step 03 --batch with the synchronous path")
    parser.add_argument("--batch-request-s", type=float, default=0.01,
                        help="seconds the server's batch spends on each request")
    parser.add_argument("--price-input", type=float, default=0.15, help="US$ per million prompt tokens")
    parser.add_argument("--price-output", type=float, default=0.60, help="US$ per million completion tokens")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    articles = phrasebank_articles(args.phrasebank, args.articles)
    if args.batch:
        with tempfile.TemporaryDirectory() as workdir:
            figures = compare_batch(articles, args, Path(workdir))
        return write_figures(args, "labelling_batch", figures, args.output or BATCH_RESULTS)
    with tempfile.TemporaryDirectory() as workdir:
        baseline = run(articles[: args.baseline_articles], 1, args, Path(workdir))
        print(f"baseline (one request at a time, first {baseline['articles']} articles): "
              f"{baseline['articles_per_s']:.2f} articles/s, {baseline['ok']} ok, {baseline['failed']} failed, "
              f"{baseline['lost']} lost, {baseline['duplicated']} duplicated", flush=True)
        concurrent = run(articles, args.in_flight, args, Path(workdir))
        print(f"concurrent ({args.in_flight} in flight, {concurrent['articles']} articles): "
              f"{concurrent['articles_per_s']:.2f} articles/s, {concurrent['ok']} ok, "
              f"{concurrent['failed']} failed, {concurrent['lost']} lost, "
              f"{concurrent['duplicated']} duplicated; faults injected: {concurrent['faults_injected']}")
    ratio = concurrent["articles_per_s"] / baseline["articles_per_s"]
    met = ratio >= 20 and concurrent["lost"] == 0 and concurrent["duplicated"] == 0
    print(f"ratio: {ratio:.1f}x the baseline's articles/s (target >= 20x, 0 lost, 0 duplicated): "
          f"{'met' if met else 'NOT met'}")
    figures = {"baseline": baseline, "concurrent": concurrent, "ratio": round(ratio, 2),
               "target_ratio": 20, "met": met}
    return write_figures(args, "labelling", figures, args.output or RESULTS)


def write_figures(args: argparse.Namespace, benchmark: str, figures: dict, output: Path) -> int:
    """The figures with the command, date, machine and server settings, as JSON; exit code 0 if met."""
    figures = {
        "benchmark": benchmark, "command": "python benchmarks/bench_labelling.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": __import__("os").cpu_count()},
        "server": {"latency_s": args.latency, "fault_rate": args.fault_rate, "client_timeout_s": args.timeout,
                   "retry_after_s": 1, "seed": args.seed, "batch_request_s": args.batch_request_s},
        "prices_per_million": {"input": args.price_input, "output": args.price_output, "batch_discount": 0.5},
        **figures,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {output}")
    return 0 if figures["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
