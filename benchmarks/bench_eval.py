"""Eval throughput: our runner vs the original study's loop on the same embedded llama.cpp server.

Workload: N articles × K iterations × 2 models (Gemma 3 270M with the few-shot prompt, as the
original sent base models, and with the bare-text "trained" prompt, as it sent fine-tunes: the
base Gemma again, or with --trained-gguf a real fine-tune such as gpu_quality.sh's), every
answer schema-constrained in both arms so that only the levers differ:

* baseline — the original's loop: one request at a time, each prompt processed from scratch
  (`cache_prompt: false`), answer cap = num_tokens_to_predict (1024);
* ours     — eval.sentiment_runner.run_model: `parallel` requests in flight on as many llama.cpp
  slots (continuous batching), article-major, so each slot gets the same prompt back to back
  and reuses all of it from its KV cache (only the answer is decoded), the answer capped at
  --max-tokens.

Articles: the 6 of examples/news_snapshot.json, then pseudo-articles of 6 consecutive real
Financial PhraseBank sentences (../shared/data) up to N. Prints answers/s of both arms, the
ratio and the valid-JSON rates; writes benchmarks/results/eval.json.

    python benchmarks/bench_eval.py --articles 19 --iterations 15      # the full workload
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval.backends import make_backend, parse_model_entries  # noqa: E402
from eval.news import Article, article_key, load_snapshot  # noqa: E402
from eval.sentiment_runner import judge, run_model  # noqa: E402
from eval.settings import EvalConfig  # noqa: E402
from utils.engine import EmbeddedEngine, EngineSettings  # noqa: E402
from utils.io import atomic_write_json  # noqa: E402


def articles(n: int) -> list[Article]:
    found = list(load_snapshot(ROOT / "examples" / "news_snapshot.json").articles)
    fpb = (ROOT.parent / "shared" / "data" / "financial_phrasebank" / "Sentences_AllAgree.txt")
    sentences = [line.rpartition("@")[0] for line in fpb.read_text(encoding="iso-8859-1").splitlines()]
    start = 0
    while len(found) < n:
        chunk = sentences[start:start + 6]
        start += 97  # spread over the file: different companies and topics
        url = f"https://example.com/fpb/{start}"
        found.append(Article(key=article_key(url), url=url, title=chunk[0][:80], published="",
                             text=" ".join(chunk)))
    return found[:n]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=19)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--parallel", type=int, default=4, help="our runner: requests in flight = llama.cpp slots")
    parser.add_argument("--max-tokens", type=int, default=256, help="our runner: answer cap")
    parser.add_argument("--reasoning-chars", type=int, default=400,
                        help="our runner: the schema's cap on the reasoning (baseline: 400)")
    parser.add_argument("--baseline-max-tokens", type=int, default=1024, help="the original's num_predict")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "eval.json"))
    parser.add_argument("--trained-gguf", help="the trained-prompt model: a fine-tuned GGUF (finetune/export_gguf.py); "
                        "default: the base Gemma, which does not know that prompt")
    parser.add_argument("--ours-only", action="store_true",
                        help="skip the baseline: a quick look at our arm's settings (no ratio; give --output)")
    args = parser.parse_args()
    if args.ours_only and args.output == parser.get_default("output"):
        parser.error("--ours-only: give --output, so that the recorded full run is not overwritten")

    from eval.news import Snapshot

    snapshot = Snapshot(ticker="MSFT", fetched_at="", articles=articles(args.articles))
    trained = ({"model": Path(args.trained_gguf).stem + "-trained", "gguf": args.trained_gguf} if args.trained_gguf
               else {"model": "gemma-3-270m-trained"})
    models = [{"backend": "llamacpp", "model": "gemma-3-270m-fewshot", "prompt": "few-shot", "structured": True},
              {"backend": "llamacpp", "prompt": "trained", "structured": True, **trained}]
    workload = len(snapshot.articles) * args.iterations * len(models)
    print(f"workload: {len(snapshot.articles)} articles × {args.iterations} iterations × {len(models)} models "
          f"= {workload} answers per arm")
    # One server per GGUF for both arms: slots for our runner; the baseline simply uses one at a time.
    results: dict[str, dict] = {}
    with ExitStack() as stack:
        engines: dict[str | None, EmbeddedEngine] = {}
        for gguf in dict.fromkeys(model.get("gguf") for model in models):
            settings = EngineSettings(gguf_path=Path(gguf) if gguf else None, n_parallel=args.parallel,
                                      n_ctx=2048 * args.parallel)
            engines[gguf] = stack.enter_context(EmbeddedEngine(settings))
        for arm in ("ours",) if args.ours_only else ("baseline", "ours"):
            config = EvalConfig(sample_size=args.iterations,
                                max_reasoning_chars=400 if arm == "baseline" else args.reasoning_chars,
                                num_tokens_to_predict=args.baseline_max_tokens if arm == "baseline" else args.max_tokens,
                                parallel_requests=1 if arm == "baseline" else args.parallel,
                                sentiment_save_folder=str(Path("/tmp") / f"bench_eval_{arm}_{time.time_ns()}"))
            answers = valid = 0
            started = time.monotonic()
            for spec in parse_model_entries(models, config):
                backend = make_backend(spec, config, engine=engines[spec.gguf])
                backend.check()
                if arm == "baseline":
                    backend.cache_prompt = False
                    for _ in range(args.iterations):  # the original: model → iteration → article, in turn
                        for article in snapshot.articles:
                            answer = judge(backend, article, config.max_article_chars)
                            answers += 1
                            valid += answer.valid
                else:
                    model_started = time.monotonic()
                    summary = run_model(spec, backend, snapshot, config, progress=False)
                    print(f"    {spec.label}: {summary.answers / (time.monotonic() - model_started):.3f} answers/s, "
                          f"valid JSON {summary.valid / summary.answers:.1%}")
                    answers += summary.answers
                    valid += summary.valid
                backend.close()
            seconds = time.monotonic() - started
            results[arm] = {"answers": answers, "valid": valid, "valid_json_rate": valid / answers,
                            "seconds": round(seconds, 2), "answers_per_s": answers / seconds}
            print(f"{arm:>8}: {answers} answers in {seconds:.1f} s = {answers / seconds:.3f} answers/s, "
                  f"valid JSON {valid / answers:.1%}")
    if args.ours_only:
        atomic_write_json(args.output, {
            "benchmark": "eval (ours only)", "command": "python " + " ".join(sys.argv), "ours": results["ours"],
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2)
        return 0
    ratio = results["ours"]["answers_per_s"] / results["baseline"]["answers_per_s"]
    print(f"ratio: {ratio:.2f}× the baseline's answers/s "
          f"(valid JSON {results['baseline']['valid_json_rate']:.1%} → {results['ours']['valid_json_rate']:.1%})")
    atomic_write_json(args.output, {
        "benchmark": "eval", "command": "python " + " ".join(sys.argv), "workload": {
            "articles": len(snapshot.articles), "iterations": args.iterations, "models": len(models),
            "answers_per_arm": workload, "trained_gguf": args.trained_gguf},
        "baseline": {**results["baseline"], "parallel": 1, "cache_prompt": False,
                     "max_tokens": args.baseline_max_tokens, "max_reasoning_chars": 400},
        "ours": {**results["ours"], "parallel": args.parallel, "cache_prompt": True, "max_tokens": args.max_tokens,
                 "max_reasoning_chars": args.reasoning_chars},
        "ratio_answers_per_s": ratio, "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
