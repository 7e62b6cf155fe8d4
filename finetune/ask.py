"""Ask a model about financial texts: its answer streams token by token as it is generated, then
the validated {reasoning, sentiment, confidence} and the label at dataset.label_threshold.

  python finetune/ask.py --gguf outputs/finetune/gguf/gemma-3-270m-finsent-q4_k_m.gguf "Profit rose 20%."
  python finetune/ask.py --hf outputs/finetune/merged --json < headlines.txt
  python finetune/ask.py --model '{backend: openai, model: M, base_urls: [http://127.0.0.1:8080/v1]}' "..."
  python -m finetune.ask serve --gguf FILE --port 8080   # the embedded engine on a local port

Texts come from the arguments, else one per line from stdin. No model flag: the embedded base
Gemma 3 270M. The GGUF and server paths need no fine-tune extras; --hf needs them."""
from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout, not an installed copy
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from eval.backends import model_entry_from_cli, parse_model_entry
from finetune.answer_stream import HFStream, ask, backend_stream, serve, texts_from
from utils.chat_templates import FAMILIES, family_record
from finsent.cli import config_from_args
from utils.cli import stage_parser
from utils.engine import EngineSettings
from utils.errors import FinsentError, cli_entry


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = stage_parser(__doc__)
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to ask about (default: stdin's lines)")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--gguf", help="GGUF file, run on the embedded llama.cpp engine")
    model.add_argument("--hf", help="HF model folder (transformers; needs the fine-tune extras)")
    model.add_argument("--model", help="Ollama model name, or a YAML mapping as in models_to_test")
    parser.add_argument("--chat-template", choices=sorted(FAMILIES),
                        help="--gguf: chat format family, for a GGUF that stores no template")
    parser.add_argument("--prompt", choices=["few-shot", "trained"],
                        help="trained: system prompt + bare text (what fine-tunes were trained on; default for "
                             "--gguf and --hf); few-shot: instructions with 5 examples (default otherwise)")
    parser.add_argument("--structured", action=argparse.BooleanOptionalAction, default=None,
                        help="constrain the answer to the JSON schema (default: on for the embedded base model)")
    parser.add_argument("--threshold", type=float, help="label threshold t (dataset.label_threshold)")
    parser.add_argument("--max-tokens", type=int, default=256, help="answer length cap")
    parser.add_argument("--temperature", type=float, help="sampling temperature (eval.default_temperature)")
    parser.add_argument("--threads", type=int, help="embedded engine: CPU threads (default: every core)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON line per text (text, valid, label, sentiment, confidence, reasoning, "
                             "error, raw); the tokens are not shown")
    return parser.parse_args(argv)


def serve_main(argv: list[str]) -> int:
    parser = stage_parser("Serve a GGUF on a local port with the embedded llama.cpp engine (OpenAI-compatible "
                          "API at http://127.0.0.1:PORT/v1), until Ctrl-C.")
    parser.add_argument("--gguf", help="GGUF file (default: the embedded Gemma 3 270M)")
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1")
    parser.add_argument("--name", help="the model's name in /v1/models (default: the GGUF file's stem)")
    parser.add_argument("--chat-template", choices=sorted(FAMILIES),
                        help="chat format family, for a GGUF that stores no template")
    parser.add_argument("--parallel", type=int, default=4, help="requests decoded together (slots)")
    parser.add_argument("--num-ctx", type=int, default=2048, help="context per slot (tokens)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: every core)")
    args = parser.parse_args(argv)
    gguf = Path(args.gguf) if args.gguf else None
    if gguf is not None and not gguf.is_file():
        raise FinsentError(f"--gguf {gguf}: file not found")
    from utils.engine import DEFAULT_MODEL_NAME

    settings = EngineSettings(gguf_path=gguf, n_parallel=args.parallel, n_ctx=args.num_ctx * args.parallel,
                              n_threads=args.threads, port=args.port,
                              model_alias=args.name or (gguf.stem if gguf else DEFAULT_MODEL_NAME),
                              chat_template=family_record(args.chat_template).jinja if args.chat_template else None)
    serve(settings, ready=lambda line: print(line, flush=True))
    return 0


@cli_entry
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return serve_main(argv[1:])
    args = parse_args(argv)
    config = config_from_args(args, {"dataset.label_threshold": args.threshold,
                                     "eval.default_temperature": args.temperature})
    texts = texts_from(args.texts, sys.stdin)
    prompt = args.prompt or ("trained" if args.gguf or args.hf else "few-shot")
    structured = args.structured if args.structured is not None else not (args.model or args.gguf or args.hf)
    entry = model_entry_from_cli(args.model, args.gguf, prompt=prompt, structured=structured,
                                 max_tokens=args.max_tokens, threads=args.threads,
                                 chat_template=family_record(args.chat_template).jinja if args.chat_template else None)
    spec = parse_model_entry(entry, 1, config.eval)
    with ExitStack() as stack:
        if args.hf:
            if args.structured:
                raise FinsentError("--structured: not available with --hf (transformers decodes freely)")
            stream = HFStream(Path(args.hf), args.max_tokens, spec.temperature)
        else:
            stream = backend_stream(spec, config.eval, stack)
        for text in texts:
            if not args.json:
                print(f"> {text}", flush=True)
            echo = (lambda piece: None) if args.json else (lambda piece: print(piece, end="", flush=True))
            answer = ask(stream, spec.messages(text), text, config.dataset.label_threshold, echo)
            print(json.dumps(answer.record(), ensure_ascii=False) if args.json else f"\n{answer.summary()}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
