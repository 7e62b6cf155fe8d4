"""finetune/average_models.py on tiny random Mistral models with the real tokenizer (the family
that builds and exports fastest on a CPU: averaging reads no family), saved in bf16 as a merged
full fine-tune is: the soup is the weighted mean of every tensor, loads, generates and exports like
a merged run; folders that do not belong together are one-line errors."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tests.conftest import run_script
from tests.finetune_fixtures import llama_cpp_vendor, load_family_tokenizer  # noqa: F401

COPIED = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
          "tokenizer.model")


def tensors_of(folder: Path) -> dict[str, torch.Tensor]:
    tensors = {}
    for path in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(path))
    return tensors


def as_bfloat16(folder: Path) -> Path:
    """The folder's weights stored in bf16, as train.py merges a full fine-tune."""
    weights = folder / "model.safetensors"
    with safe_open(weights, framework="pt") as handle:
        metadata = handle.metadata()
    save_file({name: tensor.to(torch.bfloat16) for name, tensor in load_file(weights).items()}, weights,
              metadata=metadata)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    (folder / "config.json").write_text(json.dumps({**config, "dtype": "bfloat16"}), encoding="utf-8")
    return folder


def reinitialised(model: Path, target: Path, seed: int, **config_changes) -> Path:
    """`model`'s tokenizer files and config (with `config_changes`) around new random weights:
    another seed's fine-tune of the same base or, with changes, a model of another size."""
    from transformers import AutoConfig, AutoModelForCausalLM

    shutil.copytree(model, target, ignore=shutil.ignore_patterns("*.safetensors*"))
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model, **config_changes)).save_pretrained(target)
    return target


@pytest.fixture(scope="module")
def fine_tunes(tmp_path_factory, llama_cpp_vendor) -> list[Path]:  # noqa: F811
    """Three tiny Mistral models of one architecture (seeds 1, 2, 3) standing in for seeded fine-tunes."""
    from finetune.random_models import save_random_model

    root = tmp_path_factory.mktemp("fine_tunes")
    first = save_random_model("mistral", root / "seed1" / "merged", llama_cpp_vendor, tiny=True,
                              tokenizer=load_family_tokenizer("mistral", llama_cpp_vendor), seed=1)
    others = [reinitialised(first, root / f"seed{seed}" / "merged", seed) for seed in (2, 3)]
    return [as_bfloat16(model) for model in (first, *others)]


@pytest.fixture(scope="module")
def soup(fine_tunes, tmp_path_factory) -> dict:
    output = tmp_path_factory.mktemp("soup") / "merged"
    args = [arg for model in fine_tunes for arg in ("--model", model)]
    result = run_script("finetune/average_models.py", *args, "--output", output, "--weights", "1,1,2", "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    return {"folder": output, "result": result}


def average_error(*args) -> str:
    """The one error line of a refused average (exit 2)."""
    result = run_script("finetune/average_models.py", *args, "--no-progress")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_every_tensor_is_the_weighted_mean_of_the_inputs_in_their_dtype(soup, fine_tunes):
    inputs = [tensors_of(model) for model in fine_tunes]
    averaged = tensors_of(soup["folder"])
    assert averaged.keys() == inputs[0].keys() and len(averaged) > 10
    for name, tensor in averaged.items():
        expected = (0.25 * inputs[0][name].float() + 0.25 * inputs[1][name].float() + 0.5 * inputs[2][name].float())
        assert tensor.dtype == torch.bfloat16 and tensor.shape == inputs[0][name].shape
        assert torch.allclose(tensor.float(), expected, atol=1e-2, rtol=1e-2), name
        if not torch.equal(inputs[0][name], inputs[2][name]):  # norms start at 1 in every seed
            assert not torch.equal(tensor, inputs[2][name]), name  # averaged, not copied
    for name in COPIED:
        assert (soup["folder"] / name).read_bytes() == (fine_tunes[0] / name).read_bytes(), name
    record = json.loads((soup["folder"] / "soup.json").read_text(encoding="utf-8"))
    assert record["models"] == [str(model.resolve()) for model in fine_tunes]
    assert record["weights"] == [0.25, 0.25, 0.5] and record["tensors"] == len(averaged) == record["averaged"]
    assert [path.name for path in soup["folder"].parent.iterdir()] == ["merged"]  # no temporary folder left


def test_the_soup_loads_generates_and_exports_like_a_merged_run(soup, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from finetune.gguf_export import TrainedRun

    model = AutoModelForCausalLM.from_pretrained(soup["folder"])
    tokenizer = AutoTokenizer.from_pretrained(soup["folder"])
    prompt = tokenizer("Operating profit rose", return_tensors="pt")
    generated = model.generate(**prompt, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] == prompt["input_ids"].shape[1] + 3
    assert TrainedRun.read(soup["folder"]).family == "mistral"  # from the chat template: no run summary beside it

    export = run_script("finetune/export_gguf.py", "--model", soup["folder"], "--gguf-dir", tmp_path, "--name", "soup",
                        "--family", "mistral", "--quants", "f16")
    assert export.returncode == 0, export.stderr[-3000:]
    assert (tmp_path / "soup-f16.gguf").stat().st_size > 1e6


def test_sharded_inputs_give_a_soup_sharded_alike(fine_tunes, tmp_path):
    from transformers import AutoModelForCausalLM

    sharded = []
    for model in fine_tunes[:2]:
        folder = tmp_path / model.parent.name
        AutoModelForCausalLM.from_pretrained(model).save_pretrained(folder, max_shard_size="2MB")
        sharded.append(folder)
    assert len(list(sharded[0].glob("model-*-of-*.safetensors"))) > 1
    output = tmp_path / "soup"
    result = run_script("finetune/average_models.py", "--model", sharded[0], "--model", sharded[1],
                        "--output", output, "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    def files(folder: Path) -> list[str]:
        return sorted(path.name for path in folder.glob("*.safetensors"))

    assert files(output) == files(sharded[0])
    index = "model.safetensors.index.json"
    assert (output / index).read_text() == (sharded[0] / index).read_text()
    inputs = [tensors_of(folder) for folder in sharded]
    for name, tensor in tensors_of(output).items():
        assert torch.allclose(tensor.float(), (inputs[0][name].float() + inputs[1][name].float()) / 2, atol=1e-2), name


def test_folders_that_do_not_belong_together_are_one_line_errors(fine_tunes, tmp_path):
    first, second = fine_tunes[:2]
    output = tmp_path / "soup"
    smaller = reinitialised(first, tmp_path / "smaller", 4, hidden_size=32)
    message = average_error("--model", first, "--model", smaller, "--output", output)
    assert message == (f"error: {smaller}/config.json: hidden_size is 32 where {first} has 64: "
                       "average fine-tunes of one base model")

    missing = tmp_path / "no_such_run" / "merged"
    message = average_error("--model", first, "--model", missing, "--output", output)
    assert message == f"error: {missing}: model folder not found"

    # A tensor one model lacks (a fine-tune of another base saved otherwise): named with both folders.
    lacking = tmp_path / "lacking"
    lacking.mkdir()
    for path in second.iterdir():
        (lacking / path.name).write_bytes(path.read_bytes())
    tensors = load_file(lacking / "model.safetensors")
    dropped = sorted(tensors)[-1]
    save_file({name: t for name, t in tensors.items() if name != dropped}, lacking / "model.safetensors",
              metadata={"format": "pt"})
    message = average_error("--model", first, "--model", lacking, "--output", output)
    assert message == f"error: {lacking}: tensor {dropped} is in {first} but not in {lacking}"

    message = average_error("--model", first, "--model", second, "--output", output, "--weights", "1,2,3")
    assert "3 weight(s) for 2 models" in message
    assert "positive" in average_error("--model", first, "--model", second, "--output", output, "--weights", "1,-1")
    assert not output.exists()


def test_integer_tensors_must_be_equal_and_are_kept(tmp_path):
    folders = []
    for index, steps in enumerate((7, 8)):
        folder = tmp_path / f"m{index}"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": "toy", "hidden_size": 2}))
        save_file({"weight": torch.full((2,), float(index)), "steps": torch.tensor([steps])},
                  folder / "model.safetensors", metadata={"format": "pt"})
        folders.append(folder)
    message = average_error("--model", folders[0], "--model", folders[1], "--output", tmp_path / "soup")
    assert message == f"error: {folders[1]}: tensor steps (torch.int64, not averaged) differs from {folders[0]}'s"


def test_an_existing_output_is_refused_unless_overwrite(fine_tunes, tmp_path):
    output = tmp_path / "soup"
    output.mkdir()
    (output / "kept.txt").write_text("an earlier soup")
    models = ["--model", fine_tunes[0], "--model", fine_tunes[1], "--output", output]
    message = average_error(*models)
    assert message == f"error: output folder {output} exists: pass --overwrite to replace it"
    assert [p.name for p in output.iterdir()] == ["kept.txt"]

    result = run_script("finetune/average_models.py", *models, "--overwrite", "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (output / "kept.txt").exists() and (output / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["soup"]
