"""Step 03b: reasonings asked for the human-labelled rows of steps 01 and 02 (the label stays
the annotators'), cached and resumable, synchronously and in batch mode, and step 04 taking the
explained rows in place of the templated ones."""
from __future__ import annotations

import csv
import json

import pytest

from dataset_builder.batch_labeller import label_in_batches
from dataset_builder.explain import explain_messages, explain_task, explained_csv, read_labelled_rows
from dataset_builder.label_store import ResultStore
from dataset_builder.settings import LabellerConfig
from dataset_builder.text_normalise import sanitise_text
from tests.conftest import run_script
from tests.fault_server import FaultServer, article_of, expected_response
from tests.labeller_support import fast_config, provider, write_config
from utils.schema import SentimentResponse

STEP_01 = "dataset_builder/step_01_process_tweets.py"
STEP_03B = "dataset_builder/step_03b_explain_labels.py"
STEP_04 = "dataset_builder/step_04_join_outputs.py"


def _rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_explained_tweets_keep_their_label_are_cached_and_step_04_takes_them(tmp_path, repo_root):
    tweets = tmp_path / "step_01_tweets.csv"
    assert run_script(STEP_01, "--input", repo_root / "examples" / "airline_tweets" / "tweets_example.csv",
                      "--output", tweets, cwd=tmp_path).returncode == 0
    templated = {row["Article"]: json.loads(row["JSON"]) for row in _rows(tweets)}
    with FaultServer() as server:
        config = write_config(tmp_path / "config.yaml", fast_config([provider("openai", server)]))
        args = ["tweets", "--config", config, "--input", tweets, "--no-progress"]
        first = run_script(STEP_03B, *args, "--limit", 5, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        again = run_script(STEP_03B, *args, "--limit", 5, cwd=tmp_path)  # cached: nothing asked
        assert "5 already recorded" in again.stdout and "0 to label" in again.stdout
        assert len(server.seen) == 5
        prompt = server.seen[0]
    assert "wrote 5 explained rows" in first.stdout
    explained = _rows(explained_csv(tweets))
    assert len(explained) == 5
    for row in explained:
        answer, human = json.loads(row["JSON"]), templated[row["Article"]]
        assert answer["reasoning"] == expected_response(row["Article"])["reasoning"]  # the model's words
        assert (answer["sentiment"], answer["confidence"]) == (human["sentiment"], human["confidence"])
    assert prompt.article in templated

    joined = tmp_path / "joined.csv"
    done = run_script(STEP_04, "--input", f"tweets={tweets}", "--output", joined, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    by_text = {row["Article"]: json.loads(row["JSON"])["reasoning"] for row in explained}
    tweet_rows = _rows(tweets)
    taking = sum(row["Article"] in by_text for row in tweet_rows)  # a repeated tweet takes it twice
    assert taking >= 5 and f"({taking} with an explained reasoning)" in done.stderr
    rows = _rows(joined)
    assert len(rows) == len(tweet_rows)
    # in step 01's order; the joined text is sanitised, so matched by position
    pairs = [(tweet["Article"], json.loads(tweet["JSON"])["reasoning"], json.loads(row["JSON"])["reasoning"])
             for tweet, row in zip(tweet_rows, rows)]
    assert sum(by_text.get(text) == joined for text, _, joined in pairs) == taking
    # the others keep their own step 01 reasoning (sanitised by step 04 like every text)
    kept = [joined == sanitise_text(own) for text, own, joined in pairs if text not in by_text]
    assert len(kept) == len(rows) - taking and all(kept)


def test_the_prompt_gives_the_label_and_asks_only_why(tmp_path):
    path = tmp_path / "step_02.csv"
    answer = SentimentResponse(reasoning="templated", sentiment=-1.0, confidence=0.75)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["Article", "JSON"], ["Operating profit fell sharply.", answer.model_dump_json()]])
    [row] = read_labelled_rows(path)
    messages = explain_messages(row)
    assert article_of(messages) == "Operating profit fell sharply."
    assert "-1.00" in messages[1]["content"] and "negative" in messages[1]["content"]
    assert "0.75" in messages[1]["content"]
    kept = explain_task().answer(row, SentimentResponse(reasoning="Profit fell.", sentiment=0.9, confidence=0.1))
    assert kept == {"reasoning": "Profit fell.", "sentiment": -1.0, "confidence": 0.75}


def test_the_source_names_the_configured_csv_and_a_dry_run_shows_the_explain_prompt(tmp_path, repo_root):
    phrasebank = tmp_path / "elsewhere" / "fpb.csv"
    assert run_script("dataset_builder/step_02_process_financial_phrasebank.py", "--input",
                      repo_root / "examples" / "financial_phrasebank", "--output", phrasebank,
                      cwd=tmp_path).returncode == 0
    nowhere = fast_config([{"name": "nowhere", "base_url": "http://127.0.0.1:9/v1", "models": ["m"]}])
    done = run_script(STEP_03B, "financial_phrasebank", "--config", write_config(tmp_path / "config.yaml", nowhere),
                      "--set", f"dataset.step_02_csv={phrasebank}", "--dry-run", "--limit", 2, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"2 rows to explain in {phrasebank}: 0 already recorded in "
                                  f"{tmp_path / 'elsewhere' / 'fpb_explained.jsonl'}, 0 waiting in open batches, "
                                  "2 to label\n")
    first = read_labelled_rows(phrasebank)[0]
    assert f"Text: {first.text}" in done.stdout and "explain why the text has this sentiment" in done.stdout
    assert sorted(path.name for path in phrasebank.parent.iterdir()) == ["fpb.csv"]  # a dry run writes nothing


def test_explain_in_batch_mode(tmp_path, repo_root):
    phrasebank = tmp_path / "step_02.csv"
    assert run_script("dataset_builder/step_02_process_financial_phrasebank.py", "--input",
                      repo_root / "examples" / "financial_phrasebank", "--output", phrasebank,
                      cwd=tmp_path).returncode == 0
    rows = read_labelled_rows(phrasebank)[:6]
    with FaultServer(plan={rows[0].text: ["schema_sentiment"]}) as server:  # invalid: re-asked
        config = fast_config([provider("groq", server)], batch_poll_initial_s=0.05)
        store = ResultStore(tmp_path / "explained.jsonl")
        summary = label_in_batches(rows, rows, store, config, show_progress=False, task=explain_task(),
                                   batch_everything=True)
        store.close()
        assert server.batches_created == 1
    assert summary.ok == 6 and summary.usage["groq"].batch_requests == 6
    for row in rows:
        record = store.records[row.id]
        assert record["response"] == {**row.answer.model_dump(),
                                      "reasoning": expected_response(row.text)["reasoning"]}
    assert store.records[rows[0].id]["attempts"] == 2


@pytest.mark.slow
def test_explain_through_the_embedded_engine(tmp_path, repo_root, embedded_engine):
    phrasebank = tmp_path / "step_02.csv"
    assert run_script("dataset_builder/step_02_process_financial_phrasebank.py", "--input",
                      repo_root / "examples" / "financial_phrasebank", "--output", phrasebank,
                      cwd=tmp_path).returncode == 0
    config = LabellerConfig(
        providers=[{"name": "embedded", "kind": "openai_compatible", "base_url": embedded_engine.base_url,
                    "models": ["gemma-3-270m"], "response_format": "json_schema", "timeout_s": 240}],
        max_in_flight=4, max_tokens=160, max_retries=0, max_reasks=1)
    done = run_script(STEP_03B, "financial_phrasebank", "--no-progress", "--config",
                      write_config(tmp_path / "config.yaml", config), "--input", phrasebank, "--limit", 1,
                      cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    human = {row.text: row.answer for row in read_labelled_rows(phrasebank)}
    records = [json.loads(line) for line in
               (tmp_path / "step_02_explained.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == 1
    for record in records:
        if record["status"] == "ok":  # a 270M model's reasoning is weak; the label is the human one
            answer = SentimentResponse.model_validate(record["response"])
            assert (answer.sentiment, answer.confidence) == (human[record["article"]].sentiment,
                                                             human[record["article"]].confidence)
        else:
            assert record["reason"]
