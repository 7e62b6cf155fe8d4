"""Prompt-cache reuse across articles: the 5-shot prompt with the publication date as the last line
of the instructions (ours) vs on their first line (the layout before, the baseline).

Workload: N dated articles, each judged once with the 5-shot prompt, schema-constrained, at
temperature 0, by Gemma 3 270M on one embedded llama.cpp server, one request at a time: what
step 03 asks of a local server, where every article is new. A llama.cpp slot (and Ollama's, and
OpenAI's prompt cache) keeps the longest prefix shared with the previous prompt, so with the date
first a new article reuses ~70 of ~590 prompt tokens and with it last all but its tail. Both arms
run on the same server, the baseline first. Prints prompt tokens processed, seconds and the ratio;
writes benchmarks/results/prompt_cache.json.

    python benchmarks/bench_prompt_cache.py [--articles 24]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_eval import articles  # noqa: E402  (benchmarks/ is sys.path[0] when run as a script)

from utils.engine import EmbeddedEngine, EngineSettings  # noqa: E402
from utils.io import atomic_write_json  # noqa: E402
from utils.prompts import analysis_messages, date_message  # noqa: E402
from utils.schema import ResponseParseError, json_schema_response_format, parse_sentiment_response  # noqa: E402


def date_first(messages: list[dict[str, str]], date_msg: str) -> list[dict[str, str]]:
    """The baseline layout: the same prompt with the date line moved to the first line."""
    user = messages[1]["content"].replace(f"\n\n{date_msg}", "", 1)
    first, rest = user.split("\n", 1)
    return [messages[0], {"role": "user", "content": f"{first} {date_msg}\n{rest}"}]


def run_arm(base_url: str, prompts: list[list[dict[str, str]]], max_tokens: int) -> dict:
    processed = total = valid = 0
    started = time.perf_counter()
    for messages in prompts:
        body = {"messages": messages, "max_tokens": max_tokens, "temperature": 0,
                "response_format": json_schema_response_format()}
        reply = httpx.post(f"{base_url}/chat/completions", json=body, timeout=300).json()
        usage = reply["usage"]
        total += usage["prompt_tokens"]
        processed += usage["prompt_tokens"] - usage["prompt_tokens_details"]["cached_tokens"]
        try:
            parse_sentiment_response(reply["choices"][0]["message"]["content"])
            valid += 1
        except ResponseParseError:
            pass
    seconds = time.perf_counter() - started
    return {"articles": len(prompts), "seconds": round(seconds, 2), "articles_per_s": round(len(prompts) / seconds, 3),
            "prompt_tokens": total, "prompt_tokens_processed": processed, "valid_json": valid / len(prompts)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=192)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "prompt_cache.json"))
    args = parser.parse_args()

    # Every article gets its own date: the snapshot's six have theirs, the pseudo-articles one each.
    dated = []
    for number, article in enumerate(articles(args.articles)):
        published = article.published or (date(2026, 1, 5) + timedelta(days=number)).isoformat()
        dated.append((article.text, date_message(published)))
    ours = [analysis_messages(text, date_msg) for text, date_msg in dated]
    baseline = [date_first(messages, date_msg) for messages, (_, date_msg) in zip(ours, dated)]
    assert all(b[1]["content"] != o[1]["content"] for b, o in zip(baseline, ours))

    with EmbeddedEngine(EngineSettings(n_parallel=1, n_ctx=4096)) as engine:
        results = {"baseline": run_arm(engine.base_url, baseline, args.max_tokens)}
        results["ours"] = run_arm(engine.base_url, ours, args.max_tokens)
    ratio = results["ours"]["articles_per_s"] / results["baseline"]["articles_per_s"]
    for arm, figures in results.items():
        print(f"{arm:8s} {figures['articles_per_s']:.3f} articles/s, {figures['prompt_tokens_processed']} of "
              f"{figures['prompt_tokens']} prompt tokens processed, valid JSON {figures['valid_json']:.0%}")
    print(f"ratio {ratio:.2f}x")
    atomic_write_json(Path(args.output), {
        "benchmark": "prompt_cache", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "python benchmarks/bench_prompt_cache.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "model": "gemma-3-270m q4_k_m (PyPI), 1 slot, 5-shot prompt, schema, temperature 0",
        **results, "ratio": round(ratio, 3)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
