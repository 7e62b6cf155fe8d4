"""The sentiment read from the token probabilities (eval.expected_sentiment): the estimator on
hand-made logprobs, its absence and the prediction cache through a real OpenAI-compatible server
that gives no logprobs, and evaluate_labelled end to end on the real embedded model."""
import json
import math

import pytest

from eval.backends import make_backend, parse_model_entry
from eval.expected_sentiment import alternative_value, expected_sentiment
from eval.labelled import evaluate, load_labelled, run_predictions
from eval.settings import EvalConfig
from tests.conftest import run_script
from tests.fault_server import FaultServer
from tests.eval.test_labelled import fault_server_rows, write_csv, write_step05


def token(piece: str, p: float, *alternatives: tuple[str, float]) -> dict:
    """One token in OpenAI's logprobs format: the generated piece with probability p and its
    alternatives (piece, probability); the generated one is listed among the top ones too."""
    top = [{"token": piece, "bytes": list(piece.encode()), "logprob": math.log(p)}]
    top += [{"token": t, "bytes": list(t.encode()), "logprob": math.log(q)} for t, q in alternatives]
    return {**top[0], "top_logprobs": top}


def answer_tokens(number_tokens: list[dict]) -> list[dict]:
    """`{"reasoning": ..., "sentiment": <number_tokens>, "confidence": 0.9}` as tokens; the
    reasoning quotes a `\\"sentiment\\": 1` and the confidence digits have alternatives, neither read."""
    sure = [token(piece, 1.0) for piece in ('{"', "reason", "ing", '":', ' "', "says", ' \\"', "sentiment",
                                            '\\":', " ", "1", '",', ' "', "sentiment", '":')]
    tail = [token(piece, 1.0) for piece in (' "', "confidence", '":', " ")]
    tail += [token("0", 0.5, ("1", 0.5)), token(".", 1.0), token("9", 0.2, ("1", 0.8)), token("}", 1.0)]
    return sure + number_tokens + tail


def test_the_expected_value_over_the_number_tokens_by_hand():
    tokens = answer_tokens([
        token(" ", 0.6, (' "', 0.3), (" -", 0.1)),  # a string: dropped; " -": the same -0.4
        token("-", 0.5, ("0", 0.3), ("1", 0.1), ('"', 0.1)),  # "0" → 0.4, "1" → 1.4 clipped to 1, '"' dropped
        token("0", 0.9, ("1", 0.05), ("-", 0.05)),  # "1" → -1.4 clipped to -1, "--" dropped
        token(".", 1.0),
        token("4", 0.5, ("8", 0.25), ("2", 0.25)),  # -0.8, -0.2
        token(",", 0.8, ("5", 0.2)),  # a further decimal: -0.45
    ])
    # From the last position back, each renormalised over the generated token and the kept ones.
    after_comma = 0.8 * -0.4 + 0.2 * -0.45
    after_four = 0.5 * after_comma + 0.25 * -0.8 + 0.25 * -0.2
    after_zero = (0.9 * after_four + 0.05 * -1.0) / 0.95
    after_sign = (0.5 * after_zero + 0.3 * 0.4 + 0.1 * 1.0) / 0.9
    expected = (0.6 * after_sign + 0.1 * -0.4) / 0.7
    result = expected_sentiment(tokens)
    assert result.value == pytest.approx(expected) == pytest.approx(-0.077945, abs=1e-6)
    assert result.certainty == pytest.approx(0.6 / 0.7 * 0.5 / 0.9 * 0.9 / 0.95 * 0.5 * 0.8)
    assert [t["token"] for t in result.positions] == [" ", "-", "0", ".", "4", ","]


def test_a_sure_model_reads_as_the_number_it_wrote_and_no_number_is_no_value():
    unlikely = 1e-12
    sure = answer_tokens([token(" ", 1 - unlikely, (" -", unlikely)), token("0", 1 - unlikely, ("1", unlikely)),
                          token(".", 1.0), token("7", 1 - unlikely, ("2", unlikely)), token(",", 1.0)])
    result = expected_sentiment(sure)
    assert result.value == pytest.approx(0.7, abs=1e-9) and result.certainty == pytest.approx(1.0)
    # Where the backend gave no logprobs, or the sentiment is a string, there is nothing to read.
    assert expected_sentiment(None) is None and expected_sentiment([]) is None
    quoted = answer_tokens([token(' "', 1.0), token("0", 0.5, ("1", 0.5)), token('",', 1.0)])
    assert expected_sentiment(quoted) is None


@pytest.mark.parametrize("written, alternative, generated, value", [
    ("", "0", "-0.4", 0.4),  # a digit in place of the sign: the sign and its digit replaced
    ("", " -", "0.4", -0.4),  # a sign before the number
    ("0", ",", "0.4", 0.0),  # the number ends at the integer
    ("0.", "7", "0.45", 0.75),  # the later decimals kept
    ("", "1", "0.4", 1.0),  # 1.4 clipped: "1" still begins a valid answer
    ("", "3", "0.4", None),  # nothing valid begins with 3
    ("1.", "4", "1.0", None),
    ("0", "5", "0.4", None),  # "05" is no JSON number
    ("0.4", '"', "0.4", None),
    ("0", ".", "0", None),  # a point with no decimal to follow
])
def test_each_alternative_is_the_number_it_would_have_written(written, alternative, generated, value):
    assert alternative_value(written, alternative, generated) == value


def openai_backend(url: str):
    spec = parse_model_entry({"backend": "openai", "model": "test-model", "base_urls": [url]}, 1,
                             EvalConfig())
    return spec, make_backend(spec, EvalConfig())


def test_a_backend_without_logprobs_reports_the_expected_sentiment_absent_and_cached_answers_are_asked_again(tmp_path):
    """The fault server (OpenAI-compatible) gives no logprobs: the block says so, no error. A cache
    written without logprobs is asked again once with them, then reused; without the option the
    outputs have no expected sentiment."""
    rows = fault_server_rows(0.15, 4)
    cache = tmp_path / "predictions.cache.jsonl"
    with FaultServer() as server:
        spec, backend = openai_backend(server.base_url)
        data = load_labelled(write_csv(tmp_path / "test.csv", rows[:2]),
                             validation=write_csv(tmp_path / "validation.csv", rows[2:]))
        plain = run_predictions(backend, data, cache, "m", parallel=2, progress=False)
        server.seen.clear()
        asked = run_predictions(backend, data, cache, "m", parallel=2, progress=False, top_logprobs=5)
        asked_again = len(server.seen)
        reused = run_predictions(backend, data, cache, "m", parallel=2, progress=False, top_logprobs=5)
        assert len(server.seen) == asked_again == len(rows)
        without = run_predictions(backend, data, cache, "m", parallel=2, progress=False)
    assert [p.sentiment for p in asked] == [p.sentiment for p in plain] == [p.sentiment for p in reused]
    assert all(p.logprobs is False and p.expected_sentiment is None for p in asked + reused)
    metrics = evaluate(reused, spec, data, 1.0)
    assert metrics["expected_sentiment"] == {"available": False, "reason": "the backend gave no token logprobs"}
    assert "expected_sentiment" not in evaluate(without, spec, data, 1.0)


@pytest.mark.slow
def test_script_reads_the_expected_sentiment_on_the_embedded_model(tmp_path, shared_data):
    write_step05(tmp_path / "sharegpt", shared_data / "financial_phrasebank" / "Sentences_AllAgree.txt", 2, 2)
    out = tmp_path / "eval_out"
    args = ["--input", tmp_path / "sharegpt" / "test.jsonl", "--output", out, "--source", "financial_phrasebank",
            "--prompt", "trained", "--structured", "--max-tokens", "48", "--parallel", "2", "--no-progress",
            "--threads", "2", "--set", "eval.max_reasoning_chars=40", "--expected-sentiment"]
    result = run_script("eval/evaluate_labelled.py", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    block = metrics["expected_sentiment"]
    import pandas as pd

    table = pd.read_csv(out / "predictions.csv")
    valid = table[table["valid"]]
    assert len(valid) >= 1, "no valid answer to read"
    assert valid["expected_sentiment"].notna().all() and valid["sentiment_certainty"].between(0, 1).all()
    assert valid["expected_sentiment"].between(-1, 1).all()
    # The estimate moves from the written number by at most 2 (1 - certainty): equal where the model was sure.
    gap = (valid["expected_sentiment"] - valid["sentiment"]).abs()
    assert (gap <= 2 * (1 - valid["sentiment_certainty"]) + 1e-9).all()
    assert (gap[valid["sentiment_certainty"] > 0.999] < 0.002).all()
    test_valid = valid[valid["split"] == "test"]
    assert block["available"] is True and block["rows"] == len(test_valid)
    assert block["valid_rows_without_value"] == 0
    for key in ("at_chosen_threshold", "at_0.15"):
        assert sum(map(sum, block[key]["confusion_matrix"]["counts"])) == 2
    [line] = [line for line in result.stdout.splitlines() if line.startswith("expected sentiment (")]
    assert f"validation macro-F1 {block['validation_macro_f1']['expected']:.3f}" in line
    # A rerun answers from the cache, expected sentiments included: no engine is started.
    again = run_script("eval/evaluate_labelled.py", *args, cwd=tmp_path)
    assert again.returncode == 0 and "starting the embedded llama.cpp engine" not in again.stderr
    assert json.loads((out / "metrics.json").read_text())["expected_sentiment"] == block


@pytest.mark.slow
def test_the_openai_backend_on_llama_cpp_gives_logprobs_and_ollama_gives_none(embedded_engine):
    import httpx

    from tests.ollama_proxy import OllamaProxy
    from utils.prompts import analysis_messages
    from utils.schema import parse_sentiment_response

    config = EvalConfig(num_tokens_to_predict=48, context_window_size=2048, seed=7, max_reasoning_chars=40)
    messages = analysis_messages("Microsoft's quarterly profit rose 20% and it raised its dividend.", few_shot=False)
    model = httpx.get(f"{embedded_engine.base_url}/models").json()["data"][0]["id"]
    spec = parse_model_entry({"backend": "openai", "model": model, "base_urls": [embedded_engine.base_url],
                              "structured": True}, 1, config)
    backend = make_backend(spec, config)
    raw, tokens = backend.complete_with_logprobs(messages, 5)
    backend.close()
    assert tokens and all(len(t["top_logprobs"]) == 5 for t in tokens)
    assert raw.strip() in b"".join(bytes(t["bytes"]) for t in tokens).decode("utf-8", "replace")
    read = expected_sentiment(tokens)
    assert -1 <= read.value <= 1 and 0 < read.certainty <= 1
    assert abs(read.value - parse_sentiment_response(raw).sentiment) <= 2 * (1 - read.certainty) + 1e-9
    with OllamaProxy(embedded_engine.base_url, models=["gemma3:270m"]) as proxy:
        ollama = make_backend(parse_model_entry({"model": "gemma3:270m", "structured": True, "host": proxy.host},
                                                1, config), config)
        text, none = ollama.complete_with_logprobs(messages, 5)
        ollama.close()
    assert none is None and text
