"""Steps 01 and 02 on the real data sets in ../shared/data, run as the user runs them."""
from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from dataset_builder.evidence import cues, evidence_reasoning, passage_evidence
from dataset_builder.phrasebank import AGREEMENT_LEVELS, PHRASEBANK_SENTIMENT
from dataset_builder.tweets import TWEET_SENTIMENT
from tests.conftest import read_split, run_script
from utils.grounding import invented_claims, is_grounded, template_share, words
from utils.schema import SentimentResponse

STEP_01 = "dataset_builder/step_01_process_tweets.py"
STEP_02 = "dataset_builder/step_02_process_financial_phrasebank.py"


def read_labelled(path: Path) -> list[tuple[str, SentimentResponse]]:
    """Rows of a step output; every JSON cell must validate (raises otherwise)."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["Article", "JSON"]
        return [(row["Article"], SentimentResponse.model_validate_json(row["JSON"])) for row in reader]


def run_ok(script: str, *args) -> str:
    result = run_script(script, *args)
    assert result.returncode == 0, result.stderr
    return result.stderr


@pytest.fixture(scope="module")
def tweets_rows(shared_data) -> list[dict[str, str]]:
    with open(shared_data / "airline_tweets" / "Tweets.csv", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_step_01_keeps_every_tweet_with_its_label_and_confidence(shared_data, tweets_rows, tmp_path):
    output = tmp_path / "tweets.csv"
    run_ok(STEP_01, "--input", shared_data / "airline_tweets" / "Tweets.csv", "--output", output)
    rows = read_labelled(output)
    assert len(rows) == 14_640 == len(tweets_rows)
    for (article, response), source in zip(rows, tweets_rows):
        assert article == source["text"]
        assert response.sentiment == TWEET_SENTIMENT[source["airline_sentiment"]]
        assert response.confidence == float(source["airline_sentiment_confidence"])
    assert_reasoning_from_the_text(rows, ("thank", "delayed"), 0.33)


def assert_reasoning_from_the_text(rows: list[tuple[str, SentimentResponse]], cue_words: tuple[str, ...],
                                   max_template_share: float) -> None:
    """Every reasoning quotes its text's key clause first (never a label's verdict), none states a
    fact the text does not hold (annotators, agreement, a percentage), nearly all share a content
    word with their text (not those of texts without one, "It 's not ."), no one sentence around a
    quote is more than `max_template_share` of them, and a reasoning naming one of `cue_words` as
    the evidence names a word of its own text."""
    assert all(r.reasoning.startswith('"') for _, r in rows)
    assert not [(a, r.reasoning) for a, r in rows if invented_claims(r.reasoning, a)]
    assert sum(is_grounded(r.reasoning, a) for a, r in rows) / len(rows) >= 0.99
    assert template_share([r.reasoning for _, r in rows])[0] <= max_template_share
    for word in cue_words:
        naming = [a for a, r in rows if word in words(r.reasoning.split('"', 2)[2])]  # after the clause
        assert naming and all(word in words(a) for a in naming), word


def test_a_reasoning_quotes_the_evidence_then_says_what_it_means_for_the_shares():
    """The key clause comes first and the effect after it, the same way with a lexicon cue,
    without one, and for a passage: a model writes the first words first, so they are the text's,
    not the label's."""
    with_cue = "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn."
    without_cue = "The company will deliver 40 wind turbines to the park."
    neutral = "The shop is located in Helsinki."
    loss = "Net loss widened to EUR 3 mn."
    assert cues(with_cue, "positive") == ["profit … rose"] and cues(without_cue, "positive") == []
    assert evidence_reasoning(with_cue, "positive") == ('"Operating profit rose to EUR 13.1 mn from EUR 8.7 mn": '
                                                        'profit going up means the company is earning more, '
                                                        'which supports the share price.')
    assert evidence_reasoning(without_cue, "positive") == (
        '"The company will deliver 40 wind turbines to the park" reads as good news for the company on '
        'balance, which supports the share price.')
    assert evidence_reasoning(loss, "negative") == ('"Net loss widened to EUR 3 mn": a growing loss means the '
                                                    'company is doing worse, which weighs on the share price.')
    assert evidence_reasoning(without_cue, "neutral").startswith(
        '"The company will deliver 40 wind turbines to the park" states a plan')
    assert evidence_reasoning(neutral, "neutral") == ('"The shop is located in Helsinki" reports a routine fact '
                                                      'with no sign of better or worse results, so the price has '
                                                      'no reason to move.')
    members = [(with_cue, "positive"), (loss, "negative"), (neutral, "neutral")]
    assert passage_evidence(members, "positive") == ('It mixes good news ("profit … rose") with bad news '
                                                     '("loss … widened"): on balance that supports the share price.')
    assert passage_evidence(members[1:], "negative") == \
        'It carries bad news ("loss … widened") among plain facts: on balance that weighs on the share price.'
    assert passage_evidence(members[2:], "neutral").startswith('"The shop is located in Helsinki" and the rest')
    for label, cued in (("positive", with_cue), ("negative", loss)):
        for text in (cued, without_cue):
            assert not evidence_reasoning(text, label).lower().startswith(("good", "bad", "no clear"))


def test_step_01_dedupe_keeps_the_first_of_each_text(shared_data, tweets_rows, tmp_path):
    output = tmp_path / "tweets.csv"
    run_ok(STEP_01, "--input", shared_data / "airline_tweets" / "Tweets.csv", "--output", output, "--dedupe")
    rows = read_labelled(output)
    assert len(rows) == 14_427 == len({row["text"] for row in tweets_rows})
    first_of_text: dict[str, dict[str, str]] = {}
    for source in tweets_rows:
        first_of_text.setdefault(source["text"], source)
    assert [article for article, _ in rows] == list(first_of_text)
    for article, response in rows:
        assert response.confidence == float(first_of_text[article]["airline_sentiment_confidence"])


def read_phrasebank_lines(folder: Path) -> dict[str, list[tuple[str, str]]]:
    levels = {}
    for level in AGREEMENT_LEVELS:
        text = (folder / f"Sentences_{level.name}.txt").read_text(encoding="iso-8859-1")
        levels[level.name] = [tuple(line.rsplit("@", 1)) for line in text.splitlines() if line.strip()]
    return levels


def test_step_02_keeps_each_sentence_once_at_its_highest_agreement(shared_data, tmp_path):
    folder = shared_data / "financial_phrasebank"
    output = tmp_path / "fpb.csv"
    stderr = run_ok(STEP_02, "--input", folder, "--output", output)
    rows = read_labelled(output)
    assert len(rows) == 4_838
    articles = [article for article, _ in rows]
    assert len(set(articles)) == len(articles)

    levels = read_phrasebank_lines(folder)
    assert set(articles) == {sentence.strip() for sentence, _ in levels["50Agree"]}
    highest: dict[str, tuple[float, set[str]]] = {}
    for level in AGREEMENT_LEVELS:  # highest first
        for sentence, label in levels[level.name]:
            conf, labels = highest.setdefault(sentence.strip(), (level.confidence, set()))
            if conf == level.confidence:
                labels.add(label)
    for article, response in rows:
        confidence, labels = highest[article]
        assert response.confidence == confidence
        assert {label for label, value in PHRASEBANK_SENTIMENT.items() if value == response.sentiment} <= labels
    assert_reasoning_from_the_text(rows, ("profit", "sales"), 0.2)
    # the two sentences with two labels: kept at 66Agree (positive), the 50Agree neutral logged
    conflicts = [line for line in stderr.splitlines() if "two labels for one sentence" in line]
    assert len(conflicts) == 2
    assert all("kept 66Agree@positive" in line and "dropped 50Agree@neutral" in line for line in conflicts)
    by_article = dict(rows)
    for line in conflicts:
        start = line.split(": ")[-1]
        matches = [a for a in by_article if a.startswith(start)]
        assert len(matches) == 1 and by_article[matches[0]].sentiment == 1.0


def test_step_02_original_concat_reproduces_the_original_rows(shared_data, tmp_path):
    folder = shared_data / "financial_phrasebank"
    output = tmp_path / "fpb.csv"
    run_ok(STEP_02, "--input", folder, "--output", output, "--original-concat")
    rows = read_labelled(output)
    assert len(rows) == 14_780
    levels = read_phrasebank_lines(folder)
    expected = [(s.strip(), level.confidence, PHRASEBANK_SENTIMENT[label])
                for level in AGREEMENT_LEVELS for s, label in levels[level.name]]
    assert [(a, r.confidence, r.sentiment) for a, r in rows] == expected
    assert Counter(r.confidence for _, r in rows) == {lv.confidence: len(levels[lv.name]) for lv in AGREEMENT_LEVELS}


def read_split_records(folder: Path) -> dict[str, list[tuple[str, str, float]]]:
    """Each split's (text, label, sentiment) in file order."""
    return {split: [(r["conversations"][1]["value"], r["label"], json.loads(r["conversations"][2]["value"])["sentiment"])
                    for r in read_split(folder, split)] for split in ("train", "validation", "test")}


def test_graded_sentiment_is_polarity_times_agreement_and_keeps_every_label_and_split(
        shared_data, tweets_rows, tmp_path):
    tweets_csv, folder = shared_data / "airline_tweets" / "Tweets.csv", shared_data / "financial_phrasebank"
    for kind, switch in (("hard", []), ("graded", ["--graded-sentiment"])):
        run_ok(STEP_01, "--input", tweets_csv, "--output", tmp_path / f"{kind}_01.csv", *switch)
        # the config key, not the flag, for step 02
        run_ok(STEP_02, "--input", folder, "--output", tmp_path / f"{kind}_02.csv",
               "--set", f"dataset.graded_sentiment={str(bool(switch)).lower()}")
        run_ok("dataset_builder/step_04_join_outputs.py", "--input", f"tweets={tmp_path / f'{kind}_01.csv'}",
               "--input", f"financial_phrasebank={tmp_path / f'{kind}_02.csv'}", "--output", tmp_path / f"{kind}_04.csv")
        run_ok("dataset_builder/step_05_build_sharegpt_dataset.py", "--input", tmp_path / f"{kind}_04.csv",
               "--output", tmp_path / kind)

    tweets = read_labelled(tmp_path / "graded_01.csv")
    for (_, response), source in zip(tweets, tweets_rows, strict=True):
        polarity = TWEET_SENTIMENT[source["airline_sentiment"]]
        assert response.sentiment == round(polarity * float(source["airline_sentiment_confidence"]), 1)
        assert response.confidence == float(source["airline_sentiment_confidence"])
    sentences = read_labelled(tmp_path / "graded_02.csv")
    hard_sentences = dict(read_labelled(tmp_path / "hard_02.csv"))
    for article, response in sentences:
        assert response.sentiment == round(hard_sentences[article].sentiment * response.confidence, 1)
    assert {r.sentiment for _, r in sentences} == {-1.0, -0.8, -0.7, -0.5, 0.0, 0.5, 0.7, 0.8, 1.0}

    # The smallest graded polarity (0.3) is above step 05's threshold: same labels, same splits.
    hard, graded = read_split_records(tmp_path / "hard"), read_split_records(tmp_path / "graded")
    for split in hard:
        assert [(text, label) for text, label, _ in graded[split]] == [(text, label) for text, label, _ in hard[split]]
    assert any(0 < abs(sentiment) < 1 for _, _, sentiment in graded["train"])
    assert all(abs(sentiment) in (0, 1) for _, _, sentiment in hard["train"])


def test_steps_01_02_run_on_the_examples_with_the_project_config(repo_root, tmp_path):
    run_ok(STEP_01, "--output", tmp_path / "t.csv")
    run_ok(STEP_02, "--output", tmp_path / "p.csv")
    tweets, sentences = read_labelled(tmp_path / "t.csv"), read_labelled(tmp_path / "p.csv")
    assert len(tweets) == sum(1 for _ in csv.DictReader(open(repo_root / "examples/airline_tweets/tweets_example.csv",
                                                              encoding="utf-8", newline="")))
    fifty = (repo_root / "examples/financial_phrasebank/finsent_sample_50Agree.txt").read_text(encoding="iso-8859-1")
    assert len(sentences) == len({line.rsplit("@", 1)[0] for line in fifty.splitlines()})
    assert any("ä" in article for article, _ in sentences)  # decoded as ISO-8859-1, not mojibake


@pytest.mark.parametrize("script, purpose, flags", [
    (STEP_01, "Step 01: airline tweets", ["--input", "--output", "--dedupe", "--graded-sentiment", "--config", "--set"]),
    (STEP_02, "Step 02: Financial PhraseBank", ["--input", "--output", "--original-concat", "--graded-sentiment"]),
    ("dataset_builder/step_04_join_outputs.py", "Step 04: join", ["--input", "SOURCE=PATH", "--output"]),
    ("dataset_builder/step_05_build_sharegpt_dataset.py", "Step 05:", ["--input", "--output", "--push-to-hub"]),
])
def test_every_step_answers_help(script, purpose, flags):
    result = run_script(script, "--help")
    assert result.returncode == 0
    assert purpose in " ".join(result.stdout.split())
    assert all(flag in result.stdout for flag in flags)
