"""The embedded llama.cpp engine is real: it loads Gemma 3 270M and answers over HTTP."""
import httpx
import pytest

from utils.engine import EmbeddedEngine, EngineSettings
from utils.errors import FinsentError
from utils.prompts import analysis_messages, date_message
from utils.schema import parse_sentiment_response, sentiment_json_schema


def test_schema_constrained_answer_is_a_valid_response(embedded_engine):
    body = {
        "messages": analysis_messages("Nokia's quarterly profit doubled, beating forecasts."),
        "max_tokens": 256,
        "temperature": 0.2,
        "response_format": {"type": "json_schema",
                            "json_schema": {"name": "sentiment", "schema": sentiment_json_schema()}},
    }
    reply = httpx.post(f"{embedded_engine.base_url}/chat/completions", json=body, timeout=120)
    assert reply.status_code == 200
    choice = reply.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    answer = parse_sentiment_response(choice["message"]["content"])
    assert -1.0 <= answer.sentiment <= 1.0


def test_missing_gguf_is_a_one_line_error(tmp_path):
    with pytest.raises(FinsentError, match="GGUF model not found"):
        EmbeddedEngine(EngineSettings(gguf_path=tmp_path / "absent.gguf")).start()


def test_articles_with_different_dates_reuse_the_whole_few_shot_prefix(embedded_engine):
    """The date comes after the 5-shot examples, so the server's prompt cache keeps all of them
    when the next article (another date, another text) arrives: only its tail is processed."""
    def prompt_tokens(text: str, published: str) -> tuple[int, int]:
        body = {"messages": analysis_messages(text, date_message(published)), "max_tokens": 1, "temperature": 0}
        usage = httpx.post(f"{embedded_engine.base_url}/chat/completions", json=body, timeout=120).json()["usage"]
        return usage["prompt_tokens"], usage["prompt_tokens_details"]["cached_tokens"]

    prompt_tokens("Nokia's quarterly profit doubled, beating forecasts.", "2026-04-28")
    total, cached = prompt_tokens("Ericsson said it would cut 500 jobs in Sweden.", "2026-05-02")
    assert total > 500
    # what is new: the date line's tail, the text and the chat template's closing tokens
    assert total - cached < 40, (total, cached)
