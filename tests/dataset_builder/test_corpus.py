"""The synthetic corpus: assembled from written parts (checked, deduplicated against itself and
the public sets), joined by step 04 as the source `synthetic`, and step 05's per-source caps on
the train split — the real scripts, as subprocesses, on the real data sets and the examples."""
from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from dataset_builder.corpus import CORPUS_COLUMNS, near_duplicates, read_corpus
from dataset_builder.sharegpt import capped_counts
from tests.conftest import REPO_ROOT, read_split, run_script
from utils.labels import sentiment_label

BUILD = "dataset_builder/build_corpus.py"
STEP_01 = "dataset_builder/step_01_process_tweets.py"
STEP_04 = "dataset_builder/step_04_join_outputs.py"
STEP_05 = "dataset_builder/step_05_build_sharegpt_dataset.py"
CORPUS = REPO_ROOT / "examples" / "corpus" / "finsent_corpus.csv"


def row(text: str, sentiment: float, reasoning: str, style: str = "headline", topic: str = "earnings") -> dict:
    return {"text": text, "sentiment": sentiment, "confidence": 0.8, "reasoning": reasoning, "style": style,
            "topic": topic}


def write_part(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_near_duplicates_are_found_within_the_texts_and_against_a_reference_set():
    texts = ["Brightfield Mining lifts its copper output forecast for the year",
             "Brightfield Mining lifts its copper output forecast for this year",   # one word changed
             "BRIGHTFIELD MINING LIFTS ITS COPPER OUTPUT FORECAST FOR THE YEAR",   # case only
             "Harrow Bank cuts 300 jobs in its retail arm",
             "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn"]
    reference = ["Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007."]
    repeats = dict(near_duplicates(texts, reference))
    assert set(repeats) == {1, 2, 4}
    assert repeats[1] == repeats[2] == texts[0] and repeats[4] == reference[0]


def test_build_corpus_keeps_valid_new_rows_and_says_why_it_dropped_each_other(tmp_path, shared_data):
    parts = tmp_path / "parts"
    parts.mkdir()
    fpb = (shared_data / "financial_phrasebank" / "Sentences_AllAgree.txt").read_text(encoding="iso-8859-1")
    copied = fpb.splitlines()[0].rpartition("@")[0]
    write_part(parts / "a_01.jsonl", [
        row("Kestrel Foods raises its dividend by a fifth after a record year", 0.6,
            "A bigger dividend backed by record earnings puts more cash in Kestrel shareholders' hands."),
        row("Kestrel Foods raises its dividend by a fifth after a record year!", 0.6, "Same again."),
        row(copied, 0.0, "Copied from a public set."),
        row("Dunmore Air's CEO steps down with immediate effect", -0.4,
            "Most annotators agreed this is bad."),   # states who labelled it: invented
    ])
    write_part(parts / "b_01.jsonl", [row("Is $QRTZ a buy before earnings?", 0.0,
                                          "A question with no news gives holders of QRTZ nothing to act on.",
                                          style="social post", topic="question"),
                                      row("Bad row", 1.5, "Out of range.")])
    output = tmp_path / "corpus.csv"
    result = run_script(BUILD, "--parts", parts, "--output", output,
                        "--against", f"financial_phrasebank={shared_data / 'financial_phrasebank'}")
    assert result.returncode == 0, result.stderr
    dropped = [line for line in result.stdout.splitlines() if line.startswith("dropped ")]
    assert len(dropped) == 4
    assert any("a_01.jsonl:2: repeats the corpus" in line for line in dropped)
    assert any("a_01.jsonl:3: repeats financial_phrasebank" in line for line in dropped)
    assert any("a_01.jsonl:4: the reasoning states annotators" in line for line in dropped)
    assert any("b_01.jsonl:2: not a valid answer" in line for line in dropped)
    rows = read_corpus(output)
    assert [r.text for r in rows] == ["Kestrel Foods raises its dividend by a fifth after a record year",
                                      "Is $QRTZ a buy before earnings?"]
    assert rows[1].style == "social post" and rows[1].response.sentiment == 0.0
    assert "2 of 6 rows" in result.stdout


def test_a_blind_second_labelling_reports_its_agreement_and_drops_what_it_disagrees_on(tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    write_part(parts / "a.jsonl", [row("Harrow Bank cuts 300 jobs in its retail arm", -0.4, "Harrow Bank pays for cuts."),
                                   row("Is $QRTZ a buy before earnings?", 0.0, "A question about QRTZ, no news."),
                                   row("Lindqvist Oyj wins a EUR 40 mn order", 0.6, "The Lindqvist order adds sales.")])
    second = tmp_path / "second.csv"
    second.write_text("text,label\nHarrow Bank cuts 300 jobs in its retail arm,neutral\n"
                      "Is $QRTZ a buy before earnings?,neutral\n", encoding="utf-8")
    output = tmp_path / "corpus.csv"
    result = run_script(BUILD, "--parts", parts, "--output", output, "--second-labelling", second)
    assert result.returncode == 0, result.stderr
    assert "second labelling: 1 of 2 rows agree (50.0%); the 1 others are dropped" in result.stdout
    assert "dropped a.jsonl:1: the second labelling says neutral, the first negative" in result.stdout
    assert [r.text for r in read_corpus(output)] == ["Is $QRTZ a buy before earnings?", "Lindqvist Oyj wins a EUR 40 mn order"]


def test_build_corpus_names_the_line_of_a_malformed_part(tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "x.jsonl").write_text(json.dumps(row("A text", 0.5, "Why.")) + "\n{not json\n", encoding="utf-8")
    result = run_script(BUILD, "--parts", parts, "--output", tmp_path / "c.csv")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {parts / 'x.jsonl'}: line 2 is not valid JSON")
    assert not (tmp_path / "c.csv").exists()


def test_the_committed_corpus_is_valid_balanced_and_new():
    """What examples/corpus/README.md says of it: ≥ 4,000 rows, every one a valid answer, classes
    roughly balanced, several styles, no text twice nor nearly twice."""
    rows = read_corpus(CORPUS)
    assert len(rows) >= 4000
    labels = Counter("positive" if r.response.sentiment > 0.15 else "negative" if r.response.sentiment < -0.15
                     else "neutral" for r in rows)
    assert min(labels.values()) / len(rows) >= 0.25, labels
    assert len({r.style.split("/")[0].strip() for r in rows}) >= 6
    assert near_duplicates([r.text for r in rows]) == []
    with open(CORPUS, encoding="utf-8", newline="") as handle:
        assert tuple(csv.DictReader(handle).fieldnames) == CORPUS_COLUMNS
    # the blind second labelling covers a tenth of it, and what it disagreed on was dropped
    with open(CORPUS.with_name("second_labelling.csv"), encoding="utf-8", newline="") as handle:
        second = {r["text"]: r["label"] for r in csv.DictReader(handle)}
    assert len(second) >= 0.1 * len(rows)
    by_text = {r.text: r.response.sentiment for r in rows}
    assert all(sentiment_label(by_text[text], 0.15) == label for text, label in second.items() if text in by_text)


def test_capped_counts_cut_a_source_to_its_share_of_what_is_kept():
    assert capped_counts({"tweets": 11_700, "fpb": 3_900, "synthetic": 3_400}, {"tweets": 0.25}) == {
        "tweets": 2_433, "fpb": 3_900, "synthetic": 3_400}
    # a source already under its share keeps every row
    assert capped_counts({"tweets": 100, "fpb": 900}, {"tweets": 0.25}) == {"tweets": 100, "fpb": 900}
    # two caps at once: each at its share of the new total
    kept = capped_counts({"a": 1000, "b": 1000, "c": 500}, {"a": 0.2, "b": 0.3})
    total = sum(kept.values())
    assert kept["c"] == 500 and kept["a"] <= 0.2 * total and kept["b"] <= 0.3 * total


def test_step_04_joins_the_corpus_and_step_05_caps_the_tweets_share_of_train(tmp_path, shared_data):
    tweets = tmp_path / "s1.csv"
    assert run_script(STEP_01, "--input", shared_data / "airline_tweets" / "Tweets.csv", "--output",
                      tweets).returncode == 0
    joined = tmp_path / "joined.csv"
    result = run_script(STEP_04, "--input", f"tweets={tweets}", "--input", f"synthetic={CORPUS}", "--output", joined)
    assert result.returncode == 0, result.stderr
    with open(joined, encoding="utf-8", newline="") as handle:
        sources = Counter(r["Source"] for r in csv.DictReader(handle))
    assert sources["synthetic"] == len(read_corpus(CORPUS)) and sources["tweets"] == 14_640

    folder = tmp_path / "sharegpt"
    result = run_script(STEP_05, "--input", joined, "--output", folder, "--set", "dataset.train_share_max={tweets: 0.25}")
    assert result.returncode == 0, result.stderr
    assert "train rows of tweets cut to dataset.train_share_max 0.25" in result.stderr
    train = read_split(folder, "train")
    shares = Counter(r["source"] for r in train)
    assert shares["tweets"] / len(train) == pytest.approx(0.25, abs=0.002)
    # the tweets' labels keep their proportions in the cut; validation and test keep every row
    uncut = run_script(STEP_05, "--input", joined, "--output", tmp_path / "uncut")
    assert uncut.returncode == 0
    full = [r for r in read_split(tmp_path / "uncut", "train") if r["source"] == "tweets"]
    cut = [r for r in train if r["source"] == "tweets"]
    for label in ("positive", "neutral", "negative"):
        assert (sum(r["label"] == label for r in cut) / len(cut)
                == pytest.approx(sum(r["label"] == label for r in full) / len(full), abs=0.005))
    for split in ("validation", "test"):
        assert read_split(folder, split) == read_split(tmp_path / "uncut", split)
    assert {r["conversations"][2]["value"] for r in cut} <= {r["conversations"][2]["value"] for r in full}


def test_a_share_for_a_source_step_05_does_not_have_is_one_line(tmp_path):
    joined = tmp_path / "joined.csv"
    assert run_script(STEP_04, "--input", f"synthetic={CORPUS}", "--output", joined).returncode == 0
    result = run_script(STEP_05, "--input", joined, "--output", tmp_path / "out",
                        "--set", "dataset.train_share_max={twets: 0.25}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: dataset.train_share_max: no train rows of source(s) twets (sources: synthetic)")
    assert not (tmp_path / "out").exists()
