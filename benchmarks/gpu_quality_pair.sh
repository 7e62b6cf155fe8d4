#!/usr/bin/env bash
# Two benchmarks/gpu_quality.sh runs on one GPU: trained at the same time (a 270M model leaves most
# of the card idle), then measured one after the other (the measurements run llama.cpp on the CPUs,
# and two engines at once slow each other ~20×). The run of record (BENCHMARKS.md, fine-tune quality)
# was made this way: A = Unsloth on hard targets, B = hf on graded targets, both with passages.
#
#   bash benchmarks/gpu_quality_pair.sh
#
# Environment: A_DATA, B_DATA (required: step 05 folders), A_BACKEND (unsloth), B_BACKEND (hf),
# A_DESC, B_DESC (each run's DATA_DESC), WORK_ROOT (/tmp: the runs go to WORK_ROOT/fqA and fqB, their
# logs beside them), BASE_CACHE (optional: a predictions.cache.jsonl of the base's 5-shot answers to
# start from); everything else gpu_quality.sh reads (EPOCHS, LLAMA_CPP, QUANTIZE, QUANTS, ...) is
# passed through. B's training starts once A's base evaluation is done and reuses its answers, so
# the base is evaluated once. Exit status: 0 when both runs measured, else 1.
set -uo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -uo/{/^#/p}' "$0"; exit 0 ;; "") ;; *) echo "error: no arguments (see --help)" >&2; exit 2 ;; esac
for run in A B; do
  data=${run}_DATA
  [ -n "${!data:-}" ] || { echo "error: $data is not set: the step 05 folder of run $run (see --help)" >&2; exit 2; }
done
A_BACKEND=${A_BACKEND:-unsloth}; B_BACKEND=${B_BACKEND:-hf}; WORK_ROOT=${WORK_ROOT:-/tmp}
here=$(cd "$(dirname "$0")" && pwd)
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }
quality() {  # quality() RUN STAGE: gpu_quality.sh --stage STAGE for run A or B, logged beside its WORK
  local data=${1}_DATA backend=${1}_BACKEND desc=${1}_DESC work=$WORK_ROOT/fq$1
  DATA=${!data} BACKEND=${!backend} DATA_DESC=${!desc:-${!data}} WORK=$work RESULTS=$work/finetune_quality.json \
    bash "$here/gpu_quality.sh" --stage "$2" > "$work.$2.log" 2>&1
}

for run in A B; do rm -rf "$WORK_ROOT/fq$run"; mkdir -p "$WORK_ROOT/fq$run/eval/base"; done
[ -z "${BASE_CACHE:-}" ] || cp "$BASE_CACHE" "$WORK_ROOT/fqA/eval/base/predictions.cache.jsonl"
stamp "train A ($A_BACKEND, $A_DATA)"
quality A train & a_pid=$!
while [ ! -f "$WORK_ROOT/fqA/eval/base.done" ] && kill -0 "$a_pid" 2>/dev/null; do sleep 3; done
[ -f "$WORK_ROOT/fqA/eval/base.done" ] && cp "$WORK_ROOT/fqA/eval/base/predictions.cache.jsonl" "$WORK_ROOT/fqB/eval/base/"
stamp "train B ($B_BACKEND, $B_DATA)"
quality B train & b_pid=$!
declare -A trained
wait "$a_pid"; trained[A]=$?; wait "$b_pid"; trained[B]=$?
stamp "trained: A rc=${trained[A]}, B rc=${trained[B]}"
status=0
for run in A B; do
  if [ "${trained[$run]}" -ne 0 ]; then echo "run $run: training failed ($WORK_ROOT/fq$run.train.log)" >&2; status=1; continue; fi
  stamp "measure $run"
  quality "$run" measure || { echo "run $run: measuring failed ($WORK_ROOT/fq$run.measure.log)" >&2; status=1; }
  tail -12 "$WORK_ROOT/fq$run.measure.log"
done
exit $status
