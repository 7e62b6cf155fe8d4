#!/usr/bin/env python3
"""A `llama-server` command line served on the CPUs by xllamacpp (llama.cpp's own server, in this
process): what benchmarks/llama_server.sh starts when its SERVER is this file, so that the scripts that
start, spread requests over and stop several llama-servers are tested without a GPU or a build.

    python tests/cpu_llama_server.py -m GGUF --alias finsent -ngl 99 --parallel 2 -c 8192 \
        --cache-reuse 256 --host 127.0.0.1 --port 8080 [--metrics] [--chat-template gemma] \
        [--top-k N] [--samplers 'a;b'] [--backend-sampling] [-t THREADS]

It takes the flags llama_server.sh and benchmarks/gpu_eval.py pass, with llama-server's meanings
(-ngl is accepted and ignored: there is no GPU; --chat-template gemma, llama3 or phi3 is
utils.chat_templates' jinja of that family, anything else a jinja text), refuses any other flag, and
serves until SIGTERM or SIGINT.
"""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: import this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.chat_templates import family_record  # noqa: E402

# llama-server's built-in chat template names, as utils.chat_templates' families (the same jinja)
BUILT_IN_TEMPLATES = {"gemma": "gemma-3", "llama3": "llama-3", "phi3": "phi-3"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", required=True)
    parser.add_argument("--alias")
    parser.add_argument("-ngl", "--n-gpu-layers", type=int)
    parser.add_argument("-np", "--parallel", type=int, default=1)
    parser.add_argument("-c", "--ctx-size", type=int, default=4096)
    parser.add_argument("--cache-reuse", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--metrics", action="store_true")
    parser.add_argument("--chat-template")
    parser.add_argument("--top-k", type=int)
    parser.add_argument("--samplers")
    parser.add_argument("-bs", "--backend-sampling", action="store_true")
    parser.add_argument("-t", "--threads", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.n_parallel = args.parallel
    params.n_ctx = args.ctx_size
    params.n_cache_reuse = args.cache_reuse
    params.cache_prompt = True
    params.endpoint_metrics = args.metrics
    params.port = args.port
    params.hostnames = [args.host]
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = args.threads
    if args.alias:
        params.model_alias = {args.alias}
    if args.chat_template:
        built_in = BUILT_IN_TEMPLATES.get(args.chat_template)
        params.chat_template = family_record(built_in).jinja if built_in else args.chat_template
    if args.top_k is not None:
        params.sampling.top_k = args.top_k
    if args.samplers:
        params.sampling.samplers = args.samplers
    params.sampling.backend_sampling = args.backend_sampling
    stop = (signal.SIGTERM, signal.SIGINT)
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # the server's threads inherit the mask: this one waits
    server = xllamacpp.Server(params)
    signal.sigwait(stop)
    del server  # llama.cpp's server stops in its destructor
    return 0


if __name__ == "__main__":
    sys.exit(main())
