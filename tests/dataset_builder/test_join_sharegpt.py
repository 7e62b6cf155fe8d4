"""Steps 04 (join) and 05 (ShareGPT splits) on the real data sets, as real subprocesses."""
from __future__ import annotations

import csv
import json
import re
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

from dataset_builder.text_normalise import text_key
from tests.conftest import read_split, run_script, script_env
from tests.hub_server import refusing_hub
from utils.engine import free_port
from utils.grounding import invented_claims
from utils.labels import sentiment_label
from utils.prompts import system_prompt
from utils.schema import SentimentResponse
from utils.sharegpt_format import SPLITS

STEP_01 = "dataset_builder/step_01_process_tweets.py"
STEP_02 = "dataset_builder/step_02_process_financial_phrasebank.py"
STEP_04 = "dataset_builder/step_04_join_outputs.py"
STEP_05 = "dataset_builder/step_05_build_sharegpt_dataset.py"
PREVIOUS_OUTPUT = "kept from an earlier run\n"


def run_ok(script: str, *args, **kwargs) -> str:
    result = run_script(script, *args, **kwargs)
    assert result.returncode == 0, result.stderr
    return result.stderr


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def answer(sentiment: float, reasoning: str = "A reason.", confidence: float = 0.9) -> str:
    return json.dumps({"reasoning": reasoning, "sentiment": sentiment, "confidence": confidence})


# Rows a labeller or a hand-edited file may hold; the invalid ones must be dropped and counted.
NEWS_VALID = [
    ["Acme\u2019s \u201crecord\u201d quarter \u2013 revenue up 12%", answer(0.7, "Revenue \u2014 and margins \u2014 rose.")],
    ["Cafe\u0301 chain Kahvila cuts 40 jobs", answer(-0.6)],   # decomposed é: NFC makes it one code point
    ["Board meeting moved to Tuesday", answer(0.0)],
]
NEWS_INVALID = [
    ["Shares soar", answer(3.0)],                                              # out of range
    ["Shares slump", json.dumps({"reasoning": "r", "sentiment": -0.5})],       # missing field
    ["Guidance kept", '{"reasoning": "r", "sentiment": 0.1, "confidence": 0.'],  # truncated
    ["Dividend raised", "{}"],                                                 # the original's filler
    ["   ", answer(0.2)],                                                      # no article
]


@pytest.fixture(scope="module")
def real_steps(shared_data, tmp_path_factory) -> dict[str, Path]:
    """Steps 01 and 02 on the real files, once for this module."""
    folder = tmp_path_factory.mktemp("real")
    paths = {"tweets": folder / "step_01.csv", "financial_phrasebank": folder / "step_02.csv"}
    run_ok(STEP_01, "--input", shared_data / "airline_tweets" / "Tweets.csv", "--output", paths["tweets"])
    run_ok(STEP_02, "--input", shared_data / "financial_phrasebank", "--output", paths["financial_phrasebank"])
    return paths


@pytest.fixture(scope="module")
def joined(real_steps, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("joined") / "step_04.csv"
    run_ok(STEP_04, "--input", f"tweets={real_steps['tweets']}",
           "--input", f"financial_phrasebank={real_steps['financial_phrasebank']}", "--output", output)
    return output


@pytest.fixture(scope="module")
def sharegpt(joined, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sharegpt")
    run_ok(STEP_05, "--input", joined, "--output", folder)
    return folder


def test_step_04_sanitises_and_drops_invalid_rows_per_source(real_steps, tmp_path):
    # the original's own column name, `Sentence`, is read as `Article`
    news = write_csv(tmp_path / "news.csv", ["Sentence", "JSON"], NEWS_VALID + NEWS_INVALID)
    # two broken rows appended to the real Financial PhraseBank output
    phrasebank = tmp_path / "step_02_edited.csv"
    phrasebank.write_text(real_steps["financial_phrasebank"].read_text(encoding="utf-8"), encoding="utf-8")
    with open(phrasebank, "a", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["Sales fell .", answer(-1.5)], ["Sales rose .", "not json"]])
    output = tmp_path / "joined.csv"
    stderr = run_ok(STEP_04, "--input", f"tweets={real_steps['tweets']}",
                    "--input", f"financial_phrasebank={phrasebank}", "--input", f"news={news}",
                    "--output", output)

    rows = read_csv(output)
    assert list(rows[0]) == ["Article", "JSON", "Source"]
    assert Counter(row["Source"] for row in rows) == {"tweets": 14_640, "financial_phrasebank": 4_838,
                                                      "news": len(NEWS_VALID)}
    for row in rows:
        response = SentimentResponse.model_validate_json(row["JSON"])
        for text in (row["Article"], response.reasoning):
            assert unicodedata.is_normalized("NFC", text)
            assert not set(text) & set("\u2018\u2019\u201c\u201d\u2013\u2014")
    news_rows = [row for row in rows if row["Source"] == "news"]
    assert news_rows[0]["Article"] == "Acme's \"record\" quarter - revenue up 12%"
    assert json.loads(news_rows[0]["JSON"])["reasoning"] == "Revenue - and margins - rose."
    assert news_rows[1]["Article"].startswith("Caf\u00e9 ")

    summary = {line.split("INFO dataset_builder.join: ")[1].split(" (")[0]: line
               for line in stderr.splitlines() if "rows kept" in line}
    assert "14640 rows kept, 0 dropped" in summary["tweets"]
    assert "4838 rows kept, 2 dropped" in summary["financial_phrasebank"]
    assert f"{len(NEWS_VALID)} rows kept, {len(NEWS_INVALID)} dropped" in summary["news"]
    for reason in ("malformed JSON", "confidence: Field required", "empty article",
                   "sentiment: Input should be less than or equal to 1"):
        assert reason in summary["news"]


def test_step_04_that_drops_every_row_is_an_error_and_writes_nothing(tmp_path):
    news = write_csv(tmp_path / "news.csv", ["Article", "JSON"], [["Shares fell", "{not json"], ["", "{}"]])
    output = tmp_path / "joined.csv"
    result = run_script(STEP_04, "--input", f"news={news}", "--output", output)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == (
        f"error: no row to join: every row of {news} was dropped ({news}: 1 × malformed JSON)")
    assert not output.exists()


def test_step_04_joins_the_outputs_that_exist_and_names_the_missing(real_steps, tmp_path):
    output = tmp_path / "joined.csv"
    stderr = run_ok(STEP_04, "--set", f"dataset.step_01_csv={real_steps['tweets']}",
                    "--set", f"dataset.step_02_csv={tmp_path / 'absent_02.csv'}",
                    "--set", f"dataset.step_03_csv={tmp_path / 'absent_03.csv'}", "--output", output)
    assert Counter(row["Source"] for row in read_csv(output)) == {"tweets": 14_640}
    missing = [line for line in stderr.splitlines() if "not joined (file missing)" in line]
    assert len(missing) == 1 and "absent_02.csv" in missing[0] and "absent_03.csv" in missing[0]

    output.write_text(PREVIOUS_OUTPUT)
    result = run_script(STEP_04, "--input", f"news={tmp_path / 'absent_03.csv'}", "--output", output)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: no step output to join")
    assert output.read_text() == PREVIOUS_OUTPUT


@pytest.mark.parametrize("case", ["missing column", "wrong encoding", "empty file", "bad flag"])
def test_step_04_bad_input(tmp_path, case):
    path = tmp_path / "news.csv"
    flag = f"news={path}"
    if case == "missing column":
        write_csv(path, ["Article", "Answer"], [["Shares rose", answer(0.5)]])
        names = ["news.csv", "'JSON'"]
    elif case == "wrong encoding":
        path.write_bytes("Article,JSON\n".encode() + '"Société Générale gains",'.encode("latin-1")
                         + b'"{""reasoning"": ""r"", ""sentiment"": 0.5, ""confidence"": 1}"\n')
        names = ["news.csv", "line 2", "utf-8"]
    elif case == "empty file":
        path.write_bytes(b"")
        names = ["news.csv", "empty"]
    else:
        flag, names = str(path), ["SOURCE=PATH"]
    output = tmp_path / "joined.csv"
    output.write_text(PREVIOUS_OUTPUT)
    result = run_script(STEP_04, "--input", flag, "--output", output)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and all(name in errors[0] for name in names), result.stderr
    assert output.read_text() == PREVIOUS_OUTPUT


def test_step_05_records_are_the_sharegpt_format_the_later_stages_read(joined, sharegpt):
    joined_rows = read_csv(joined)
    records = [record for split in SPLITS for record in read_split(sharegpt, split)]
    assert len(records) == len(joined_rows)
    system = system_prompt()
    for record in records:
        assert set(record) == {"conversations", "source", "label"}
        assert [turn["from"] for turn in record["conversations"]] == ["system", "human", "gpt"]
        assert record["conversations"][0]["value"] == system
        response = SentimentResponse.model_validate_json(record["conversations"][2]["value"])
        assert record["label"] == sentiment_label(response.sentiment, 0.15)
    # every joined row is in exactly one split, unchanged
    as_rows = Counter((r["conversations"][1]["value"], r["conversations"][2]["value"], r["source"]) for r in records)
    assert as_rows == Counter((row["Article"], row["JSON"], row["Source"]) for row in joined_rows)


def test_step_05_splits_are_leak_free_and_stratified(joined, sharegpt):
    keys_by_split = {split: [text_key(r["conversations"][1]["value"]) for r in read_split(sharegpt, split)]
                     for split in SPLITS}
    for i, first in enumerate(SPLITS):
        for second in SPLITS[i + 1:]:
            assert not set(keys_by_split[first]) & set(keys_by_split[second]), (first, second)
    # the check means something: the real tweets repeat texts, and each stays in one split
    repeated = [key for key, n in Counter(k for keys in keys_by_split.values() for k in keys).items() if n > 1]
    assert len(repeated) > 100

    strata = Counter()
    for split in SPLITS:
        for record in read_split(sharegpt, split):
            strata[(record["source"], record["label"], split)] += 1
    targets = {"train": 0.8, "validation": 0.1, "test": 0.1}
    for source, label in {(s, lab) for s, lab, _ in strata}:
        total = sum(strata[(source, label, split)] for split in SPLITS)
        for split in SPLITS:
            assert abs(strata[(source, label, split)] / total - targets[split]) < 0.02, (source, label, split)

    card = (sharegpt / "README.md").read_text(encoding="utf-8")
    for split in SPLITS:
        assert f"path: {split}.jsonl" in card
    tweets_line = next(line for line in card.splitlines() if line.startswith("| tweets |"))
    counts = [int(cell.replace(",", "")) for cell in tweets_line.strip("|").split("|")[1:]]
    tweets_per_split = [sum(n for (s, _, sp), n in strata.items() if s == "tweets" and sp == split)
                        for split in SPLITS]
    assert counts == tweets_per_split + [14_640]


def test_step_05_load_dataset_reads_the_folder(sharegpt):
    from datasets import load_dataset

    files = {split: str(sharegpt / f"{split}.jsonl") for split in SPLITS}
    dataset = load_dataset("json", data_files=files)
    for split in SPLITS:
        assert dataset[split].num_rows == len(read_split(sharegpt, split))
        assert set(dataset[split].column_names) == {"conversations", "source", "label"}
    assert dataset["train"][0]["conversations"][0]["from"] == "system"
    # the card's YAML header lets the folder load by itself as well
    assert load_dataset(str(sharegpt))["test"].num_rows == dataset["test"].num_rows


def test_step_05_is_deterministic_for_a_seed(joined, sharegpt, tmp_path):
    again, other = tmp_path / "again", tmp_path / "other"
    run_ok(STEP_05, "--input", joined, "--output", again)
    run_ok(STEP_05, "--input", joined, "--output", other, "--seed", "7")
    for name in [f"{split}.jsonl" for split in SPLITS] + ["README.md"]:
        assert (again / name).read_bytes() == (sharegpt / name).read_bytes()
    assert (other / "test.jsonl").read_bytes() != (sharegpt / "test.jsonl").read_bytes()


def test_step_05_label_threshold_is_a_config_key(tmp_path):
    joined = write_csv(tmp_path / "joined.csv", ["Article", "JSON", "Source"],
                       [[f"Text number {i}", answer(sentiment), "news"]
                        for i, sentiment in enumerate([0.3, -0.3, 0.1, 0.6, -0.6] * 4)])
    labels = {}
    for threshold in (0.15, 0.5):
        folder = tmp_path / f"t{threshold}"
        run_ok(STEP_05, "--input", joined, "--output", folder, "--set", f"dataset.label_threshold={threshold}")
        labels[threshold] = Counter(r["label"] for split in SPLITS for r in read_split(folder, split))
    assert labels[0.15] == {"positive": 8, "negative": 8, "neutral": 4}
    assert labels[0.5] == {"positive": 4, "negative": 4, "neutral": 12}


@pytest.mark.parametrize("case", ["missing file", "missing column", "empty file"])
def test_step_05_bad_input_leaves_the_previous_dataset(tmp_path, case):
    joined = tmp_path / "joined.csv"
    if case == "missing column":
        write_csv(joined, ["Article", "JSON"], [["Shares rose", answer(0.5)]])
        names = ["joined.csv", "'Source'"]
    elif case == "empty file":
        joined.write_bytes(b"")
        names = ["joined.csv", "empty"]
    else:
        names = ["joined.csv", "not found"]
    previous = tmp_path / "sharegpt" / "train.jsonl"
    previous.parent.mkdir()
    previous.write_text(PREVIOUS_OUTPUT)
    result = run_script(STEP_05, "--input", joined, "--output", previous.parent)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and all(name in errors[0] for name in names), result.stderr
    assert [p.name for p in previous.parent.iterdir()] == ["train.jsonl"]
    assert previous.read_text() == PREVIOUS_OUTPUT


def test_step_05_rejects_an_invalid_joined_row(tmp_path):
    joined = write_csv(tmp_path / "joined.csv", ["Article", "JSON", "Source"],
                       [["Fine", answer(0.2), "news"], ["Broken", answer(2.0), "news"]])
    result = run_script(STEP_05, "--input", joined, "--output", tmp_path / "out")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {joined}: line 3: JSON column: sentiment")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["no token", "offline", "token in .env, offline", "token refused"])
def test_step_05_push_to_hub_fails_in_one_line(tmp_path, case):
    joined = write_csv(tmp_path / "joined.csv", ["Article", "JSON", "Source"],
                       [[f"Text number {i}", answer(0.5), "news"] for i in range(20)])
    secret = "hf_test_secret_never_printed"
    env = script_env(HF_HOME=str(tmp_path / "hf_home"), HF_TOKEN=secret,
                     HF_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    if case == "no token":
        env.pop("HF_TOKEN")
    elif case == "token in .env, offline":  # the .env of the working directory is read
        env.pop("HF_TOKEN")
        (tmp_path / ".env").write_text(f"HF_TOKEN={secret}\n")
    with refusing_hub() as hub:
        if case == "token refused":
            env["HF_ENDPOINT"] = f"http://127.0.0.1:{hub.server_port}"
        result = run_script(STEP_05, "--input", joined, "--output", tmp_path / "out",
                            "--push-to-hub", "someone/finsent", cwd=tmp_path, env=env)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    expected = {"no token": "no Hugging Face token", "offline": "cannot reach the Hugging Face Hub",
                "token in .env, offline": "cannot reach the Hugging Face Hub",
                "token refused": "token was refused (HTTP 401)"}[case]
    assert errors[0].startswith("error: --push-to-hub someone/finsent: ") and expected in errors[0]
    assert secret not in result.stderr + result.stdout
    assert read_split(tmp_path / "out", "train")  # the local dataset is written before the upload


def decompose(passage: str, texts: set[str]) -> list[str] | None:
    """The texts of `texts` whose " "-join is `passage`, or None."""
    if not passage:
        return []
    for text in texts:
        if passage.startswith(text) and (len(passage) == len(text) or passage[len(text)] == " "):
            rest = decompose(passage[len(text) + 1:], texts)
            if rest is not None:
                return [text, *rest]
    return None


def test_step_05_passages_are_drawn_within_a_split_and_answer_the_mean(joined, sharegpt, tmp_path):
    folder = tmp_path / "with_passages"
    run_ok(STEP_05, "--input", joined, "--output", folder, "--passages", "200")
    for split in SPLITS:
        plain = read_split(sharegpt, split)
        rows = read_split(folder, split)
        passages = [r for r in rows if r["source"] == "financial_phrasebank_passages"]
        # the other rows are the same rows as without passages, in the same split
        assert sorted(json.dumps(r) for r in rows if r["source"] != "financial_phrasebank_passages") == \
            sorted(json.dumps(r) for r in plain)
        assert len(passages) == {"train": 200, "validation": 25, "test": 25}[split]
        answers = {r["conversations"][1]["value"]: json.loads(r["conversations"][2]["value"])
                   for r in plain if r["source"] == "financial_phrasebank"}
        for passage in passages:
            members = decompose(passage["conversations"][1]["value"], set(answers))
            assert members is not None and 3 <= len(members) <= 6, passage  # only this split's sentences
            answer = SentimentResponse.model_validate_json(passage["conversations"][2]["value"])
            assert answer.sentiment == round(sum(answers[m]["sentiment"] for m in members) / len(members), 1)
            assert passage["label"] == sentiment_label(answer.sentiment, 0.15)
            # The reasoning quotes the passage's own words and claims nothing outside it.
            quoted = re.findall(r'"([^"]+)"', answer.reasoning)
            text = passage["conversations"][1]["value"]
            assert quoted and all(part.rstrip(" …").lower() in text.lower()
                                  for quote in quoted for part in quote.split(" … ")), answer.reasoning
            assert not invented_claims(answer.reasoning, text)
            # it ends with what the evidence means for the shares, the label's side of it
            effect = {"positive": "supports the share price", "negative": "weighs on the share price",
                      "neutral": ("little reason to move", "leaves the price where it was")}[passage["label"]]
            assert answer.reasoning.rstrip(".").endswith(effect), answer.reasoning
    assert "financial_phrasebank_passages" in (folder / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("override, names", [
    (["--set", "dataset.passage_source=news"], ["dataset.passage_source", "'news'"]),
    (["--set", "dataset.passage_sentences=[1, 3]"], ["dataset.passage_sentences"]),
])
def test_step_05_bad_passage_settings_fail_in_one_line(joined, tmp_path, override, names):
    result = run_script(STEP_05, "--input", joined, "--output", tmp_path / "out", "--passages", "10", *override)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and all(name in errors[0] for name in names), result.stderr
    assert not (tmp_path / "out").exists()
