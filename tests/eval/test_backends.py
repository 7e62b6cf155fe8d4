"""The three backends against real servers: the embedded llama.cpp engine, its OpenAI-compatible
API, and an Ollama-API server (tests/ollama_proxy.py) in front of it, via the real `ollama` client."""
import json

import pytest

from eval.backends import make_backend, parse_model_entries, parse_model_entry
from eval.settings import EvalConfig
from finsent.config import load_config
from tests.ollama_proxy import OllamaProxy
from utils.engine import free_port
from utils.errors import FinsentError
from utils.prompts import analysis_messages

# The short "trained" prompt and a short reasoning keep these tests fast on 2 cores.
CONFIG = EvalConfig(num_tokens_to_predict=96, context_window_size=2048, seed=7, max_reasoning_chars=120)
TEXT = "Microsoft's quarterly profit rose 20% and it raised its dividend."


def assert_structured(raw: str) -> None:
    """What a structured request guarantees whatever the model says: one JSON object with the
    schema's three keys and their types. llama.cpp's grammar fixes the shape, not a number's range,
    so the base model's sentiment can fall outside [-1, 1] (it did, after other tests had used the
    shared engine's slots); refusing that is the schema validator's work (tests/utils/test_schema.py)."""
    data = json.loads(raw)
    assert list(data) == ["reasoning", "sentiment", "confidence"]
    assert isinstance(data["reasoning"], str)
    assert all(isinstance(data[key], (int, float)) for key in ("sentiment", "confidence"))


def served_model(engine) -> str:
    import httpx

    return httpx.get(f"{engine.base_url}/models").json()["data"][0]["id"]


def test_llamacpp_backend_structured_answer_is_valid(embedded_engine):
    spec = parse_model_entry({"backend": "llamacpp", "model": "gemma", "structured": True}, 1, CONFIG)
    backend = make_backend(spec, CONFIG, engine=embedded_engine)
    backend.check()
    assert_structured(backend.complete(analysis_messages(TEXT, few_shot=False)))
    backend.close()


def test_openai_backend_spreads_requests_over_base_urls(embedded_engine):
    from concurrent.futures import ThreadPoolExecutor

    model = served_model(embedded_engine)
    # Two base URLs (the same server under two names) stand for two GPU servers.
    urls = [embedded_engine.base_url, embedded_engine.base_url.replace("127.0.0.1", "localhost")]
    spec = parse_model_entry({"backend": "openai", "model": model, "base_urls": urls, "structured": True,
                              "parallel": 1, "max_tokens": 64}, 1, CONFIG)
    backend = make_backend(spec, CONFIG)
    assert backend.parallel == 2
    backend.check()
    used = []
    original = backend._acquire
    backend._acquire = lambda: used.append(original()) or used[-1]
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(backend.complete, [analysis_messages(TEXT, few_shot=False)] * 2))
    assert sorted(used) == [0, 1]  # one request on each server
    for answer in answers:
        assert_structured(answer)
    backend.close()


def test_openai_backend_errors_name_the_model_and_the_host(embedded_engine):
    spec = parse_model_entry({"backend": "openai", "model": "no-such-model",
                              "base_urls": embedded_engine.base_url}, 1, CONFIG)
    with pytest.raises(FinsentError, match="model 'no-such-model' is not served at http://127.0.0.1"):
        make_backend(spec, CONFIG).check()
    port = free_port()
    down = parse_model_entry({"backend": "openai", "model": "m", "base_urls": [f"http://127.0.0.1:{port}/v1"]},
                             1, CONFIG)
    with pytest.raises(FinsentError, match=f"server at http://127.0.0.1:{port}/v1 is not reachable"):
        make_backend(down, CONFIG).check()
    with pytest.raises(FinsentError, match="FINSENT_TEST_ABSENT_KEY"):
        make_backend(parse_model_entry({"backend": "openai", "model": "m", "base_urls": "http://x/v1",
                                        "api_key_env": "FINSENT_TEST_ABSENT_KEY"}, 1, CONFIG), CONFIG)


def test_ollama_backend_through_the_real_client(embedded_engine):
    with OllamaProxy(embedded_engine.base_url, models=["gemma3:270m"]) as proxy:
        spec = parse_model_entry({"model": "gemma3:270m", "structured": True, "host": proxy.host}, 1, CONFIG)
        backend = make_backend(spec, CONFIG)
        backend.check()
        assert_structured(backend.complete(analysis_messages(TEXT, few_shot=False)))
        paths = [path for path, _ in proxy.requests]
        assert paths == ["/api/tags", "/api/generate", "/api/chat"]
        chat = proxy.requests[-1][1]
        assert chat["format"]["required"] == ["reasoning", "sentiment", "confidence"]
        assert chat["options"] == {"temperature": 0.2, "num_ctx": 2048, "num_predict": 96, "seed": 7}
        unknown = parse_model_entry({"model": "llama3:70b", "host": proxy.host}, 1, CONFIG)
        with pytest.raises(FinsentError, match="model 'llama3:70b' is not on the Ollama server"):
            make_backend(unknown, CONFIG).check()
        backend.close()


def test_ollama_server_down_names_the_host(monkeypatch):
    port = free_port()
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{port}")
    backend = make_backend(parse_model_entry("llama3:8b", 1, CONFIG), CONFIG)
    with pytest.raises(FinsentError, match=f"Ollama server at http://127.0.0.1:{port} is not reachable"):
        backend.check()


def test_bad_model_entries_are_one_line_errors(tmp_path):
    with pytest.raises(FinsentError, match="entry 2: unknown backend 'vllm'"):
        parse_model_entries(["a", {"backend": "vllm", "model": "x"}], CONFIG)
    with pytest.raises(FinsentError, match="entry 1: backend 'openai' needs 'base_urls'"):
        parse_model_entry({"backend": "openai", "model": "x"}, 1, CONFIG)
    with pytest.raises(FinsentError, match="entry 1: key 'temprature'"):
        parse_model_entry({"model": "x", "temprature": 1}, 1, CONFIG)
    with pytest.raises(FinsentError, match="GGUF file not found"):
        make_backend(parse_model_entry({"backend": "llamacpp", "model": "ft",
                                        "gguf": str(tmp_path / "absent.gguf")}, 1, CONFIG), CONFIG)
    with pytest.raises(FinsentError, match="entries 1 and 2 both write to folder 'a_b'"):
        parse_model_entries(["a:b", {"backend": "llamacpp", "model": "a_b"}], CONFIG)


def test_original_models_load_as_ollama_models_in_their_folders(shared_data):
    config = load_config(shared_data / "reference_eval_msft" / "config.yaml").eval
    specs = parse_model_entries(config.models_to_test, config)
    assert len(specs) == 34 and {s.backend for s in specs} == {"ollama"}
    folders = {p.name for p in (shared_data / "reference_eval_msft" / "sentiments").iterdir()}
    assert {s.folder for s in specs} == folders
    # The original sent fine-tunes ("sentiment" in the name) the bare text, others the instructions.
    by_name = {s.model: s for s in specs}
    assert len(by_name["llama3:8b-instruct-q4_K_M"].messages("t")[1]["content"]) > 200
    assert by_name["llama3:8b-instruct-sentiment_analysis-q4_K_M"].messages("t")[1]["content"] == "t"
