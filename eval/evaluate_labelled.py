"""Run a model on labelled data and report how often it is right: valid-JSON rate, accuracy,
macro-F1 and weighted F1 on three classes (threshold t chosen on the validation split, and
t = 0.15), the confusion matrix, MAE and Spearman against the labels, the sentiment's distinct
values, and how many reasonings invent a fact (annotators, agreement, a percentage the text does
not hold) or share no content word with the text; with --expected-sentiment, the same scores of
the sentiment read from the model's token probabilities (its expected value) beside them. Writes
predictions.csv, metrics.json, metrics.xlsx and confusion_matrix.png to --output.

Input: step 05's ShareGPT test JSONL (or its folder), Financial PhraseBank (its folder or a
Sentences_*.txt), or any CSV/JSONL (--text-column, --label-column, --label-map).
Model: the embedded Gemma 3 270M by default; --gguf PATH for another GGUF on the embedded
engine; --model NAME for an Ollama model, or --model '{backend: openai, model: M, base_urls: [URL]}'."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from eval.backends import make_backend, model_entry_from_cli, parse_model_entry
from eval.expected_sentiment import TOP_LOGPROBS
from eval.labelled import (evaluate, load_labelled, prediction_cache_key, run_predictions, time_of_the_asking,
                           write_outputs)
from finsent.cli import config_from_args
from utils.chat_templates import FAMILIES, family_record
from utils.cli import stage_parser
from utils.errors import cli_entry
from utils.io import check_writable
from utils.labels import DEFAULT_LABEL_THRESHOLD
from utils.phrasebank_files import AGREEMENTS


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = stage_parser(__doc__)
    parser.add_argument("--input", required=True, help="labelled data: file or folder")
    parser.add_argument("--output", required=True, help="folder for predictions and metrics")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--model", help="Ollama model name, or a YAML mapping as in models_to_test")
    model.add_argument("--gguf", help="GGUF file to run on the embedded llama.cpp engine")
    parser.add_argument("--chat-template", choices=sorted(FAMILIES),
                        help="--gguf: chat format family, for a GGUF that stores no template")
    parser.add_argument("--name", help="model name in the outputs (default: model or GGUF file name)")
    parser.add_argument("--prompt", choices=["few-shot", "trained"], default="few-shot",
                        help="few-shot: instructions with 5 examples; trained: system prompt + bare text, "
                             "what the fine-tunes were trained on")
    parser.add_argument("--structured", action=argparse.BooleanOptionalAction, default=None,
                        help="constrain answers to the JSON schema (default: on for the embedded base "
                             "model, else eval.structured)")
    parser.add_argument("--source", help="step 05 input: only rows of this source (tweets, financial_phrasebank, news)")
    parser.add_argument("--text-column", default="text", help="CSV/JSONL: column with the text")
    parser.add_argument("--label-column", default="label", help="CSV/JSONL: column with the label")
    parser.add_argument("--label-map", help="e.g. bearish=negative,bullish=positive or 0=negative,1=positive,2=neutral")
    parser.add_argument("--fpb-agreement", choices=AGREEMENTS, default="50Agree",
                        help="Financial PhraseBank folder: which agreement level's file")
    parser.add_argument("--validation", help="validation file for choosing t (default: step 05's "
                                             "validation.jsonl, else a held-out part of the input)")
    parser.add_argument("--validation-fraction", type=float, default=0.2,
                        help="share of the input held out for t when there is no validation file")
    parser.add_argument("--limit", type=int, help="evaluate at most N rows (seeded sample); also caps validation")
    parser.add_argument("--validation-limit", type=int, help="validation rows at most (default: --limit)")
    parser.add_argument("--parallel", type=int, help="requests in flight (default: eval.parallel_requests)")
    parser.add_argument("--max-tokens", type=int, help="answer length cap (default: eval.num_tokens_to_predict)")
    parser.add_argument("--num-ctx", type=int, help="context per request, tokens (default: eval.context_window_size)")
    parser.add_argument("--threads", type=int,
                        help="embedded llama.cpp engine: CPU threads (default: every core), to leave some to other work")
    parser.add_argument("--expected-sentiment", action="store_true",
                        help="also read the sentiment from the token probabilities (llamacpp, or openai against "
                             "llama.cpp's server): its expected value, scored beside the generated number")
    parser.add_argument("--seed", type=int, default=42, help="sampling of rows and of the held-out split")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _expected_summary(block: dict) -> str:
    if not block["available"]:
        return f"expected sentiment: absent ({block['reason']})"
    best, validation = block["at_chosen_threshold"], block["validation_macro_f1"]
    verdict = {True: "wins", False: "does not win", None: "no validation to judge"}[block["wins_on_validation"]]
    return (f"expected sentiment ({block['rows']} answers, certainty {_number(block['mean_certainty'])}): "
            f"t = {block['threshold_chosen']:.2f}: macro-F1 {best['macro_f1']:.3f}, weighted F1 "
            f"{best['weighted_f1']:.3f}; t = {DEFAULT_LABEL_THRESHOLD:.2f}: weighted F1 "
            f"{block['at_0.15']['weighted_f1']:.3f}; validation macro-F1 {_number(validation['expected'])} vs "
            f"{_number(validation['generated'])} generated: {verdict}")


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = config_from_args(args, {"eval.parallel_requests": args.parallel}).eval
    structured = args.structured
    if structured is None and not (args.model or args.gguf):
        structured = True  # free, the base model rarely closes its JSON: 0% valid, a minute a row
        print("the embedded base model: schema-constrained decoding (--structured) unless --no-structured")
    entry = model_entry_from_cli(args.model, args.gguf, name=args.name, prompt=args.prompt,
                                 structured=structured, max_tokens=args.max_tokens, num_ctx=args.num_ctx,
                                 threads=args.threads,
                                 chat_template=family_record(args.chat_template).jinja if args.chat_template else None)
    spec = parse_model_entry(entry, 1, config)
    output = check_writable(args.output, folder=True)  # before the model loads
    data = load_labelled(args.input, text_column=args.text_column, label_column=args.label_column,
                         label_map=args.label_map, source=args.source, fpb_agreement=args.fpb_agreement,
                         validation=args.validation, validation_fraction=args.validation_fraction,
                         limit=args.limit, validation_limit=args.validation_limit, seed=args.seed)
    print(f"{spec.folder} ({spec.backend}, {spec.prompt}, {spec.mode}): {len(data.test)} test rows from "
          f"{data.description}, {len(data.validation)} validation rows ({data.validation_description})")
    backend = make_backend(spec, config)
    started = time.monotonic()
    try:
        predictions = run_predictions(backend, data, output / "predictions.cache.jsonl",
                                      prediction_cache_key(spec), backend.parallel,
                                      not args.no_progress, TOP_LOGPROBS if args.expected_sentiment else None)
    finally:
        backend.close()
    seconds = time.monotonic() - started
    metrics = evaluate(predictions, spec, data, seconds)
    time_of_the_asking(metrics, predictions, seconds, output / "metrics.json")
    paths = write_outputs(output, predictions, metrics)
    best, base = metrics["at_chosen_threshold"], metrics["at_0.15"]
    # the clause at 0.15 only when t is another: "t = 0.15: ...; t = 0.15: ..." said it twice
    at_default = (f"t = {DEFAULT_LABEL_THRESHOLD:.2f}: weighted F1 {base['weighted_f1']:.3f}; "
                  if abs(metrics["threshold_chosen"] - DEFAULT_LABEL_THRESHOLD) > 1e-9 else "")
    print(f"valid JSON {metrics['valid_json_rate']:.1%}; t = {metrics['threshold_chosen']:.2f}: "
          f"accuracy {best['accuracy']:.3f}, macro-F1 {best['macro_f1']:.3f}, weighted F1 {best['weighted_f1']:.3f}; "
          f"{at_default}MAE {_number(metrics['mae'])}, Spearman {_number(metrics['spearman'])}")
    print(f"sentiment: {metrics['sentiment_distinct_values']} distinct values; reasoning: "
          f"invented {_number(metrics['reasoning_invented_share'])}, grounded {_number(metrics['reasoning_grounded_share'])}")
    if "expected_sentiment" in metrics:
        print(_expected_summary(metrics["expected_sentiment"]))
    if metrics["valid_json_rate"] < 0.5:
        retry = ("--structured (decoding constrained to the answer's schema)" if not spec.structured
                 else f"--max-tokens {2 * args.max_tokens} (an answer cut at the cap is invalid)")
        print(f"warning: only {metrics['valid_json_rate']:.0%} of the answers are valid JSON, and the scores "
              f"count the others as wrong: try {retry}")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
