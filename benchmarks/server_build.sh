#!/usr/bin/env bash
# The CUDA llama-server built on the GPU machine beside the trainings, for the measuring: sourced by
# gpu_quality.sh and gpu_quality_pair.sh. A build runs detached (its own session: it outlives the
# device call of a train stage, and holds no caller's output open) at nice 19, with
# build_llama_server_gpu.sh, into DIR/server; DIR/server.built gets its exit status, DIR/server.pid
# its process, DIR/server.log its output (DIR/server/*.log the configure and build logs).
#   server_build_auto DIR  gpu_quality.sh's default: with LLAMA_SERVER unset, SERVER_BUILD not 0 and
#     a GPU that nvidia-smi -L lists, starts a build from SERVER_SOURCE (default: the llama.cpp build
#     tree finetune.llama_cpp_source.llama_server_source() finds or fetches, llama-cpp-python's own
#     sdist's); else a one-line warning that the measuring stays on the CPUs, and no build
#   server_build_start DIR SOURCE  starts a build from SOURCE (a folder or a .tar.xz), or leaves one
#     under way in DIR, or reuses DIR/server/llama-server where it answers --version (DIR/server.built
#     is then 0 at once)
#   server_build_use DIR  where a build was started or finished in DIR: waits for it and sets
#     LLAMA_SERVER=DIR/server/llama-server if it succeeded, else prints a one-line warning naming
#     the logs (the caller measures on the embedded engine)
SERVER_BUILD_SCRIPT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/build_llama_server_gpu.sh

gpu_listed() { nvidia-smi -L 2>/dev/null | grep -q '^GPU '; }

server_build_source() {  # prints the source to build from, or warns (one line) and returns 1
  local src=${SERVER_SOURCE:-} origin=SERVER_SOURCE
  local advice="measuring stays on the CPUs (set SERVER_SOURCE to a llama.cpp source folder or"
  advice+=" gpu_carry.sh's llama-src.tar.xz; SERVER_BUILD=0: no build)"
  if [ -z "$src" ]; then
    origin="llama_server_source()'s folder"
    # gpu_quality.sh runs from the repo root, where finetune/ imports
    if ! src=$(python -c 'import sys
from finetune.llama_cpp_source import llama_server_source
from utils.errors import FinsentError
try: print(llama_server_source())
except FinsentError as error: sys.exit(str(error))' 2>&1); then
      echo "warning: no CUDA llama-server: no llama.cpp source to build from (${src##*$'\n'}); $advice" >&2
      return 1
    fi
    src=${src##*$'\n'}
  fi
  # a file is an archive the build unpacks; a folder must be llama.cpp's build tree, not the
  # converter-only copy the GPU machine's FINSENT_LLAMA_CPP_SOURCE may name
  if [ -f "$src" ] || [ -f "$src/CMakeLists.txt" ]; then echo "$src"; return 0; fi
  echo "warning: no CUDA llama-server: $origin $src holds no CMakeLists.txt; $advice" >&2
  return 1
}

server_build_auto() {  # server_build_auto DIR (see the header)
  [ -z "${LLAMA_SERVER:-}" ] && [ "${SERVER_BUILD:-1}" != 0 ] && gpu_listed || return 0
  local src
  src=$(server_build_source) || return 0
  server_build_start "$1" "$src"
}

server_build_start() {  # server_build_start DIR SOURCE (see the header)
  local dir=$1 src=$2
  mkdir -p "$dir"
  # a train stage run again while its first build goes on: two builds in one folder would clash
  if [ ! -f "$dir/server.built" ] && [ -f "$dir/server.pid" ] && kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; then
    echo "CUDA llama-server: the build into $dir/server goes on"; return 0
  fi
  rm -f "$dir/server.built" "$dir/server.pid"
  if "$dir/server/llama-server" --version > /dev/null 2>&1; then
    echo "CUDA llama-server: reusing $dir/server/llama-server"
    echo 0 > "$dir/server.built"; return 0
  fi
  echo "building CUDA llama-server from $src into $dir/server in the background (nice 19, $dir/server.log)"
  # the status is renamed into place, so a waiter never reads a half-written file
  # shellcheck disable=SC2016  # the inner bash expands them
  setsid nohup bash -c 'nice -n 19 bash "$0" "$1" "$2/server" > "$2/server.log" 2>&1
    echo $? > "$2/server.built.tmp" && mv "$2/server.built.tmp" "$2/server.built"' \
    "$SERVER_BUILD_SCRIPT" "$src" "$dir" < /dev/null > /dev/null 2>&1 &
  echo $! > "$dir/server.pid"
}

server_build_use() {  # server_build_use DIR (see the header)
  local dir=$1 pid
  [ -f "$dir/server.built" ] || [ -f "$dir/server.pid" ] || return 0
  if [ ! -f "$dir/server.built" ]; then
    echo "waiting for the CUDA llama-server build ($dir/server.log)"
    pid=$(cat "$dir/server.pid")
    # a build killed before it wrote its status (its machine call ended) counts as failed
    while [ ! -f "$dir/server.built" ] && kill -0 "$pid" 2>/dev/null; do sleep 2; done
  fi
  if [ "$(cat "$dir/server.built" 2>/dev/null)" = 0 ]; then
    LLAMA_SERVER=$dir/server/llama-server
  else
    echo "warning: the CUDA llama-server build failed ($dir/server.log, $dir/server/*.log):" \
      "measuring on the embedded engine" >&2
  fi
}
