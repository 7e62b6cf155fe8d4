"""Benchmark of step 03's labeller: Financial PhraseBank sentences as articles against the
tests' fault-injecting OpenAI-compatible server (300 ms latency, 5% injected faults).

Baseline, measured in the same run: the original's way, one request at a time with the same
retry policy (max_in_flight = 1), on a subset to keep the run short. Target: ≥ 20× the
baseline's articles/s, 0 lost, 0 duplicated. Writes benchmarks/results/labelling.json.

    python benchmarks/bench_labelling.py [--articles 2000] [--baseline-articles 100]
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

from dataset_builder.label_store import ResultStore  # noqa: E402
from dataset_builder.labeller import label_articles  # noqa: E402
from dataset_builder.news_articles import NewsArticle, article_id  # noqa: E402
from dataset_builder.settings import LabellerConfig  # noqa: E402
from contextlib import contextmanager  # noqa: E402

import httpx  # noqa: E402

PHRASEBANK = REPO_ROOT.parent / "shared" / "data" / "financial_phrasebank" / "Sentences_50Agree.txt"
RESULTS = REPO_ROOT / "benchmarks" / "results" / "labelling.json"


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
               "--fault-rate", str(args.fault_rate), "--seed", str(args.seed), "--retry-after", "1"]
    server = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        yield server.stdout.readline().strip()
    finally:
        server.terminate()
        server.wait(10)


def run(articles: list[NewsArticle], in_flight: int, args: argparse.Namespace, workdir: Path) -> dict:
    """Label `articles` against a fresh fault server; count what was lost or duplicated."""
    with fault_server(args) as base_url:
        config = LabellerConfig(
            providers=[{"name": "fault-server", "base_url": base_url, "models": ["bench"],
                        "timeout_s": args.timeout}],
            max_in_flight=in_flight)  # the default retry policy, the same for both runs
        results = workdir / f"labels_{in_flight}.jsonl"
        store = ResultStore(results)
        started, cpu_started = time.perf_counter(), time.process_time()
        summary = label_articles(articles, store, config, show_progress=sys.stderr.isatty())
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
        store.close()
        faults = httpx.get(base_url.removesuffix("/v1") + "/stats").json()["faults"]
    lines = Counter(json.loads(line)["id"] for line in results.read_text(encoding="utf-8").splitlines())
    return {"articles": len(articles), "max_in_flight": in_flight, "seconds": round(seconds, 2),
            "articles_per_s": round(len(articles) / seconds, 2),
            "labeller_cpu_s": round(cpu_seconds, 2), "ok": summary.ok,
            "failed": summary.failed, "lost": len({a.id for a in articles} - set(lines)),
            "duplicated": sum(n - 1 for n in lines.values()),
            "requests": sum(faults.values()), "faults_injected": {k: v for k, v in faults.items() if k != "ok"}}


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
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    articles = phrasebank_articles(args.phrasebank, args.articles)
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
    figures = {
        "benchmark": "labelling", "command": "python benchmarks/bench_labelling.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": __import__("os").cpu_count()},
        "server": {"latency_s": args.latency, "fault_rate": args.fault_rate, "client_timeout_s": args.timeout,
                   "retry_after_s": 1, "seed": args.seed},
        "baseline": baseline, "concurrent": concurrent, "ratio": round(ratio, 2),
        "target_ratio": 20, "met": met,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
