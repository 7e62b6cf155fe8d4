"""The sentiments-folder reader: real reference files, and every kind of bad input."""
from __future__ import annotations

import logging

import pytest

from eval.sentiment_files import SentimentFileError, load_sentiments, read_iteration_file, resolve_pairs
from eval.sentiment_folder import iteration_file_path, model_folder_name
from finsent.config import load_config
from tests.reports_data import write_model
from utils.errors import FinsentError


def test_reads_the_reference_folder_once_into_tidy_rows(shared_data):
    ref = shared_data / "reference_eval_msft"
    config = load_config(ref / "config.yaml").eval
    data = load_sentiments(ref / "sentiments", config.models_to_test)
    assert len(data.models) == 34 and data.models[4] == "phi3_3.8b-mini-instruct-4k-q4_K_M"
    assert len(data.files) == 34 * 14
    assert data.files["n_answers"].sum() == len(data.answers)
    assert data.answers.groupby("model")["article_key"].nunique().eq(19).all()
    invalid = data.answers[~data.answers["valid"]]
    assert invalid["sentiment"].isna().all() and data.valid()["sentiment"].between(-1, 1).all()
    assert data.skipped == []
    # the whole folder (models_to_test empty) reads the same rows
    assert len(load_sentiments(ref / "sentiments").answers) == len(data.answers)


def test_folder_names_and_mapping_entries():
    assert model_folder_name("llama3:8b-instruct-q4_K_M") == "llama3_8b-instruct-q4_K_M"
    assert model_folder_name({"name": "a:b", "model": "x"}) == "a_b"
    assert model_folder_name({"model": "m:1"}) == "m_1"
    assert iteration_file_path("s", "m:1", "MSFT", 3).as_posix() == "s/m_1/MSFT_3.json"
    with pytest.raises(FinsentError, match="neither 'name' nor 'model'"):
        model_folder_name({"backend": "ollama"})


def test_pairs_match_ignoring_case_and_unmatched_is_skipped_or_strict(caplog):
    models = ["llama3_8b-instruct-q4_K_M", "Mistral-7B.Q8"]
    assert resolve_pairs([["llama3:8b-instruct-Q4_K_M", "mistral-7b.q8"]], models) == \
        [("llama3_8b-instruct-q4_K_M", "Mistral-7B.Q8")]
    pairs = [[models[0], models[1]], ["phi3:mini", models[0]], ["a", "b"]]
    skipped: list[str] = []
    with caplog.at_level(logging.WARNING):
        assert resolve_pairs(pairs, models, skipped=skipped) == [tuple(models)]
    (warning,) = caplog.messages
    assert "2 comparison_pairs entries" in warning and "2 ('phi3:mini'), 3 ('a' and 'b')" in warning
    assert skipped == [f"skipped: {warning.split('skipped: ')[1].split(' (--strict')[0]}"]
    with pytest.raises(FinsentError, match=r"entries .*2 \('phi3:mini'\).*\(--strict\)"):
        resolve_pairs(pairs, models, strict=True)
    with pytest.raises(FinsentError, match="matches several model folders ignoring case"):
        resolve_pairs([["mx", "a"]], ["MX", "Mx", "a"])


def test_folders_differing_in_case_are_read_and_missing_ones_skipped(tmp_path, caplog):
    with pytest.raises(SentimentFileError, match="sentiments folder not found"):
        load_sentiments(tmp_path / "absent")
    write_model(tmp_path, "llama3_8b-q5_k_m", [[0.1, 0.2]])
    write_model(tmp_path, "b", [[0.3, 0.4]])
    config = ["llama3:8b-q5_K_M", "b", "gone:7b", "B"]
    with caplog.at_level(logging.WARNING):
        data = load_sentiments(tmp_path, config)
    assert data.models == ["llama3_8b-q5_k_m", "b"] and data.missing_models == ["gone_7b"]
    assert [m for m in caplog.messages if "no folder" in m] == [
        f"skipped: no folder in {tmp_path} for 1 model(s) of models_to_test: gone_7b (--strict makes this an error)"]
    assert data.skipped[0].startswith("skipped: no folder")
    with pytest.raises(SentimentFileError, match=r"1 model\(s\) of models_to_test: gone_7b \(--strict\)"):
        load_sentiments(tmp_path, config, strict=True)
    with pytest.raises(SentimentFileError, match="no folder .* for 2 model"):
        load_sentiments(tmp_path, ["x", "y"])  # nothing at all to report on


def test_corrupt_and_empty_files_are_skipped_with_counts(tmp_path, caplog):
    write_model(tmp_path, "a", [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    iteration_file_path(tmp_path, "a", "MSFT", 1).write_text('{"sentiments": {"x": ')
    iteration_file_path(tmp_path, "a", "MSFT", 2).write_text('{"sentiments": {}}')
    with caplog.at_level(logging.WARNING):
        data = load_sentiments(tmp_path)
    assert list(data.files["iteration"]) == [0]
    assert len(data.answers) == 2
    assert "skipped 1 corrupt file(s)" in caplog.text and "skipped 1 empty iteration(s)" in caplog.text
    assert any("MSFT_1.json: not valid JSON" in line for line in data.skipped)
    with pytest.raises(SentimentFileError, match="MSFT_1.json: not valid JSON"):
        read_iteration_file(iteration_file_path(tmp_path, "a", "MSFT", 1))


def test_model_without_valid_answer_is_kept_and_named(tmp_path, caplog):
    write_model(tmp_path, "good", [[0.1, 0.2]])
    write_model(tmp_path, "bad", [[None, None], [None, None]])
    with caplog.at_level(logging.WARNING):
        data = load_sentiments(tmp_path)
    assert data.models_without_valid == ["bad"]
    assert "model 'bad': no valid answer" in caplog.text
    assert data.answers.query("model == 'bad'")["valid"].sum() == 0


def test_answer_marked_valid_without_numbers_counts_as_invalid(tmp_path):
    write_model(tmp_path, "a", [[0.1, 0.2]])
    path = iteration_file_path(tmp_path, "a", "MSFT", 0)
    path.write_text(path.read_text().replace('"sentiment": 0.1', '"sentiment": "high"'))
    data = load_sentiments(tmp_path)
    assert data.answers["valid"].tolist() == [False, True]
    assert any("marked valid without a sentiment" in line for line in data.skipped)
