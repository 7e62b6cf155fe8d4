"""The sentiments-folder reader: real reference files, and every kind of bad input."""
from __future__ import annotations

import logging

import pytest

from eval.sentiment_files import (SentimentFileError, iteration_file_path, load_sentiments,
                                  model_folder_name, read_iteration_file, resolve_pairs)
from tests.reports_data import write_model
from utils.config import load_config
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


def test_pairs_match_ignoring_case_and_unmatched_is_named():
    models = ["llama3_8b-instruct-q4_K_M", "Mistral-7B.Q8"]
    assert resolve_pairs([["llama3:8b-instruct-Q4_K_M", "mistral-7b.q8"]], models) == \
        [("llama3_8b-instruct-q4_K_M", "Mistral-7B.Q8")]
    with pytest.raises(FinsentError, match=r"entry 2: 'phi3:mini' matches no model folder"):
        resolve_pairs([[models[0], models[1]], ["phi3:mini", models[0]]], models)


def test_missing_folders_are_one_line_errors(tmp_path):
    with pytest.raises(SentimentFileError, match="sentiments folder not found"):
        load_sentiments(tmp_path / "absent")
    write_model(tmp_path, "a", [[0.1, 0.2]])
    with pytest.raises(SentimentFileError, match=r"model 'b': folder not found"):
        load_sentiments(tmp_path, ["a", "b"])


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
