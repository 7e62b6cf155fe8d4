"""A uniform (or weighted) "model soup" (Wortsman et al. 2022): the weights of several full
fine-tunes of one base model, averaged tensor by tensor into one HF folder that export_gguf.py
exports like a merged run.

Checked before anything is written: every folder holds a config.json and safetensors weights, the
configs agree on the architecture, the tensors agree on names, shapes and dtypes. Floating-point
tensors are averaged in float32 and stored in the inputs' dtype; other tensors must be equal.
Memory: one tensor of each input at a time plus one output shard; the output is sharded as the
first input is (model-0000x-of-0000y.safetensors and its index), so an 8B fine-tune saved in
shards never needs more than a shard in memory; a single-file input is written as one file.
"""
from __future__ import annotations

import logging
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from utils.errors import FinsentError
from utils.io import atomic_dir, atomic_write_json, check_writable, read_json

log = logging.getLogger(__name__)

SINGLE_FILE = "model.safetensors"
SHARD_INDEX = "model.safetensors.index.json"
SOUP_RECORD = "soup.json"
FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}  # safetensors' names: the ones averaged
# The config values that fix every tensor's shape: fine-tunes of one base agree on all of them.
ARCHITECTURE_KEYS = ("model_type", "architectures", "hidden_size", "intermediate_size", "num_hidden_layers",
                     "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size", "tie_word_embeddings")


@contextmanager
def open_safetensors(path: Path):
    """safe_open, with a damaged or cut-short file a one-line error naming it."""
    try:
        with safe_open(path, framework="pt") as handle:
            yield handle
    except SafetensorError as exc:
        raise FinsentError(f"{path}: not a readable safetensors file ({exc})") from None


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class ModelFolder:
    """An HF model folder's config and where each of its tensors lies (which safetensors file)."""
    path: Path
    config: dict
    shards: dict[str, str]  # tensor name → file name in `path`

    @classmethod
    def read(cls, path: Path) -> "ModelFolder":
        if not path.is_dir():
            raise FinsentError(f"{path}: model folder not found")
        config_path = path / "config.json"
        if not config_path.is_file():
            raise FinsentError(f"{path}: no config.json (not an HF model folder)")
        config = read_json(config_path)
        if (path / SHARD_INDEX).is_file():
            shards = read_json(path / SHARD_INDEX).get("weight_map") or {}
        elif (path / SINGLE_FILE).is_file():
            with open_safetensors(path / SINGLE_FILE) as handle:
                shards = {name: SINGLE_FILE for name in handle.keys()}
        else:
            raise FinsentError(f"{path}: no {SINGLE_FILE} or {SHARD_INDEX} (a merged full fine-tune saves one)")
        if not shards:
            raise FinsentError(f"{path}: holds no tensors")
        return cls(path, config, shards)

    def tensor_infos(self) -> dict[str, TensorInfo]:
        """Names, shapes and dtypes from the safetensors headers (no tensor is read)."""
        infos = {}
        for file_name in sorted(set(self.shards.values())):
            with open_safetensors(self.path / file_name) as handle:
                for name in handle.keys():
                    view = handle.get_slice(name)
                    infos[name] = TensorInfo(tuple(view.get_shape()), view.get_dtype())
        return infos

    def architecture(self) -> dict:
        """ARCHITECTURE_KEYS of the config, and of its text_config where a model nests one."""
        sections = {"": self.config, "text_config.": self.config.get("text_config") or {}}
        return {prefix + key: section.get(key) for prefix, section in sections.items() for key in ARCHITECTURE_KEYS}


def soup_weights(text: str | None, count: int) -> list[float]:
    """--weights (comma-separated, one positive number per model; default equal) normalised to sum 1."""
    if text is None:
        return [1 / count] * count
    parts = [part.strip() for part in text.split(",")]
    try:
        values = [float(part) for part in parts]
    except ValueError:
        raise FinsentError(f"--weights {text!r}: expected comma-separated numbers") from None
    if len(values) != count:
        raise FinsentError(f"--weights {text!r}: {len(values)} weight(s) for {count} models (one per --model)")
    if not all(0 < value < float("inf") for value in values):
        raise FinsentError(f"--weights {text!r}: every weight must be a positive number")
    return [value / sum(values) for value in values]


def check_compatible(models: list[ModelFolder]) -> dict[str, TensorInfo]:
    """The first model's tensors, once every other model has the same architecture and tensors."""
    first = models[0]
    reference = first.architecture()
    tensors = first.tensor_infos()
    for model in models[1:]:
        for key, value in model.architecture().items():
            if value != reference[key]:
                raise FinsentError(f"{model.path}/config.json: {key} is {value!r} where {first.path} has "
                                   f"{reference[key]!r}: average fine-tunes of one base model")
        other = model.tensor_infos()
        for name in sorted(tensors.keys() ^ other.keys()):
            where, missing_from = (first.path, model.path) if name in tensors else (model.path, first.path)
            raise FinsentError(f"{model.path}: tensor {name} is in {where} but not in {missing_from}")
        for name, info in tensors.items():
            if other[name] != info:
                raise FinsentError(f"{model.path}: tensor {name} is {other[name].dtype} {list(other[name].shape)} "
                                   f"where {first.path} has {info.dtype} {list(info.shape)}")
    return tensors


def average_tensor(name: str, models: list[ModelFolder], weights: list[float]) -> torch.Tensor:
    """One tensor of every model: the weighted mean (in float32) of floating-point tensors; other
    tensors (integer buffers) must be equal."""
    tensors = []
    for model in models:
        with open_safetensors(model.path / model.shards[name]) as handle:
            tensors.append(handle.get_tensor(name))
    first = tensors[0]
    if not first.is_floating_point():
        for model, tensor in zip(models[1:], tensors[1:]):
            if not torch.equal(tensor, first):
                raise FinsentError(f"{model.path}: tensor {name} ({first.dtype}, not averaged) differs from "
                                   f"{models[0].path}'s")
        return first
    mean = torch.zeros(first.shape, dtype=torch.float32)
    for weight, tensor in zip(weights, tensors):
        mean.add_(tensor.to(torch.float32), alpha=weight)
    return mean.to(first.dtype)


def copy_model_files(source: Path, target: Path) -> list[str]:
    """Everything of `source` but its weights (config, generation config, tokenizer files, chat
    template, SentencePiece model): what export and transformers read besides the tensors."""
    copied = []
    for path in sorted(source.iterdir()):
        if path.is_file() and not path.name.endswith(".safetensors") and path.name not in (SHARD_INDEX, SOUP_RECORD):
            shutil.copy2(path, target / path.name)
            copied.append(path.name)
    return copied


def write_soup(models: list[ModelFolder], weights: list[float], tensors: dict[str, TensorInfo], target: Path,
               progress: bool) -> None:
    """The averaged tensors, in the first model's files (and its shard index), into `target`."""
    first = models[0]
    by_file: dict[str, list[str]] = {}
    for name in tensors:
        by_file.setdefault(first.shards[name], []).append(name)
    with tqdm(total=len(tensors), desc="averaging", unit="tensor", disable=not progress) as bar:
        for file_name, names in sorted(by_file.items()):
            with open_safetensors(first.path / file_name) as handle:
                metadata = handle.metadata()
            shard = {}
            for name in names:
                shard[name] = average_tensor(name, models, weights)
                bar.update()
            save_file(shard, target / file_name, metadata=metadata)
    if (first.path / SHARD_INDEX).is_file():
        shutil.copy2(first.path / SHARD_INDEX, target / SHARD_INDEX)  # same names, shapes and dtypes: same index


def average_models(model_dirs: list[Path], output: Path, weights: list[float] | None = None,
                   overwrite: bool = False, progress: bool = True) -> dict:
    """Average `model_dirs` (weights: one per model, summing to 1; default equal) into `output`,
    written atomically; returns the record also saved as output/soup.json."""
    if len(model_dirs) < 2:
        raise FinsentError(f"{len(model_dirs)} model folder(s): a soup averages at least two (--model DIR each)")
    weights = weights or soup_weights(None, len(model_dirs))
    if output.exists() and not overwrite:
        raise FinsentError(f"output folder {output} exists: pass --overwrite to replace it")
    for model_dir in model_dirs:
        if model_dir.resolve() == output.resolve():
            raise FinsentError(f"--output {output} is one of the folders being averaged: name another folder")
    check_writable(output.parent, folder=True)  # before the models are read
    models = [ModelFolder.read(model_dir) for model_dir in model_dirs]
    tensors = check_compatible(models)
    log.info("averaging %d tensors of %d models (weights %s) into %s", len(tensors), len(models),
             ", ".join(f"{weight:.4g}" for weight in weights), output)
    record = {"models": [str(model.path.resolve()) for model in models], "weights": weights,
              "tensors": len(tensors),
              "averaged": sum(1 for info in tensors.values() if info.dtype in FLOAT_DTYPES),
              "dtypes": sorted({info.dtype for info in tensors.values()})}
    with atomic_dir(output) as partial:
        record["copied_from_first"] = copy_model_files(models[0].path, partial)
        write_soup(models, weights, tensors, partial, progress)
        atomic_write_json(partial / SOUP_RECORD, record, indent=2)
    return record

