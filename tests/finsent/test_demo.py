"""The demo (`make demo`, `python -m finsent.demo`) end to end, twice, on a demo-sized slice of the
examples: both runs label, split and score alike (temperature 0 where it labels and scores,
seeds where it samples), and its step counter counts 1, 2, 3, ... up to its total."""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import script_env

pytestmark = pytest.mark.slow

TWEETS, PHRASES, NEWS_ARTICLES = 20, 8, 2
# "structured mode: 1/1 valid JSON", "free mode: ...", "<model> (llamacpp, few-shot, structured): 2 test rows",
# "valid JSON 100.0%; t = 0.90: accuracy ...", "sentiment: 2 distinct values; reasoning: ..."
FIGURE_LINES = re.compile(r"^(structured mode: |free mode: |.*\(llamacpp, few-shot, structured\): |valid JSON \d|"
                          r"sentiment: \d+ distinct)")


def _head_csv(source: Path, target: Path, rows: int) -> None:
    with source.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        kept = [next(reader) for _ in range(rows + 1)]
    with target.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(kept)


@pytest.fixture(scope="module")
def small_examples(tmp_path_factory, repo_root) -> tuple[Path, Path]:
    """A config over a slice of examples/ (20 tweets, 8 sentences of each Financial PhraseBank
    level, 2 news articles) and a one-article news snapshot."""
    root = tmp_path_factory.mktemp("demo_inputs")
    examples = repo_root / "examples"
    _head_csv(examples / "airline_tweets" / "tweets_example.csv", root / "tweets.csv", TWEETS)
    (root / "news").mkdir()
    _head_csv(examples / "news" / "newsdata_markets_2024-05-14.csv", root / "news" / "news.csv", NEWS_ARTICLES)
    (root / "phrasebank").mkdir()
    for level in sorted((examples / "financial_phrasebank").glob("finsent_sample_*Agree.txt")):
        (root / "phrasebank" / level.name).write_bytes(b"".join(level.read_bytes().splitlines(True)[:PHRASES]))
    snapshot = json.loads((examples / "news_snapshot.json").read_text(encoding="utf-8"))
    snapshot["articles"] = snapshot["articles"][:1]
    (root / "snapshot.json").write_text(json.dumps(snapshot), encoding="utf-8")
    (root / "config.yaml").write_text(
        f"dataset:\n  tweets_csv: {root / 'tweets.csv'}\n  phrasebank_dir: {root / 'phrasebank'}\n"
        f"  news_dir: {root / 'news'}\n"
        # a loaded machine (other jobs on 2 cores) can take minutes over one answer: no timeouts here
        "eval:\n  request_timeout_s: 3600\n", encoding="utf-8")
    return root / "config.yaml", root / "snapshot.json"


def run_demo(folder: Path, config: Path, snapshot: Path) -> str:
    folder.mkdir()
    result = subprocess.run([sys.executable, "-m", "finsent.demo", "--config", str(config), "--iterations", "1",
                             "--snapshot", str(snapshot)], cwd=folder, env=script_env(), capture_output=True,
                            text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def key_figures(folder: Path, stdout: str) -> dict:
    metrics = json.loads((folder / "reports" / "labelled" / "metrics.json").read_text())
    # an invalid answer has no sentiment: (key, False, None)
    answers = {path.relative_to(folder).as_posix(): [(key, answer["valid"], answer.get("sentiment"))
                                                     for key, answer in sorted(json.loads(path.read_text())
                                                                               ["sentiments"].items())]
               for path in sorted((folder / "sentiments").glob("*/*_[0-9]*.json"))}
    return {
        "printed": [line for line in stdout.splitlines() if FIGURE_LINES.match(line)],
        "news labels": (folder / "data" / "step_03_news.csv").read_text(encoding="utf-8"),
        "test split": (folder / "data" / "sharegpt" / "test.jsonl").read_text(encoding="utf-8"),
        "scores": {key: metrics[key] for key in ("valid_json_rate", "threshold_chosen", "at_chosen_threshold",
                                                 "at_0.15", "mae", "spearman")},
        "answers": answers,
    }


@pytest.mark.timeout(3600)  # two whole demos: minutes on a quiet 2-core machine, far more on a busy one
def test_two_demo_runs_print_the_same_figures(tmp_path, small_examples):
    config, snapshot = small_examples
    first = run_demo(tmp_path / "first", config, snapshot)
    counters = re.findall(r"^=== \[(\d+)/(\d+)\]", first, flags=re.M)
    total = int(counters[0][1])
    assert [(int(done), int(of)) for done, of in counters] == [(n, total) for n in range(1, total + 1)]
    second = run_demo(tmp_path / "second", config, snapshot)

    figures = key_figures(tmp_path / "first", first)
    assert len(figures["printed"]) >= 4 and figures["answers"], first
    assert figures == key_figures(tmp_path / "second", second)
