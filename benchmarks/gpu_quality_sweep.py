"""Which fine-tune settings make Gemma 3 270M good at Financial PhraseBank? A sweep on one GPU.

Loads the base once from its GGUF, then for each named config trains a fresh copy (full
fine-tune, fp32 master weights under bf16 autocast, TRL's SFTTrainer, loss on the answer only,
step 05's ShareGPT splits rendered with the gemma-3 chat template as finetune/data.py does) and,
after every epoch, answers the FPB validation and test rows greedily with the trained prompt
(system + bare text), parses each answer as a SentimentResponse and scores three classes
(sentiment > 0.15 positive, < -0.15 negative, else neutral; an invalid answer counts as wrong).

Pick a config by its validation score, not its test score. This measures the bf16 model in
transformers, before GGUF export; benchmarks/gpu_quality.sh measures the exported quants.
Writes one JSON line per (config, epoch) to --output as it goes, so a cut-off run keeps what it did.
"""
from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

FPB = "financial_phrasebank"
# name: (sources and how many times each is repeated in the train split, learning rate, epochs)
CONFIGS: dict[str, dict] = {
    "mix_lr1e-4_e3": {"mix": {"tweets": 1, FPB: 1}, "lr": 1e-4, "epochs": 3},
    "fpb_lr1e-4_e6": {"mix": {FPB: 1}, "lr": 1e-4, "epochs": 6},
    "fpb_lr2e-4_e4": {"mix": {FPB: 1}, "lr": 2e-4, "epochs": 4},
    "mixfpb3_lr1e-4_e3": {"mix": {"tweets": 1, FPB: 3}, "lr": 1e-4, "epochs": 3},
    "fpb_lr5e-5_e8": {"mix": {FPB: 1}, "lr": 5e-5, "epochs": 8},
}
LABELS = ("negative", "neutral", "positive")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-gguf", type=Path, required=True, help="the base model's GGUF (Gemma 3 270M)")
    parser.add_argument("--tokenizer", type=Path, default=None,
                        help="a tokenizer folder for the base (default: read from the GGUF, slower)")
    parser.add_argument("--data-dir", type=Path, default=Path("data/sharegpt"), help="step 05's splits")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS),
                        help="configs to run, in this order")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-batch-size", type=int, default=128)
    parser.add_argument("--max-new-tokens", type=int, default=80)
    parser.add_argument("--deadline-s", type=float, default=540,
                        help="start no new config after this many seconds of the run")
    parser.add_argument("--output", type=Path, default=Path("quality_sweep.jsonl"))
    return parser.parse_args(argv)


def read_split(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def as_messages(record: dict) -> list[dict[str, str]]:
    from utils.sharegpt_format import ROLES

    return [{"role": ROLES[t["from"]], "content": t["value"]} for t in record["conversations"]]


def label_of(text: str) -> str:
    from utils.schema import ResponseParseError, parse_sentiment_response

    try:
        sentiment = parse_sentiment_response(text).sentiment
    except ResponseParseError:
        return "invalid"
    return "positive" if sentiment > 0.15 else "negative" if sentiment < -0.15 else "neutral"


def answer(model, tokenizer, records: list[dict], batch_size: int, max_new_tokens: int) -> list[str]:
    import torch
    from utils.chat_templates import family_record

    template = family_record("gemma-3").jinja
    prompts = [tokenizer.apply_chat_template(as_messages(r)[:2], chat_template=template, tokenize=False,
                                             add_generation_prompt=True) for r in records]
    tokenizer.padding_side = "left"
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    texts = []
    model.eval()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(model.device)
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                 eos_token_id=[end_of_turn, tokenizer.eos_token_id],
                                 pad_token_id=tokenizer.pad_token_id)
            texts += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    model.train()
    return texts


def scores(records: list[dict], texts: list[str]) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    truth = [r["label"] for r in records]
    predicted = [label_of(t) for t in texts]
    return {"n": len(truth), "weighted_f1": round(f1_score(truth, predicted, labels=list(LABELS), average="weighted"), 4),
            "macro_f1": round(f1_score(truth, predicted, labels=list(LABELS), average="macro"), 4),
            "accuracy": round(accuracy_score(truth, predicted), 4),
            "valid_json": round(sum(p != "invalid" for p in predicted) / len(predicted), 4)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from finetune.data import tokenized_dataset

    folder, name = str(args.base_gguf.parent), args.base_gguf.name
    tokenizer = (AutoTokenizer.from_pretrained(args.tokenizer) if args.tokenizer
                 else AutoTokenizer.from_pretrained(folder, gguf_file=name))
    cached = Path("/tmp/fg/base-fp32.pt")  # the dequantized base, for the next run on this machine
    if cached.is_file():
        base = torch.load(cached, weights_only=False)
    else:
        base = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        if cached.parent.is_dir():
            torch.save(base, cached)
    # transformers marks a GGUF-loaded model as quantized and refuses to train it: rebuild it
    # from its config and weights as a plain fp32 model (what finetune/prepare_base.py does).
    config = copy.deepcopy(base.config)
    config.__dict__.pop("quantization_config", None)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(base.state_dict())
    base = plain
    print(f"base loaded in {time.perf_counter() - started:.0f} s", flush=True)

    train = read_split(args.data_dir / "train.jsonl")
    val = [r for r in read_split(args.data_dir / "validation.jsonl") if r["source"] == FPB]
    test = [r for r in read_split(args.data_dir / "test.jsonl") if r["source"] == FPB]
    for config_name in args.configs:
        if time.perf_counter() - started > args.deadline_s:
            print(f"deadline: {config_name} not run", flush=True)
            continue
        config = CONFIGS[config_name]
        rows = [r for r in train for _ in range(config["mix"].get(r["source"], 0))]
        random.Random(0).shuffle(rows)
        dataset = tokenized_dataset([as_messages(r) for r in rows], tokenizer, "gemma-3")
        model = copy.deepcopy(base).to("cuda")
        t0 = time.perf_counter()

        class EpochEval(TrainerCallback):
            def on_epoch_end(self, _args, state, _control, **_kwargs):
                t = time.perf_counter()
                record = {"config": config_name, **config, "epoch": round(state.epoch, 2),
                          "train_rows": len(rows), "train_s": round(t - t0, 1),
                          "validation": scores(val, answer(model, tokenizer, val, args.eval_batch_size, args.max_new_tokens)),
                          "test": scores(test, answer(model, tokenizer, test, args.eval_batch_size, args.max_new_tokens)),
                          "eval_s": round(time.perf_counter() - t, 1)}
                with args.output.open("a") as out:
                    out.write(json.dumps(record) + "\n")
                print(json.dumps(record), flush=True)

        trainer = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=dataset, callbacks=[EpochEval()],
                             args=SFTConfig(
                                 output_dir=f"/tmp/sweep-{config_name}", num_train_epochs=config["epochs"],
                                 learning_rate=config["lr"], lr_scheduler_type="cosine", warmup_steps=0.03,
                                 weight_decay=0.01, per_device_train_batch_size=args.batch_size,
                                 bf16=True, save_strategy="no", report_to=[], logging_steps=50, seed=42,
                                 max_length=512, dataset_kwargs={"skip_prepare_dataset": True},
                                 remove_unused_columns=False, optim="adamw_torch_fused"))
        trainer.train()
        del trainer, model
        torch.cuda.empty_cache()
    print(f"sweep done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
