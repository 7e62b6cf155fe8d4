#!/usr/bin/env bash
# The fine-tune quality run of record on one GPU: two benchmarks/gpu_quality.sh runs of one recipe
# with different training seeds (A, B), and with DATA_ROOT's leave-one-source-out folders two more
# (C: trained without FPB, scored on FPB's test rows; D: trained without tweets, scored on TWEETS_ROWS
# tweets of the test split). A and B train at once (a 270M model leaves most of the card idle); then
# C and D train while A and B are measured, in MEASURE_LANES lanes (A then C, B then D), each lane's
# llama.cpp engines on its share of the cores (two engines each spinning a thread per core slowed
# both ~20×, so they never share a core). benchmarks/quality_summary.py writes RESULTS with every run
# and the generalisation figures, each with its 95% bootstrap interval, rewritten after each run is
# measured, so a machine taken back keeps what was measured.
#
#   bash benchmarks/quality_data.sh /tmp/quality      # on the CPU machine: the step 05 folders
#   DATA_ROOT=/tmp/fg/quality bash benchmarks/gpu_quality_pair.sh   # on the GPU machine (BENCHMARKS.md)
#
# Environment: DATA_ROOT (quality_data.sh's folder: recipe/, no_fpb/, no_tweets/), or A_DATA and
# B_DATA (step 05 folders; C and D then run only with C_DATA / D_DATA set); A_SEED (1), B_SEED (2),
# {C,D}_SEED (A_SEED),
# BACKEND (unsloth) or {A,B,C,D}_BACKEND, {A,B}_DESC (each run's DATA_DESC), LOSO (1; 0: A and B
# only), TWEETS_ROWS (500: the tweets both the recipe (run A's --eval-extra) and D are scored on),
# LOSO_HEADLINES (1; 0: C and D are not scored on the headlines), MEASURE_LANES (2; 1: one run
# measured at a time on every core), WORK_ROOT (/tmp: runs in WORK_ROOT/fqA … fqD, logs beside
# them), RESULTS (benchmarks/results/finetune_quality.json; refused before anything runs if it
# exists, unless OVERWRITE_RESULTS=1), BASE_CACHE (optional: a predictions.cache.jsonl of the base's
# 5-shot answers to start from); everything else gpu_quality.sh reads (EPOCHS, LLAMA_CPP, QUANTS, ...)
# is passed through. A prepares the base folder and evaluates the base; B, C and D reuse both. C and
# D evaluate no base and run no variance. SOUP=1 (default 0): once A and B have trained, run S is
# their weights' average (finetune/average_models.py: WORK_ROOT/fqS/run/merged from fqA's and fqB's),
# measured as A and B are (FPB test rows, headlines, variance; no base, no --eval-extra) after them in
# a lane, and recorded apart in RESULTS ("soups", quality_summary.py --soup: not a seed, not counted in
# the targets). SERVER_SOURCE (a llama.cpp source folder or gpu_carry.sh's llama-src.tar.xz): CUDA
# llama-server is built from it at nice 19 beside the trainings (benchmarks/server_build.sh, into
# WORK_ROOT/server; a finished build there is reused) and every run is measured on the GPU with it
# (LLAMA_SERVER), or on the embedded engine where the build failed (WORK_ROOT/server.log says why);
# the runs themselves build nothing (SERVER_BUILD=0): without SERVER_SOURCE or LLAMA_SERVER they are
# measured on the embedded engine. Exit status: 0 when every run measured and the summary was
# written, else 1.
# Time on one H200 (16 cores), measured 2026-11-28 (BACKEND=hf, TWEETS_ROWS=300, LOSO_HEADLINES=0,
# BASE_CACHE set): 27 min in all with A, B, C and D. Base folder 124 s; A and B train at once in
# 430 s; C and D trained in 242 s and 223 s beside the measuring; in two lanes of 8 threads FPB's
# 483 + 60 rows took 312 s per run (155 s on 16 threads alone: two lanes are no faster per row, the
# gain is measuring while C and D train). LLAMA_SERVER (gpu_quality.sh) moves the measuring to the GPU.
set -uo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -uo/{/^#/p}' "$0"; exit 0 ;; "") ;; *) echo "error: no arguments (see --help)" >&2; exit 2 ;; esac
if [ -n "${DATA_ROOT:-}" ]; then
  A_DATA=${A_DATA:-$DATA_ROOT/recipe}; B_DATA=${B_DATA:-$DATA_ROOT/recipe}
  if [ "${LOSO:-1}" = 1 ]; then C_DATA=${C_DATA:-$DATA_ROOT/no_fpb}; D_DATA=${D_DATA:-$DATA_ROOT/no_tweets}; fi
fi
runs="A B"; [ -n "${C_DATA:-}" ] && runs="$runs C"; [ -n "${D_DATA:-}" ] && runs="$runs D"
case ${SOUP:-0} in 0) ;; 1) runs="$runs S" ;; *) echo "error: SOUP must be 0 or 1, not '$SOUP'" >&2; exit 2 ;; esac
S_DATA=${A_DATA:-}  # the soup is scored as A is; the loop below checks the folder
for run in $runs; do
  data=${run}_DATA
  [ -n "${!data:-}" ] || { echo "error: $data is not set: the step 05 folder of run $run (or set DATA_ROOT; see --help)" >&2; exit 2; }
  [ -f "${!data}/train.jsonl" ] || { echo "error: $data: ${!data}/train.jsonl not found (benchmarks/quality_data.sh builds it)" >&2; exit 2; }
done
RESULTS=${RESULTS:-benchmarks/results/finetune_quality.json}
if [ -e "$RESULTS" ] && [ "${OVERWRITE_RESULTS:-}" != 1 ]; then
  echo "error: RESULTS: $RESULTS exists (a recorded result): name another file, or set OVERWRITE_RESULTS=1" >&2; exit 2
fi
A_SEED=${A_SEED:-1}; B_SEED=${B_SEED:-2}; WORK_ROOT=${WORK_ROOT:-/tmp}; TWEETS_ROWS=${TWEETS_ROWS:-500}
MEASURE_LANES=${MEASURE_LANES:-2}
case $MEASURE_LANES in 1|2|3|4) ;; *) echo "error: MEASURE_LANES must be 1 to 4, not '$MEASURE_LANES'" >&2; exit 2 ;; esac
measure_threads=""  # one lane: the engine's own default (every core)
[ "$MEASURE_LANES" = 1 ] || { measure_threads=$(( $(nproc) / MEASURE_LANES )); [ "$measure_threads" -ge 1 ] || measure_threads=1; }
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=benchmarks/server_build.sh
. "$here/server_build.sh"
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }
quality() {  # quality() RUN STAGE: gpu_quality.sh --stage STAGE for run A … D or S, logged beside its WORK
  local run=$1 stage=$2 data=${1}_DATA backend=${1}_BACKEND desc=${1}_DESC seed=${1}_SEED work=$WORK_ROOT/fq$1
  local -a env=(DATA="${!data}" BACKEND="${!backend:-${BACKEND:-unsloth}}" WORK="$work" RESULTS="$work/finetune_quality.json"
                SEED="${!seed:-$A_SEED}" DATA_DESC="${!desc:-${!data}}" THREADS="$measure_threads" SERVER_BUILD=0)
  [ "$run" = A ] || [ ! -f "$WORK_ROOT/fqA/base/config.json" ] || env+=(BASE_DIR="$WORK_ROOT/fqA/base")
  case $run in C|D) [ "${LOSO_HEADLINES:-1}" = 1 ] || env+=(HEADLINES= SOCIAL=) ;; esac
  [ "$stage" != measure ] || [ -z "${LLAMA_SERVER:-}" ] || env+=(LLAMA_SERVER="$LLAMA_SERVER")
  local -a args=(--stage "$stage")
  [ "$run" != S ] || env+=(SEED="$A_SEED+$B_SEED" DATA_DESC="average of A and B (${A_DESC:-$A_DATA})")
  case $run in
    A) env+=(EXPECTED=${EXPECTED:-1}) ;;&
    A) args+=(--eval-extra "$A_DATA/test.jsonl" --eval-extra-args "--source tweets --limit $TWEETS_ROWS --validation-limit 60") ;;
    C) env+=(SKIP_BASE=1 SAMPLE_SIZE=0 QUANTS=q4_k_m SCORE_DATA="$A_DATA" SCORE_SOURCE=financial_phrasebank) ;;
    D) env+=(SKIP_BASE=1 SAMPLE_SIZE=0 QUANTS=q4_k_m SCORE_DATA="$A_DATA" SCORE_SOURCE=tweets
             SCORE_ARGS="--limit $TWEETS_ROWS --validation-limit 60") ;;
  esac
  env "${env[@]}" bash "$here/gpu_quality.sh" "${args[@]}" > "$work.$stage.log" 2>&1
}

for run in $runs; do rm -rf "$WORK_ROOT/fq$run" "$WORK_ROOT/fq$run".*; mkdir -p "$WORK_ROOT/fq$run/eval/base"; done
[ -z "${BASE_CACHE:-}" ] || cp "$BASE_CACHE" "$WORK_ROOT/fqA/eval/base/predictions.cache.jsonl"
# an earlier run's build status would be taken for this run's
rm -f "$WORK_ROOT/server.built" "$WORK_ROOT/server.pid"
if [ -z "${LLAMA_SERVER:-}" ] && [ -n "${SERVER_SOURCE:-}" ]; then
  server_build_start "$WORK_ROOT" "$SERVER_SOURCE"
fi
train() {  # train() RUN: the train stage, its exit status left in WORK_ROOT/fqRUN.trained for the lanes
  local data=${1}_DATA rc
  stamp "train $1 (${!data})"
  quality "$1" train; rc=$?
  echo $rc > "$WORK_ROOT/fq$1.trained"; stamp "trained $1: rc=$rc"
}
train A & train_a=$!
# B waits for A's base folder and base answers (none with SKIP_BASE), so the GGUF is converted and
# the base asked once.
base_ready() { [ -f "$WORK_ROOT/fqA/base/config.json" ] && { [ -n "${SKIP_BASE:-}" ] || [ -f "$WORK_ROOT/fqA/eval/base.done" ]; }; }
until base_ready || ! kill -0 "$train_a" 2>/dev/null; do sleep 3; done
[ -f "$WORK_ROOT/fqA/eval/base.done" ] && cp "$WORK_ROOT/fqA/eval/base/predictions.cache.jsonl" "$WORK_ROOT/fqB/eval/base/"
train B & train_b=$!
wait "$train_a" "$train_b"
for run in C D; do case " $runs " in *" $run "*) train $run & ;; esac; done
average() {  # run S: A's and B's merged weights averaged, its status left in WORK_ROOT/fqS.trained as a training's
  local rc=1
  if [ "$(cat "$WORK_ROOT/fqA.trained")" = 0 ] && [ "$(cat "$WORK_ROOT/fqB.trained")" = 0 ]; then
    stamp "average A and B into S"
    python "$here/../finetune/average_models.py" --model "$WORK_ROOT/fqA/run/merged" --model "$WORK_ROOT/fqB/run/merged" \
      --output "$WORK_ROOT/fqS/run/merged" --overwrite --no-progress > "$WORK_ROOT/fqS.train.log" 2>&1; rc=$?
  else
    echo "A or B did not train: nothing to average" > "$WORK_ROOT/fqS.train.log"
  fi
  echo $rc > "$WORK_ROOT/fqS.trained"; stamp "averaged S: rc=$rc"
}
case " $runs " in *" S "*) average & ;; esac
# once, before the lanes: they inherit LLAMA_SERVER, and a failed build is reported once
[ -n "${LLAMA_SERVER:-}" ] || server_build_use "$WORK_ROOT"
summarize() {  # quality_summary.py over the runs measured so far: a run cut short keeps their figures
  local -a summary=() measured=()
  for run in $runs; do [ -f "$WORK_ROOT/fq$run.measured" ] && measured+=("$run"); done
  for run in "${measured[@]}"; do
    case $run in
      A) summary+=(--run "$A_SEED=$WORK_ROOT/fqA") ;;
      B) summary+=(--run "$B_SEED=$WORK_ROOT/fqB") ;;
      C) summary+=(--loso "financial_phrasebank=$WORK_ROOT/fqC") ;;
      D) summary+=(--loso "tweets=$WORK_ROOT/fqD") ;;
      S) summary+=(--soup "A+B=$WORK_ROOT/fqS") ;;
    esac
  done
  stamp "summary of ${measured[*]} → $RESULTS"
  python "$here/quality_summary.py" "${summary[@]}" ${QUANTS:+--quants "$QUANTS"} --output "$RESULTS" \
    --settings "full_finetune=true epochs=${EPOCHS:-2} lr=${LR:-1e-4} batch=${BATCH:-32} seeds=$A_SEED,$B_SEED data=${A_DESC:-$A_DATA}"
}
lane() {  # lane RUN...: measures each run in turn once it is trained; 0 when all were measured
  local status=0 run
  for run in "$@"; do
    while [ ! -f "$WORK_ROOT/fq$run.trained" ]; do sleep 5; done
    if [ "$(cat "$WORK_ROOT/fq$run.trained")" -ne 0 ]; then
      echo "run $run: $([ "$run" = S ] && echo averaging || echo training) failed ($WORK_ROOT/fq$run.train.log)" >&2
      status=1; continue
    fi
    stamp "measure $run ($([ -n "${LLAMA_SERVER:-}" ] && echo "CUDA llama-server" || echo "${measure_threads:-every} CPU threads"))"
    if quality "$run" measure; then touch "$WORK_ROOT/fq$run.measured"
    else echo "run $run: measuring failed ($WORK_ROOT/fq$run.measure.log)" >&2; status=1; fi
    tail -14 "$WORK_ROOT/fq$run.measure.log"
    [ -f "$WORK_ROOT/fq$run.measured" ] || continue
    # one summary at a time: the lanes share RESULTS
    ( flock 9; summarize ) 9> "$WORK_ROOT/fq.summary.lock" || status=1
  done
  return $status
}
declare -a lanes=() lane_pids=()
i=0; for run in $runs; do [ "$run" = S ] || { lanes[i % MEASURE_LANES]+="$run "; i=$((i + 1)); }; done
# S last in A's lane: measured after A, so the summary it is added to has a seed run
case " $runs " in *" S "*) lanes[0]+="S " ;; esac
for runs_of_lane in "${lanes[@]}"; do
  # shellcheck disable=SC2086  # the lane's runs, split on purpose
  lane $runs_of_lane & lane_pids+=($!)
done
status=0
for p in "${lane_pids[@]}"; do wait "$p" || status=1; done
wait  # the C and D trainings and S's averaging, already recorded by their lanes
exit $status
