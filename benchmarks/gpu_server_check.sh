#!/usr/bin/env bash
# Checks a llama-server binary on the lent GPU machine before a quality run uses it (gpu_quality.sh's
# LLAMA_SERVER), and measures what it buys: the same rows scored by the embedded llama.cpp engine on
# the machine's CPUs (the baseline, measured in this run) and by the server with every layer on the
# GPU, through the openai backend. The workload is engine_slots.json's: the GGUF given (the fine-tuned
# q4_k_m: the base Gemma 3 270M q4_k_m gave 0% valid JSON on both engines at 96 tokens without a
# schema on 2026-12-01, so pass STRUCTURED=1 for a base model), the trained prompt, --max-tokens 96,
# ROWS FPB test rows + 10 validation rows, temperature 0, 16 slots. Prints rows/s of each and the
# ratio, and benchmarks/engine_agreement.py's comparison of the two engines' answers on the rows both
# answered with valid JSON; writes RESULT (JSON). Exit 0 only when the server holds GPU memory
# (nvidia-smi), each engine gave valid JSON on at least 90% of the rows and no row compared
# differs in class (t = 0.15).
#
#   bash benchmarks/gpu_server_check.sh SERVER GGUF TEST_JSONL RESULT
#
# Environment: ROWS (60), PARALLEL (16: the embedded engine's slots, and the server's unless the
# layout says otherwise), STRUCTURED (0; 1: the answer's JSON schema), WORK (/tmp/server_check); the
# server's layout (SERVERS, SERVER_SLOTS, SERVER_FLAGS): llama_server.sh's.
set -uo pipefail
case "${1:-}" in -h|--help|"") sed -n '2,/^set -uo/{/^#/p}' "$0"; [ -n "${1:-}" ]; exit $? ;; esac
server=$1; gguf=$2; test_rows=$3; result=$4
ROWS=${ROWS:-60}; PARALLEL=${PARALLEL:-16}; WORK=${WORK:-/tmp/server_check}
schema=--no-structured; [ "${STRUCTURED:-0}" = 1 ] && schema=--structured
[ -x "$server" ] || { echo "error: SERVER: not an executable: $server" >&2; exit 2; }
[ -f "$gguf" ] || { echo "error: GGUF: file not found: $gguf" >&2; exit 2; }
[ -f "$test_rows" ] || { echo "error: TEST_JSONL: file not found: $test_rows" >&2; exit 2; }
rm -rf "$WORK"; mkdir -p "$WORK"
score() {  # score NAME MODEL_FLAGS...: evaluate_labelled on the check's rows into WORK/NAME
  local name=$1; shift
  python eval/evaluate_labelled.py --output "$WORK/$name" "$@" --input "$test_rows" --source financial_phrasebank \
    --prompt trained "$schema" --limit "$ROWS" --validation-limit 10 --parallel "$PARALLEL" --num-ctx 4096 \
    --max-tokens 96 --no-progress --set eval.default_temperature=0 > "$WORK/$name.log" 2>&1
}
score cpu --gguf "$gguf" --chat-template gemma-3 || { tail -3 "$WORK/cpu.log" >&2; echo "error: the embedded engine failed ($WORK/cpu.log)" >&2; exit 1; }
# shellcheck source=benchmarks/llama_server.sh
. "$(dirname "$0")/llama_server.sh"
trap stop_llama_server EXIT
# The base GGUF stores no chat template: llama.cpp's built-in gemma one is the gemma-3 entry's.
start_llama_server "$server" "$gguf" "$WORK/server.log" --chat-template gemma
started=$?; grep -m2 -iE "cuda" "$WORK/server.log"
if [ ${#served_urls[@]} = 0 ] || ! kill -0 "${server_pids[@]}" 2>/dev/null; then
  echo "error: the server did not start ($WORK/server.log)" >&2; exit 1
fi
urls=$(printf "'%s', " "${served_urls[@]}")
score gpu --model "{backend: openai, model: finsent, base_urls: [${urls%, }], parallel: $served_slots}" --name gpu \
  || { tail -n 3 "$WORK/gpu.log" "$WORK/server.log" >&2; echo "error: the server failed ($WORK/gpu.log)" >&2; exit 1; }
python benchmarks/engine_agreement.py "$WORK/cpu" "$WORK/gpu" --output "$WORK/agreement.json"
agreed=$?
[ -f "$WORK/agreement.json" ] || { echo "error: the answers could not be compared" >&2; exit 1; }
python - "$WORK" "$result" "$started" "$ROWS" "$PARALLEL" "$schema" "${#served_urls[@]} × $served_slots" <<'EOF'
import json, sys, datetime, pathlib
work, result, on_gpu, rows, parallel, schema, layout = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "0", int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7]
m = {name: json.loads((work / name / "metrics.json").read_text()) for name in ("cpu", "gpu")}
out = {"benchmark": "llama_server_gpu_vs_embedded_cpu", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
       "what": f"{m['cpu'].get('gguf')}, trained prompt, {schema}, --max-tokens 96, {rows} FPB test rows + 10 validation rows, temperature 0, {parallel} engine slots",
       "server_on_gpu": on_gpu, "servers_x_slots": layout,
       "embedded_cpu_rows_per_s": round(m["cpu"]["rows_per_s"], 2), "server_gpu_rows_per_s": round(m["gpu"]["rows_per_s"], 2),
       "ratio": round(m["gpu"]["rows_per_s"] / m["cpu"]["rows_per_s"], 1), "test_rows": {name: m[name]["rows"] for name in m},
       "agreement": json.loads((work / "agreement.json").read_text())}
pathlib.Path(result).write_text(json.dumps(out, indent=1) + "\n")
print(f"embedded engine (CPUs) {out['embedded_cpu_rows_per_s']} rows/s; llama-server (GPU) {out['server_gpu_rows_per_s']} rows/s: {out['ratio']}×")
EOF
[ "$started" = 0 ] && [ "$agreed" = 0 ]
