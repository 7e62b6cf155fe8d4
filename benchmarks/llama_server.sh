#!/usr/bin/env bash
# llama.cpp's llama-server on one GGUF, every layer on the GPU, with the embedded engine's settings
# (4,096 tokens a slot, cached prompt prefixes reused): SERVERS processes of SERVER_SLOTS slots each,
# all on the one GPU, each its own port. The one place for the server's flags. Sourced by
# gpu_quality.sh and gpu_server_check.sh; run as a command by gpu_eval.py (serve, below).
#   start_llama_server SERVER GGUF LOG [SERVER_ARGS...]  starts them (the first logs to LOG, server i
#     to LOG less .log plus -i.log) and sets server_pids, served_urls (…/v1 each), served_url (the
#     first), served_slots (slots each: a client keeps served_slots requests in flight per URL, the
#     openai backend's `parallel`) and served_gpu ("pid, MiB" per server); returns 1, with a line
#     saying why on stderr, when one stops, is not healthy in 120 s, or holds no GPU memory
#   stop_llama_server  stops every one of them
#   bash benchmarks/llama_server.sh serve SERVER GGUF LOG URLS [SERVER_ARGS...]  starts them, writes
#     URLS (a line a server: url, pid, GPU memory; tab-separated) once all are healthy, and serves
#     until SIGTERM or one of them stops (exit 1), then stops them all
# Needs the repo root as the working directory (utils.engine.free_port). The layout, each setting
# by itself: the environment's SERVERS, SERVER_SLOTS, SERVER_FLAGS (more llama-server flags, split
# on spaces; set, even empty, it replaces the measured ones); else the winner that gpu_eval.py
# measured and recorded in benchmarks/results/gpu_eval.json (GPU_EVAL_RESULTS), the fastest layout
# whose answers agreed with the embedded engine's; else 1 server of PARALLEL slots (16 if unset),
# no more flags. One server is the safe default: it is the layout measured so far (9.5–12 FPB rows/s
# on an H200) and checked against the embedded engine (gpu_server_check.sh); each more server is
# another ~1.3 GiB of GPU memory (the weights and SERVER_SLOTS × 4,096 tokens of KV cache for Gemma 3
# 270M; ~5 GiB + 0.5 GiB a slot for an 8B model) and another CPU core busy in its main loop.
# SERVER_ON_GPU=0: no GPU-memory check (a CPU build, tests/cpu_llama_server.py).
# shellcheck disable=SC2034  # served_url and served_slots are the callers'
server_pids=(); served_urls=(); served_url=""; served_slots=""; served_gpu=()
llama_server_layout() {  # sets SERVERS, SERVER_SLOTS and server_flags (an array) as the header says
  local measured=()
  if [ -z "${SERVERS:-}" ] || [ -z "${SERVER_SLOTS:-}" ] || [ -z "${SERVER_FLAGS+set}" ]; then
    mapfile -t measured < <(python "$(dirname "${BASH_SOURCE[0]}")/gpu_eval.py" --print-winner \
      "${GPU_EVAL_RESULTS:-$(dirname "${BASH_SOURCE[0]}")/results/gpu_eval.json}")
  fi
  SERVERS=${SERVERS:-${measured[0]:-1}}; SERVER_SLOTS=${SERVER_SLOTS:-${measured[1]:-${PARALLEL:-16}}}
  if [ -n "${SERVER_FLAGS+set}" ]; then read -ra server_flags <<< "$SERVER_FLAGS"; else server_flags=("${measured[@]:2}"); fi
}
start_llama_server() {
  local server=$1 gguf=$2 log=$3 i port ports pid logs=(); shift 3
  llama_server_layout
  [[ "$SERVERS" =~ ^[1-9][0-9]*$ && "$SERVER_SLOTS" =~ ^[1-9][0-9]*$ ]] \
    || { echo "SERVERS and SERVER_SLOTS must be whole numbers ≥ 1 (got '$SERVERS', '$SERVER_SLOTS')" >&2; return 1; }
  # distinct ports (free_port closes its socket: a second call may give the same one back)
  read -ra ports <<< "$(python -c "from utils.engine import free_port
ports = set()
while len(ports) < $SERVERS: ports.add(free_port())
print(*ports)")"
  # shellcheck disable=SC2034
  server_pids=(); served_urls=(); served_gpu=(); served_slots=$SERVER_SLOTS
  for i in $(seq "$SERVERS"); do
    port=${ports[$((i - 1))]}
    logs+=("$([ "$i" = 1 ] && echo "$log" || echo "${log%.log}-$i.log")")
    "$server" -m "$gguf" --alias finsent -ngl 99 --parallel "$SERVER_SLOTS" -c $((SERVER_SLOTS * 4096)) \
      --cache-reuse 256 --metrics --host 127.0.0.1 --port "$port" "${server_flags[@]}" "$@" > "${logs[-1]}" 2>&1 &
    server_pids+=($!); served_urls+=("http://127.0.0.1:$port/v1")
  done
  # shellcheck disable=SC2034
  served_url=${served_urls[0]}
  for i in "${!server_pids[@]}"; do
    pid=${server_pids[$i]}; port=${ports[$i]}; log=${logs[$i]}
    for _ in $(seq 240); do
      curl -sf "http://127.0.0.1:$port/health" > /dev/null && break
      kill -0 "$pid" 2>/dev/null || { tail -n 5 "$log" >&2; echo "$server stopped while loading $gguf ($log)" >&2; return 1; }
      sleep 0.5
    done
    curl -sf "http://127.0.0.1:$port/health" > /dev/null || { echo "$server not healthy after 120 s ($log)" >&2; return 1; }
    if [ "${SERVER_ON_GPU:-1}" = 0 ]; then served_gpu+=("$pid, -"); continue; fi
    # llama.cpp logs a failed CUDA start but, at the server's default verbosity, not a successful one:
    # the GPU memory the driver reports for the server's process is the evidence
    served_gpu+=("$(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader 2>/dev/null | grep "^$pid,")") \
      || { echo "$server holds no GPU memory ($log)" >&2; return 1; }
    echo "${served_gpu[-1]}"
  done
  echo "llama-server: $SERVERS × $SERVER_SLOTS slots${server_flags[*]:+ (${server_flags[*]})}: ${served_urls[*]}"
}
stop_llama_server() {
  local pid
  for pid in "${server_pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${server_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  server_pids=()
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -uo pipefail
  [ "${1:-}" = serve ] && [ $# -ge 5 ] || { sed -n '2,/^server_pids=/{/^# shellcheck/d;/^#/p}' "$0"; exit 2; }
  urls=$5
  trap 'stop_llama_server; exit 143' TERM INT
  trap stop_llama_server EXIT
  start_llama_server "$2" "$3" "$4" "${@:6}" || exit 1
  for i in "${!server_pids[@]}"; do
    printf '%s\t%s\t%s\n' "${served_urls[$i]}" "${server_pids[$i]}" "${served_gpu[$i]#*, }"
  done > "$urls.partial" && mv "$urls.partial" "$urls"
  while :; do  # until a signal (the trap) or a server stops
    for pid in "${server_pids[@]}"; do
      kill -0 "$pid" 2>/dev/null || { echo "llama-server pid $pid stopped" >&2; exit 1; }
    done
    sleep 1 & wait $!
  done
fi
