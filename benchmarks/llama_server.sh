# Sourced by gpu_quality.sh and gpu_server_check.sh: llama.cpp's llama-server on one GGUF, every layer
# on the GPU, with the embedded engine's settings (4,096 tokens a slot, cached prompt prefixes reused).
#   start_llama_server SERVER GGUF LOG [SERVER_ARGS...]  sets server_pid and served_url (…/v1); returns
#     1, with a line saying why on stderr, when it stops, is not healthy in 120 s, or holds no GPU memory
#   stop_llama_server
# Needs PARALLEL and the repo root as the working directory (utils.engine.free_port).
server_pid=""; served_url=""
start_llama_server() {
  local server=$1 gguf=$2 log=$3 port; shift 3
  port=$(python -c "from utils.engine import free_port; print(free_port())")
  "$server" -m "$gguf" --alias finsent -ngl 99 --parallel "$PARALLEL" -c $((PARALLEL * 4096)) \
    --cache-reuse 256 --host 127.0.0.1 --port "$port" "$@" > "$log" 2>&1 &
  server_pid=$!; served_url=http://127.0.0.1:$port/v1
  for _ in $(seq 240); do
    curl -sf "http://127.0.0.1:$port/health" > /dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { tail -n 5 "$log" >&2; echo "$server stopped while loading $gguf ($log)" >&2; return 1; }
    sleep 0.5
  done
  curl -sf "http://127.0.0.1:$port/health" > /dev/null || { echo "$server not healthy after 120 s ($log)" >&2; return 1; }
  # llama.cpp logs a failed CUDA start but, at the server's default verbosity, not a successful one:
  # the GPU memory the driver reports for the server's process is the evidence
  nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader 2>/dev/null | grep "^$server_pid," \
    || { echo "$server holds no GPU memory ($log)" >&2; return 1; }
}
stop_llama_server() {
  [ -z "$server_pid" ] || { kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true; }
  server_pid=""
}
