"""Steps 01 and 02 on the real data sets in ../shared/data, run as the user runs them."""
from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from dataset_builder.evidence import VERDICT, cues, evidence_reasoning, passage_evidence
from dataset_builder.phrasebank import AGREEMENT_LEVELS, PHRASEBANK_SENTIMENT
from dataset_builder.tweets import TWEET_SENTIMENT
from tests.conftest import read_split, run_script
from utils.grounding import invented_claims, is_grounded, words
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
        assert response.reasoning.endswith(f"so it is {source['airline_sentiment']}.")
    assert_reasoning_from_the_text(rows, ("thank", "delayed"))


def assert_reasoning_from_the_text(rows: list[tuple[str, SentimentResponse]], cue_words: tuple[str, ...]) -> None:
    """Every reasoning opens with its label's verdict, none states a fact the text does not hold
    (annotators, agreement, a percentage), nearly all share a content word with their text (not
    those of texts without one, "It 's not ."), and a reasoning quoting one of `cue_words` quotes a
    word of its own text."""
    for _, response in rows:
        label = "positive" if response.sentiment > 0 else "negative" if response.sentiment < 0 else "neutral"
        assert response.reasoning.startswith(f"{VERDICT[label]}: "), response.reasoning
    assert not [(a, r.reasoning) for a, r in rows if invented_claims(r.reasoning, a)]
    assert sum(is_grounded(r.reasoning, a) for a, r in rows) / len(rows) >= 0.99
    for word in cue_words:
        quoting = [a for a, r in rows if f': it says "{word}"' in r.reasoning or f': it says "{word} …' in r.reasoning]
        assert quoting and all(word in words(a) for a in quoting), word


def test_every_reasoning_opens_with_its_verdict_whether_or_not_a_cue_is_found():
    """The first words of a reasoning are its label's verdict, the same with a lexicon cue, without
    one, and for a passage: a model writes them first, so they must not depend on the lexicon."""
    with_cue = "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn."
    without_cue = "The company will deliver 40 wind turbines to the park."
    neutral = "The shop is located in Helsinki."
    loss = "Net loss widened to EUR 3 mn."
    assert cues(with_cue, "positive") == ["profit … rose"] and cues(without_cue, "positive") == []
    assert evidence_reasoning(with_cue, "positive") == 'Good news: it says "profit … rose", so it is positive.'
    assert evidence_reasoning(without_cue, "positive") == \
        'Good news: "The company will deliver 40 wind turbines to the park", so it is positive.'
    assert evidence_reasoning(loss, "negative") == 'Bad news: it says "loss … widened", so it is negative.'
    assert evidence_reasoning(without_cue, "negative").startswith('Bad news: "The company will deliver')
    assert evidence_reasoning(neutral, "neutral") == \
        'No clear good or bad news: it reports "The shop is located in Helsinki" as a plain fact, so it is neutral.'
    members = [(with_cue, "positive"), (loss, "negative"), (neutral, "neutral")]
    assert passage_evidence(members, "positive") == ('Good news on balance: it mixes good news ("profit … rose") '
                                                     'and bad news ("loss … widened"), so it is positive.')
    assert passage_evidence(members[1:], "negative") == \
        'Bad news on balance: it carries bad news ("loss … widened"), so it is negative.'
    assert passage_evidence([(without_cue, "positive"), (neutral, "neutral")], "positive").startswith(
        'Good news on balance: it carries good news ("The company will deliver')
    assert passage_evidence(members[2:], "neutral") == ('No clear good or bad news: it reports "The shop is located '
                                                        'in Helsinki" and other plain facts, so it is neutral.')
    # The verdict of a label is the same whether or not the lexicon finds a word in the text.
    for label, cued in (("positive", with_cue), ("negative", loss)):
        assert cues(cued, label) and not cues(without_cue, label)
        assert {evidence_reasoning(text, label).split(":")[0] for text in (cued, without_cue)} == {VERDICT[label]}
        assert {passage_evidence([(text, label)], label).split(" on balance:")[0] for text in (cued, without_cue)} \
            == {VERDICT[label]}


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
    assert_reasoning_from_the_text(rows, ("profit", "loss"))
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
