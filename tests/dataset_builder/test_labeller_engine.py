"""Step 03 end to end against a real model: the embedded llama.cpp engine (Gemma 3 270M)
as an OpenAI-compatible provider. Its answers may be poor; the path is real."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import run_script
from tests.labeller_support import write_config
from dataset_builder.settings import LabellerConfig
from utils.schema import SentimentResponse

ARTICLES = 3


@pytest.mark.slow
def test_labels_examples_through_the_embedded_engine(tmp_path, repo_root, embedded_engine):
    config = LabellerConfig(
        providers=[{"name": "embedded", "kind": "openai_compatible", "base_url": embedded_engine.base_url,
                    "models": ["gemma-3-270m"], "response_format": "json_schema", "timeout_s": 240}],
        max_in_flight=4, max_tokens=160, max_retries=0, max_reasks=1)
    results, output = tmp_path / "labels.jsonl", tmp_path / "news.csv"
    done = run_script("dataset_builder/step_03_label_articles.py", "--no-progress",
                      "--config", write_config(tmp_path / "config.yaml", config),
                      "--input", repo_root / "examples" / "news", "--limit", ARTICLES,
                      "--results", results, "--output", output, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
    assert len(records) == ARTICLES and len({r["id"] for r in records}) == ARTICLES
    for record in records:
        assert record["model"] == "gemma-3-270m" and record["requests"] >= 1
        if record["status"] == "ok":
            assert record["prompt_tokens"] > 0  # counted by llama.cpp itself
            SentimentResponse.model_validate(record["response"])
        else:
            assert record["status"] == "failed" and record["reason"]
    ok = [r for r in records if r["status"] == "ok"]
    frame = pd.read_csv(output)
    assert sorted(frame["Article"]) == sorted(r["article"] for r in ok)  # the ok ones, once each
    for answer in frame["JSON"]:
        SentimentResponse.model_validate_json(answer)
    assert f"embedded: {sum(r['requests'] for r in records)} requests" in done.stdout
