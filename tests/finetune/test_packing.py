"""`packing: true` never mixes documents: one packed batch has the loss and the gradients of the same
documents in an ordinary padded batch (`packing: false`), through the product's own path (config →
finetune.recipe.load_model → finetune.data.tokenized_dataset → finetune.trainer_setup.build_trainer →
TRL's packed dataset and collator → the Trainer's loss scaling, forward and backward), on a tiny random
Llama with the real Llama-3 tokenizer and real Financial PhraseBank rows, in fp32 on the CPU.

What makes it hold under `--backend hf`: TRL's best-fit-decreasing packing makes the collator padding-free
(the batch flattened into one row, `position_ids` restarting at 0 for every document, no attention mask,
the label of each document's first token dropped so no token is trained to predict the next document);
transformers' mask builder reads the document boundaries from those `position_ids` and gives sdpa (the
default attention, asserted below) a block-diagonal causal mask. A control feeds the same packed row with
an all-ones attention mask, i.e. attention across documents, and must differ: the comparison can fail.

`--backend unsloth` is not covered here, and cannot be on a CPU: Unsloth imports only where a CUDA (or
other accelerator) device is present, and its packing (unsloth/utils/packing.py: its own collator
wrapper, xFormers/FlashAttention varlen kernels from `packed_seq_lengths`, its own masks) exists only
after that import has patched transformers and TRL. What the two backends share, the tokenized rows and
the SFTConfig that build_trainer makes (the same `packing`, `max_length`, TRL's bfd strategy), is what
this module runs; the same comparison under Unsloth is left to a GPU session.
FlexAttention (`attn_implementation="flex_attention"`) is not covered either: torch 2.13 implements its
backward on CUDA only ("FlexAttention does not support backward on CPU").
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.finetune_fixtures import llama_cpp_vendor, sharegpt_splits, tiny_llama  # noqa: F401

MAX_SEQ_LENGTH = 640  # a packed row of two or three conversations (~200-250 tokens each)


def sft_trainer(model_folder: Path, train_file: Path, output: Path, packing: bool, full_finetune: bool):
    """The product's trainer for this config, as finetune/train.py builds it (on the CPU, fp32)."""
    from finetune.data import read_sharegpt, tokenized_dataset
    from finetune.recipe import Precision, load_model
    from finetune.run_layout import OutputLayout
    from finetune.settings import FinetuneConfig
    from finetune.trainer_setup import ThroughputCallback, build_trainer

    cfg = FinetuneConfig(backend="hf", base_model=str(model_folder), family="llama-3", train_file=train_file,
                         validation_file=None, output_dir=output, full_finetune=full_finetune, packing=packing,
                         max_seq_length=MAX_SEQ_LENGTH, batch_size=1, gradient_accumulation_steps=1,
                         lora_dropout=0.0, precision="fp32")
    precision = Precision(name="fp32", load_in_4bit=False)
    model, tokenizer = load_model(cfg, precision)
    rows = tokenized_dataset(read_sharegpt(train_file), tokenizer, cfg.family, cfg.max_seq_length)
    layout = OutputLayout(output)
    layout.root.mkdir(parents=True, exist_ok=True)
    return build_trainer(cfg, model, tokenizer, rows, None, precision, layout,
                         ThroughputCallback(1.0, None, layout.throughput_log), use_cpu=True)


def loss_and_gradients(trainer, batch: dict) -> tuple[float, dict]:
    """One training step's loss and gradients, scaled by the trainer as train() scales them."""
    import torch

    trainer.model.zero_grad(set_to_none=True)
    [inputs], items = trainer.get_batch_samples(iter([dict(batch)]), 1, torch.device("cpu"))
    loss = trainer.training_step(trainer.model, inputs, items)
    gradients = {name: parameter.grad.detach().clone() for name, parameter in trainer.model.named_parameters()
                 if parameter.grad is not None}
    trainer.model.zero_grad(set_to_none=True)
    return loss.item(), gradients


def documents_of(packed_row: dict) -> list[list[int]]:
    ids, start, documents = packed_row["input_ids"], 0, []
    for length in packed_row["seq_lengths"]:
        documents.append(ids[start:start + length])
        start += length
    return documents


def largest_relative_difference(gradients: dict, expected: dict) -> float:
    """The largest gap between two sets of gradients, per parameter relative to its largest expected
    gradient (LoRA's A matrices get none while B starts at 0: 0 for both)."""
    assert gradients.keys() == expected.keys() and any(g.abs().max() > 0 for g in expected.values())
    return max(((gradients[name] - grad).abs().max() / grad.abs().max().clamp(min=1e-30)).item()
               for name, grad in expected.items())


@pytest.mark.slow
@pytest.mark.parametrize("full_finetune", [True, False], ids=["full-finetune", "lora"])
def test_packed_batch_has_the_loss_and_gradients_of_its_documents_unpacked(
        tmp_path, tiny_llama, sharegpt_splits, full_finetune):  # noqa: F811
    import torch

    packed_trainer = sft_trainer(tiny_llama, sharegpt_splits["train"], tmp_path / "packed", True, full_finetune)
    assert packed_trainer.model.config._attn_implementation == "sdpa"  # what load_model gives on this machine
    packed_row = max(packed_trainer.train_dataset, key=lambda row: len(row["seq_lengths"]))
    documents = documents_of(packed_row)
    assert len(documents) >= 2 and sum(map(len, documents)) <= MAX_SEQ_LENGTH
    packed_batch = packed_trainer.data_collator([packed_row])
    assert "attention_mask" not in packed_batch  # padding-free: the boundaries are in the positions only
    starts = torch.cumsum(torch.tensor([0, *map(len, documents[:-1])]), 0)
    assert packed_batch["position_ids"][0, starts].tolist() == [0] * len(documents)

    unpacked_trainer = sft_trainer(tiny_llama, sharegpt_splits["train"], tmp_path / "unpacked", False, full_finetune)
    unpacked_trainer.model.load_state_dict(packed_trainer.model.state_dict())  # the same LoRA initialisation
    by_ids = {tuple(row["input_ids"]): row for row in unpacked_trainer.train_dataset}
    unpacked_batch = unpacked_trainer.data_collator([by_ids[tuple(document)] for document in documents])
    assert unpacked_batch["input_ids"].shape[0] == len(documents)  # one padded row per document

    packed_loss, packed_gradients = loss_and_gradients(packed_trainer, packed_batch)
    unpacked_loss, unpacked_gradients = loss_and_gradients(unpacked_trainer, unpacked_batch)
    assert packed_loss == pytest.approx(unpacked_loss, rel=1e-6)
    assert largest_relative_difference(packed_gradients, unpacked_gradients) < 1e-5  # fp32 rounding: ~3e-7

    # The control: the same packed row, its documents attending to the ones before them (~5-30% off).
    mixed_batch = {**packed_batch, "attention_mask": torch.ones_like(packed_batch["input_ids"])}
    mixed_loss, mixed_gradients = loss_and_gradients(packed_trainer, mixed_batch)
    assert mixed_loss != pytest.approx(unpacked_loss, rel=1e-6)
    assert largest_relative_difference(mixed_gradients, unpacked_gradients) > 1e-2
