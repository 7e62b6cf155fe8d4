"""evaluate_labelled: readers of the three input kinds, the scoring, and the script end to end
on the real embedded model (few rows: the model is slow on 2 cores)."""
import csv
import json
from statistics import fmean

import pytest

from eval.backends import make_backend, parse_model_entry
from eval.labelled import (LabelledRow, Prediction, choose_threshold, classification_metrics,
                           load_labelled, prediction_cache_key, reasoning_metrics, regression_metrics,
                           run_predictions, sentiment_values)
from eval.settings import EvalConfig
from tests.conftest import run_script
from tests.fault_server import FaultServer, expected_response
from utils.errors import FinsentError
from utils.grounding import invented_claims, is_grounded, reasoning_template, template_share
from utils.labels import to_class
from utils.prompts import system_prompt


def sharegpt_record(text: str, label: str, source: str) -> dict:
    answer = {"reasoning": "r", "sentiment": {"positive": 0.7, "neutral": 0.0, "negative": -0.7}[label],
              "confidence": 0.9}
    return {"conversations": [{"from": "system", "value": system_prompt()}, {"from": "human", "value": text},
                              {"from": "gpt", "value": json.dumps(answer)}], "source": source, "label": label}


def write_step05(folder, fpb_file, n_test: int, n_validation: int):
    """A step-05-format split made of real Financial PhraseBank sentences and one tweet."""
    lines = [line.rpartition("@") for line in fpb_file.read_text(encoding="iso-8859-1").splitlines()]
    by_label = {label: [t for t, _, l in lines if l == label] for label in ("positive", "neutral", "negative")}
    picks = [(by_label[label][i], label) for i in range(20) for label in ("positive", "neutral", "negative")]
    folder.mkdir(parents=True)
    for name, rows in (("test", picks[:n_test]), ("validation", picks[n_test:n_test + n_validation])):
        records = [sharegpt_record(text, label, "financial_phrasebank") for text, label in rows]
        records.append(sharegpt_record("@united thanks, the crew was great today!", "positive", "tweets"))
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_financial_phrasebank_folder_and_file(shared_data):
    fpb = shared_data / "financial_phrasebank"
    data = load_labelled(fpb, fpb_agreement="AllAgree", validation_fraction=0)
    assert len(data.test) == 2264 and not data.validation  # the README's row count
    assert {r.label for r in data.test} == {"positive", "neutral", "negative"}
    held = load_labelled(fpb / "Sentences_75Agree.txt", validation_fraction=0.2, limit=50, seed=1)
    assert len(held.test) == 50 and len(held.validation) == 50
    assert not {r.row for r in held.test} & {r.row for r in held.validation}


def test_a_phrasebank_sample_under_its_own_names(repo_root):
    sample = repo_root / "examples" / "financial_phrasebank"  # finsent_sample_<level>.txt
    data = load_labelled(sample, fpb_agreement="66Agree", validation_fraction=0)
    lines = (sample / "finsent_sample_66Agree.txt").read_text(encoding="iso-8859-1").splitlines()
    assert data.description == str(sample / "finsent_sample_66Agree.txt")
    assert len(data.test) == len([line for line in lines if line.strip()])


def test_step05_jsonl_with_source_filter(tmp_path, shared_data):
    write_step05(tmp_path / "sharegpt", shared_data / "financial_phrasebank" / "Sentences_AllAgree.txt", 6, 3)
    data = load_labelled(tmp_path / "sharegpt", source="financial_phrasebank")
    assert len(data.test) == 6 and len(data.validation) == 3  # validation.jsonl found beside test.jsonl
    assert {r.source for r in data.test} == {"financial_phrasebank"}
    tweets = load_labelled(tmp_path / "sharegpt" / "test.jsonl", source="tweets")
    assert [r.text for r in tweets.test] == ["@united thanks, the crew was great today!"]
    with pytest.raises(FinsentError, match="no row with source 'news' .*financial_phrasebank, tweets"):
        load_labelled(tmp_path / "sharegpt", source="news")


def test_csv_with_columns_and_label_map(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("id,headline,stance\n1,Stock soars on record profit,bullish\n2,Shares sink after warning,"
                    "bearish\n3,Company holds meeting,meh\n")
    data = load_labelled(path, text_column="headline", label_column="stance",
                         label_map="bullish=positive,bearish=negative,meh=neutral", validation_fraction=0)
    assert [(r.row, r.label) for r in data.test] == [(2, "positive"), (3, "negative"), (4, "neutral")]
    with pytest.raises(FinsentError, match=r"mine.csv: row 4: label 'meh' is not"):
        load_labelled(path, text_column="headline", label_column="stance",
                      label_map="bullish=positive,bearish=negative")
    with pytest.raises(FinsentError, match=r"no column 'text' \(columns: id, headline, stance\)"):
        load_labelled(path)
    with pytest.raises(FinsentError, match="--label-map item 'x=good'"):
        load_labelled(path, label_map="x=good")
    numeric = tmp_path / "n.jsonl"
    numeric.write_text('{"text": "a", "label": 0}\n{"text": "b", "label": 2}\n')
    rows = load_labelled(numeric, label_map="0=negative,1=neutral,2=positive", validation_fraction=0).test
    assert [r.label for r in rows] == ["negative", "positive"]


def prediction(label: str, sentiment: float | None) -> Prediction:
    return Prediction("test", LabelledRow(1, "t", label), sentiment is not None, sentiment, 0.9 if sentiment
                      is not None else None)


def test_scoring_counts_invalid_answers_as_wrong():
    preds = [prediction("positive", 0.6), prediction("positive", 0.1), prediction("neutral", 0.05),
             prediction("negative", -0.5), prediction("negative", None)]
    assert [to_class(p.sentiment, 0.15) for p in preds] == ["positive", "neutral", "neutral", "negative",
                                                           "invalid"]
    scores = classification_metrics(preds, 0.15)
    assert scores["accuracy"] == pytest.approx(3 / 5)
    assert scores["valid_only"]["accuracy"] == pytest.approx(3 / 4)
    assert scores["confusion_matrix"]["counts"] == [[1, 0, 0, 1], [0, 1, 0, 0], [0, 1, 1, 0]]
    # t = 0.05 makes the 0.1 answer positive: the chosen threshold must be one that gets it right.
    best, curve = choose_threshold(preds)
    assert 0.05 <= best < 0.1 and curve[f"{best:.2f}"] == max(curve.values())
    reg = regression_metrics(preds)
    assert reg["mae"] == pytest.approx((0.4 + 0.9 + 0.05 + 0.5) / 4)
    assert reg["spearman"] > 0.8


def test_reasoning_that_recites_annotators_is_invented_and_one_without_the_texts_words_is_not_grounded():
    text = "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn , up 51 % ."
    reasonings = ['"profit … rose": profit going up means the company is earning more.',  # grounded, nothing invented
                  "Financial analysts read this as good news; at least 75% of annotators agreed.",
                  "Operating profit is up 51 %, good news.",  # a percentage the text holds
                  "Good news for the company, so it is positive."]  # no word of the text
    answers = [Prediction("test", LabelledRow(i, text, "positive"), True, 0.8, 0.9, reasoning)
               for i, reasoning in enumerate(reasonings)]
    answers.append(Prediction("test", LabelledRow(9, text, "positive"), False))  # invalid: not counted
    assert [bool(invented_claims(r, text)) for r in reasonings] == [False, True, False, False]
    assert [is_grounded(r, text) for r in reasonings] == [True, False, True, False]
    metrics = reasoning_metrics(answers)
    assert {k: metrics[k] for k in ("reasoning_invented_share", "reasoning_grounded_share")} == {
        "reasoning_invented_share": 0.25, "reasoning_grounded_share": 0.5}
    assert set(reasoning_metrics(answers[-1:]).values()) == {None}


def test_the_template_share_is_the_largest_share_of_reasonings_alike_but_for_what_they_quote():
    """A label prefix around a quote is one template however its quotes differ; explanations
    written for each text are each their own."""
    prefix = ['No clear good or bad news: it reports "The plant opens in May" as a plain fact.',
              'No clear good or bad news: it reports  "Sales were EUR 5 mn"  as a plain fact.',
              'no clear good or bad news: it reports \u201cA new CEO\u201d as a plain fact.']
    written = ["Orders doubled, so next year's revenue looks safer.", "A recall costs money and trust."]
    assert reasoning_template(prefix[0]) == reasoning_template(prefix[1]) == reasoning_template(prefix[2])
    assert template_share(prefix + written) == (0.6, reasoning_template(prefix[0]))
    assert template_share(written)[0] == 0.5 and template_share([]) == (None, None)
    text = "The plant opens in May."
    answers = [Prediction("test", LabelledRow(i, text, "neutral"), True, 0.0, 0.9, r)
               for i, r in enumerate(prefix + written)]
    assert reasoning_metrics(answers)["reasoning_template_share"] == 0.6
    graded = [prediction("positive", s) for s in (0.8, 0.5, 0.8, -1.0, None)]
    assert sentiment_values(graded) == {"-1": 1, "0.5": 1, "0.8": 2}


def test_script_end_to_end_on_the_embedded_model(tmp_path, shared_data):
    write_step05(tmp_path / "sharegpt", shared_data / "financial_phrasebank" / "Sentences_AllAgree.txt", 3, 2)
    out = tmp_path / "eval_out"
    args = ["--input", tmp_path / "sharegpt" / "test.jsonl", "--output", out, "--source", "financial_phrasebank",
            "--prompt", "trained", "--structured", "--max-tokens", "64", "--parallel", "4", "--no-progress",
            "--threads", "2", "--set", "eval.max_reasoning_chars=100"]
    result = run_script("eval/evaluate_labelled.py", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "4 slots, 2 CPU threads" in result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["rows"] == 3 and metrics["threshold_chosen_on"]["rows"] == 2
    assert metrics["prompt"] == "trained" and metrics["structured"] is True
    for block in ("at_chosen_threshold", "at_0.15"):
        assert 0 <= metrics[block]["weighted_f1"] <= 1
        assert sum(map(sum, metrics[block]["confusion_matrix"]["counts"])) == 3
    assert 0 <= metrics["valid_json_rate"] <= 1
    import pandas as pd

    table = pd.read_csv(out / "predictions.csv")
    # The reasoning shares and the distinct sentiments are those of the test rows' valid answers.
    answered = table[(table["split"] == "test") & table["valid"]]
    assert metrics["sentiment_distinct_values"] == answered["sentiment"].round(2).nunique()
    if len(answered):
        assert metrics["reasoning_grounded_share"] == round(fmean(
            is_grounded(r, t) for r, t in zip(answered["reasoning"], answered["text"])), 4)
        assert metrics["reasoning_invented_share"] == round(fmean(
            bool(invented_claims(r, t)) for r, t in zip(answered["reasoning"], answered["text"])), 4)
    assert list(table["split"]).count("test") == 3 and list(table["split"]).count("validation") == 2
    assert set(pd.ExcelFile(out / "metrics.xlsx").sheet_names) >= {"Metrics", "Predictions"}
    assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    # A rerun answers from the cache: no engine is started.
    again = run_script("eval/evaluate_labelled.py", *args, cwd=tmp_path)
    assert again.returncode == 0 and "starting the embedded llama.cpp engine" not in again.stderr
    assert json.loads((out / "metrics.json").read_text())["at_0.15"] == metrics["at_0.15"]


def test_script_bad_input_is_one_line(tmp_path, shared_data):
    result = run_script("eval/evaluate_labelled.py", "--input", shared_data / "financial_phrasebank",
                        "--output", tmp_path / "o", "--gguf", tmp_path / "absent.gguf", cwd=tmp_path)
    assert result.returncode == 2
    assert "GGUF file not found" in result.stderr.strip().splitlines()[-1]
    result = run_script("eval/evaluate_labelled.py", "--input", tmp_path / "none.csv", "--output", tmp_path / "o",
                        cwd=tmp_path)
    assert result.returncode == 2 and "input not found" in result.stderr.strip().splitlines()[-1]


def fault_server_rows(labelled_at: float, count: int) -> list[tuple[str, str]]:
    """(text, label) pairs labelled as the fault server's answer about each text classes at t =
    `labelled_at`, the first one between 0.15 and `labelled_at` when there is room."""
    texts = [f"Quarterly revenue moved, note {n}." for n in range(200)]
    between = [t for t in texts if 0.2 < abs(expected_response(t)["sentiment"]) < labelled_at - 0.05]
    chosen = (between[:1] + [t for t in texts if t not in between[:1]])[:count]
    return [(text, to_class(expected_response(text)["sentiment"], labelled_at)) for text in chosen]


def write_csv(path, rows: list[tuple[str, str]]):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("text", "label"), *rows])
    return path


def test_a_torn_last_cache_line_is_asked_again(tmp_path):
    """A kill -9 mid-append leaves the predictions cache's last line without its newline: a
    rerun asks that row again (even when the line parses) and reuses the complete lines."""
    rows = fault_server_rows(0.15, 5)
    data = load_labelled(write_csv(tmp_path / "test.csv", rows[:3]),
                         validation=write_csv(tmp_path / "validation.csv", rows[3:]))
    cache = tmp_path / "predictions.cache.jsonl"
    with FaultServer() as server:
        spec = parse_model_entry({"backend": "openai", "model": "test-model", "base_urls": [server.base_url]}, 1,
                                 EvalConfig())
        backend = make_backend(spec, EvalConfig())
        first = run_predictions(backend, data, cache, "m", parallel=2, progress=False)
        torn = json.loads(cache.read_text(encoding="utf-8").splitlines()[-1])
        cache.write_bytes(cache.read_bytes().removesuffix(b"\n"))  # killed before the newline
        server.seen.clear()
        again = run_predictions(backend, data, cache, "m", parallel=2, progress=False)
        asked = [request.article for request in server.seen]
    [row] = [p.row for p in first if (p.split, p.row.row) == (torn["split"], torn["row"])]
    assert asked == [row.text]
    assert [(p.split, p.row, p.sentiment) for p in again] == [(p.split, p.row, p.sentiment) for p in first]
    lines = [json.loads(line) for line in cache.read_text(encoding="utf-8").splitlines()]
    assert sorted((r["split"], r["row"]) for r in lines) == sorted((p.split, p.row.row) for p in first)
    assert all(p.sentiment == expected_response(p.row.text)["sentiment"] for p in again)


def test_a_row_whose_text_changed_is_asked_again(tmp_path):
    """The cache keys an answer to its text: after the input file is edited, a rerun at the same
    output asks the changed row again and reuses the others."""
    rows = fault_server_rows(0.15, 5)
    test_csv, validation_csv = write_csv(tmp_path / "test.csv", rows[:3]), write_csv(tmp_path / "validation.csv", rows[3:])
    cache = tmp_path / "predictions.cache.jsonl"
    with FaultServer() as server:
        spec = parse_model_entry({"backend": "openai", "model": "test-model", "base_urls": [server.base_url]}, 1,
                                 EvalConfig())
        backend = make_backend(spec, EvalConfig())
        run_predictions(backend, load_labelled(test_csv, validation=validation_csv), cache, "m", parallel=2,
                        progress=False)
        edited = list(rows[:3])
        edited[1] = (edited[1][0] + " Shares fell 12% after the call.", edited[1][1])
        server.seen.clear()
        again = run_predictions(backend, load_labelled(write_csv(tmp_path / "test.csv", edited), validation=validation_csv),
                                cache, "m", parallel=2, progress=False)
        asked = [request.article for request in server.seen]
    assert asked == [edited[1][0]]
    assert [p.row.text for p in again if p.split == "test"] == [text for text, _ in edited]
    assert all(p.sentiment == expected_response(p.row.text)["sentiment"] for p in again)


def test_the_openai_key_comes_from_dotenv_as_in_every_script_and_the_answer_cap_from_the_config(tmp_path):
    """`.env` of the working directory is read for evaluate_labelled too (it was for
    generate_model_sentiments only), and --max-tokens not given is eval.num_tokens_to_predict."""
    secret = "sk-from-dotenv-5c1e"
    (tmp_path / ".env").write_text(f"FINSENT_EVAL_KEY={secret}\n", encoding="utf-8")
    rows = fault_server_rows(0.15, 4)
    with FaultServer(required_api_key=secret) as server:
        model = f"{{backend: openai, model: test-model, api_key_env: FINSENT_EVAL_KEY, base_urls: [{server.base_url}]}}"
        result = run_script("eval/evaluate_labelled.py", "--input", write_csv(tmp_path / "test.csv", rows[2:]),
                            "--validation", write_csv(tmp_path / "validation.csv", rows[:2]), "--model", model,
                            "--output", tmp_path / "out", "--no-progress", "--set", "eval.num_tokens_to_predict=77",
                            cwd=tmp_path)
        faults = {request.fault for request in server.seen}
    assert result.returncode == 0, result.stderr
    assert faults == {None} and secret not in result.stdout + result.stderr
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["valid_json_rate"] == 1.0
    [cached] = {json.loads(line)["model"] for line in (tmp_path / "out" / "predictions.cache.jsonl").read_text().splitlines()}
    assert json.loads(cached)["max_tokens"] == 77


@pytest.mark.parametrize("labelled_at", [0.15, 0.5])
def test_the_summary_gives_t_015_once(tmp_path, labelled_at):
    """Validation labels that the fault server's answers meet at t = 0.15 (chosen: 0.15, said
    once) or only at a larger t (then 0.15 is given as well, after the chosen t)."""
    rows = fault_server_rows(labelled_at, 5)
    with FaultServer() as server:
        model = f"{{backend: openai, model: test-model, base_urls: [{server.base_url}]}}"
        result = run_script("eval/evaluate_labelled.py", "--input", write_csv(tmp_path / "test.csv", rows[3:]),
                            "--validation", write_csv(tmp_path / "validation.csv", rows[:3]),
                            "--model", model, "--output", tmp_path / "out", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    [line] = [line for line in result.stdout.splitlines() if line.startswith("valid JSON")]
    chosen = metrics["threshold_chosen"]
    assert line.startswith(f"valid JSON 100.0%; t = {chosen:.2f}: accuracy ")
    at_default = f"t = 0.15: weighted F1 {metrics['at_0.15']['weighted_f1']:.3f}; "
    if labelled_at == 0.15:
        assert chosen == 0.15 and line.count("t = ") == 1
    else:
        assert chosen > 0.15 and line.count("t = ") == 2 and at_default in line


def test_answers_are_reused_across_parallel_and_threads_but_not_across_prompts(tmp_path):
    """Slots and CPU threads change the speed, not the answers: a rerun with other --parallel or
    --threads asks nothing again; another prompt asks every row again."""
    rows = fault_server_rows(0.15, 4)
    data = load_labelled(write_csv(tmp_path / "test.csv", rows[:2]),
                         validation=write_csv(tmp_path / "validation.csv", rows[2:]))
    cache = tmp_path / "predictions.cache.jsonl"
    with FaultServer() as server:
        def key(**changes):
            entry = {"backend": "openai", "model": "test-model", "base_urls": [server.base_url], **changes}
            return prediction_cache_key(parse_model_entry(entry, 1, EvalConfig()))

        backend = make_backend(parse_model_entry({"backend": "openai", "model": "test-model",
                                                  "base_urls": [server.base_url]}, 1, EvalConfig()), EvalConfig())
        run_predictions(backend, data, cache, key(parallel=1, threads=2), parallel=2, progress=False)
        server.seen.clear()
        run_predictions(backend, data, cache, key(parallel=16, threads=12), parallel=2, progress=False)
        reused = len(server.seen)
        run_predictions(backend, data, cache, key(prompt="few-shot"), parallel=2, progress=False)
        asked_again = len(server.seen)
    assert reused == 0
    assert asked_again == len(rows)


def test_a_rerun_from_the_cache_keeps_the_timing_of_the_run_that_asked(tmp_path):
    labelled = tmp_path / "labelled.csv"
    rows = [f"Company {n} reports quarter {n},{'positive' if n % 2 else 'negative'}\n" for n in range(10)]
    labelled.write_text("text,label\n" + "".join(rows), encoding="utf-8")
    out = tmp_path / "eval"
    with FaultServer(latency_s=0.2) as server:
        model = json.dumps({"backend": "openai", "model": "test-model", "base_urls": [server.base_url]})
        runs = []
        for _ in range(2):
            result = run_script("eval/evaluate_labelled.py", "--input", labelled, "--output", out, "--model", model,
                                "--no-progress", "--parallel", "1")
            assert result.returncode == 0, result.stderr[-2000:]
            runs.append(json.loads((out / "metrics.json").read_text(encoding="utf-8")))
    first, cached = runs
    assert first["seconds"] >= 10 * 0.2 and first["rows_per_s"] == pytest.approx(10 / first["seconds"], rel=0.05)
    assert (cached["seconds"], cached["rows_per_s"]) == (first["seconds"], first["rows_per_s"])
