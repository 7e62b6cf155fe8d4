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
# by itself: the environment's SERVERS (a count, or auto), SERVER_SLOTS, SERVER_FLAGS (more
# llama-server flags, split on spaces; set, even empty, it replaces the measured ones); else the
# winner that gpu_eval.py measured and recorded in benchmarks/results/gpu_eval.json
# (GPU_EVAL_RESULTS), the fastest layout whose answers agreed with the embedded engine's; else auto
# servers of PARALLEL slots (16 if unset), no more flags. auto: the first server starts, then more,
# up to SERVERS_MAX (8, the most measured) in all, while all of them together hold at most half of
# the GPU memory free once the first runs (nvidia-smi; CUDA_VISIBLE_DEVICES' first GPU, else GPU 0):
# a Gemma 3 270M q4_k_m (~1.3 GiB a server of 16 slots) gets 8 on any GPU of 24 GB or more, an 8B
# (~13 GB) 4 on an H200 and 1 on a 24 GB card. Why more than one: each llama-server samples its
# slots one after another on the CPU in its main loop, so more servers, not more slots, fill the GPU.
# On an H200 (2026-12-02, 240 FPB rows, the openai backend) Gemma 270M gave 9.6 rows/s at 1 × 16
# (GPU 13.5% busy, 1.3 GB), 25.8 at 4 × 8, 29.1 at 8 × 16 (3.0×, 10.8 GB, 51% busy); an 8B 8.7 at
# 1 × 16, 11.6 at 8 × 16 (106 GB). auto is the fallback because no layout has met gpu_eval.py's
# agreement rule (even 1 × 16 agreed with the embedded engine on 0.948 of the classes, a lightly
# trained model), so no winner is recorded; half the free memory keeps room for what else shares the GPU.
# SERVER_ON_GPU=0 (a CPU build, tests/cpu_llama_server.py): no GPU-memory check, and auto is 1 server.
# shellcheck disable=SC2034  # served_url and served_slots are the callers'
server_pids=(); served_urls=(); served_url=""; served_slots=""; served_gpu=()
llama_server_layout() {  # sets layout_servers ("auto" or a count), layout_slots, server_flags (an array)
  # and layout_why as the header says; the environment's SERVERS and SERVER_SLOTS are left as they are,
  # so that each start (gpu_quality.sh starts one a quantization) chooses again
  local measured=() results=${GPU_EVAL_RESULTS:-$(dirname "${BASH_SOURCE[0]}")/results/gpu_eval.json}
  if [ -z "${SERVERS:-}" ] || [ -z "${SERVER_SLOTS:-}" ] || [ -z "${SERVER_FLAGS+set}" ]; then
    mapfile -t measured < <(python "$(dirname "${BASH_SOURCE[0]}")/gpu_eval.py" --print-winner "$results")
  fi
  if [ -n "${SERVERS:-}" ]; then layout_why="set by SERVERS"
  elif [ -n "${measured[0]:-}" ]; then layout_why="the winner in $results"
  else layout_why="auto"; fi
  layout_servers=${SERVERS:-${measured[0]:-auto}}; layout_slots=${SERVER_SLOTS:-${measured[1]:-${PARALLEL:-16}}}
  if [ -n "${SERVER_FLAGS+set}" ]; then read -ra server_flags <<< "$SERVER_FLAGS"; else server_flags=("${measured[@]:2}"); fi
}
auto_servers() {  # auto_servers FREE_MIB SERVER_MIB MAX: how many servers of SERVER_MIB each fit, all
  # together, in half of FREE_MIB (the other half is headroom for whatever else shares the GPU, e.g.
  # a training beside the evaluation), from 1 to MAX; 1 when a figure is not a number (nvidia-smi's [N/A])
  local free=$1 each=$2 max=$3 n
  [[ "$free" =~ ^[0-9]+$ && "$each" =~ ^0*[1-9][0-9]*$ && "$max" =~ ^0*[1-9][0-9]*$ ]] || { echo 1; return; }
  n=$((10#$free / 2 / 10#$each))
  echo $((n < 1 ? 1 : n > 10#$max ? 10#$max : n))
}
gpu_free_mib() {  # the free memory of the GPU the servers use (CUDA_VISIBLE_DEVICES' first, else GPU 0)
  local gpu=${CUDA_VISIBLE_DEVICES:-0}
  nvidia-smi -i "${gpu%%,*}" --query-gpu=memory.free --format=csv,noheader,nounits 2>/dev/null | head -n 1
}
thousands() { local n=$1 out=""; while [ ${#n} -gt 3 ]; do out=",${n: -3}$out"; n=${n:0:-3}; done; echo "$n$out"; }
launch_llama_servers() {  # launch_llama_servers FROM TO: starts servers FROM..TO in the background, with
  # start_llama_server's server, gguf, log, ports and args (its locals), appending to its logs
  local i
  for i in $(seq "$1" "$2"); do
    logs+=("$([ "$i" = 1 ] && echo "$log" || echo "${log%.log}-$i.log")")
    "$server" -m "$gguf" --alias finsent -ngl 99 --parallel "$layout_slots" -c $((layout_slots * 4096)) \
      --cache-reuse 256 --metrics --host 127.0.0.1 --port "${ports[$((i - 1))]}" "${server_flags[@]}" "${args[@]}" \
      > "${logs[-1]}" 2>&1 &
    server_pids+=($!); served_urls+=("http://127.0.0.1:${ports[$((i - 1))]}/v1")
  done
}
await_llama_servers() {  # await_llama_servers FROM TO: returns 1, saying why, unless servers FROM..TO are
  # healthy and (SERVER_ON_GPU=1) hold GPU memory; appends their served_gpu
  local i pid port
  for i in $(seq "$1" "$2"); do
    pid=${server_pids[$((i - 1))]}; port=${ports[$((i - 1))]}
    for _ in $(seq 240); do
      curl -sf "http://127.0.0.1:$port/health" > /dev/null && break
      kill -0 "$pid" 2>/dev/null || { tail -n 5 "${logs[$((i - 1))]}" >&2; echo "$server stopped while loading $gguf (${logs[$((i - 1))]})" >&2; return 1; }
      sleep 0.5
    done
    curl -sf "http://127.0.0.1:$port/health" > /dev/null || { echo "$server not healthy after 120 s (${logs[$((i - 1))]})" >&2; return 1; }
    if [ "${SERVER_ON_GPU:-1}" = 0 ]; then served_gpu+=("$pid, -"); continue; fi
    # llama.cpp logs a failed CUDA start but, at the server's default verbosity, not a successful one:
    # the GPU memory the driver reports for the server's process is the evidence
    served_gpu+=("$(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader 2>/dev/null | grep "^$pid,")") \
      || { echo "$server holds no GPU memory (${logs[$((i - 1))]})" >&2; return 1; }
    echo "${served_gpu[-1]}"
  done
}
start_llama_server() {
  local server=$1 gguf=$2 log=$3 count ports logs=() args=("${@:4}") free each max=${SERVERS_MAX:-8}
  llama_server_layout
  [[ "$layout_servers" =~ ^(auto|[1-9][0-9]*)$ && "$layout_slots" =~ ^[1-9][0-9]*$ && "$max" =~ ^[1-9][0-9]*$ ]] \
    || { echo "SERVERS (or auto), SERVER_SLOTS and SERVERS_MAX must be whole numbers ≥ 1 (got '$layout_servers', '$layout_slots', '$max')" >&2; return 1; }
  count=$([ "$layout_servers" = auto ] && echo "$max" || echo "$layout_servers")
  # distinct ports (free_port closes its socket: a second call may give the same one back)
  read -ra ports <<< "$(python -c "from utils.engine import free_port
ports = set()
while len(ports) < $count: ports.add(free_port())
print(*ports)")"
  # shellcheck disable=SC2034
  server_pids=(); served_urls=(); served_url=""; served_gpu=(); served_slots=$layout_slots
  if [ "$layout_servers" = auto ]; then
    # the first server's own GPU memory (weights, KV cache, buffers) says how many more fit
    launch_llama_servers 1 1; await_llama_servers 1 1 || return 1
    if [ "${SERVER_ON_GPU:-1}" = 0 ]; then
      count=1; layout_why="auto: 1, not on a GPU"
    else
      free=$(gpu_free_mib); each=${served_gpu[0]#*, }; each=${each% MiB}
      count=$(auto_servers "$free" "$each" "$max")
      layout_why="auto: $count fit in half of $(thousands "$free") MiB free at $(thousands "$each") MiB each, SERVERS_MAX $max"
    fi
    if [ "$count" -gt 1 ]; then launch_llama_servers 2 "$count"; await_llama_servers 2 "$count" || return 1; fi
  else
    launch_llama_servers 1 "$count"; await_llama_servers 1 "$count" || return 1
  fi
  # shellcheck disable=SC2034
  served_url=${served_urls[0]}
  echo "llama-server: $count × $layout_slots slots ($layout_why)${server_flags[*]:+ (${server_flags[*]})}: ${served_urls[*]}"
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
