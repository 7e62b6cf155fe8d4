#!/usr/bin/env bash
# The fine-tune quality run of record on one GPU: two benchmarks/gpu_quality.sh runs of one recipe
# with different training seeds (A, B), and with DATA_ROOT's leave-one-source-out folders two more
# (C: trained without FPB, scored on FPB's test rows; D: trained without tweets, scored on 500 tweets
# of the test split). All train at once (a 270M model leaves most of the card idle), then each is
# measured in turn (the measurements run llama.cpp on the CPUs, and two engines at once slow each
# other ~20×); last, benchmarks/quality_summary.py writes RESULTS with every run and the
# generalisation figures, each with its 95% bootstrap interval, rewritten after each run is measured.
#
#   bash benchmarks/quality_data.sh /tmp/quality      # on the CPU machine: the step 05 folders
#   DATA_ROOT=/tmp/fg/quality bash benchmarks/gpu_quality_pair.sh   # on the GPU machine (BENCHMARKS.md)
#
# Environment: DATA_ROOT (quality_data.sh's folder: recipe/, no_fpb/, no_tweets/), or A_DATA and
# B_DATA (step 05 folders; C and D then run only with C_DATA / D_DATA set); A_SEED (1), B_SEED (2),
# {A,B,C,D}_BACKEND (unsloth), {A,B}_DESC (each run's DATA_DESC), LOSO (1; 0: A and B only),
# TWEETS_ROWS (500: the tweets both the recipe (run A's --eval-extra) and D are scored on),
# WORK_ROOT (/tmp: runs in WORK_ROOT/fqA … fqD, logs beside them), RESULTS
# (benchmarks/results/finetune_quality.json; refused before anything runs if it exists, unless
# OVERWRITE_RESULTS=1), BASE_CACHE (optional: a predictions.cache.jsonl of the base's 5-shot answers
# to start from); everything else gpu_quality.sh reads (EPOCHS, LLAMA_CPP, QUANTIZE, QUANTS, ...) is
# passed through. B's training starts once A's base evaluation is done and reuses its answers, so
# the base is evaluated once; C and D evaluate no base and run no variance. Exit status: 0 when
# every run measured and the summary was written, else 1.
# Time on one H200 (16 cores), estimated from the 2026-11-28 pair (four at once not yet measured):
# training ~10 min for four at once; measuring ~5 min for A (variance, q4_k_m, headlines, tweets),
# ~4 min for B, ~3 min each for C and D with QUANTS=q4_k_m: about 25 minutes in all; LOSO=0 saves ~8.
set -uo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -uo/{/^#/p}' "$0"; exit 0 ;; "") ;; *) echo "error: no arguments (see --help)" >&2; exit 2 ;; esac
if [ -n "${DATA_ROOT:-}" ]; then
  A_DATA=${A_DATA:-$DATA_ROOT/recipe}; B_DATA=${B_DATA:-$DATA_ROOT/recipe}
  if [ "${LOSO:-1}" = 1 ]; then C_DATA=${C_DATA:-$DATA_ROOT/no_fpb}; D_DATA=${D_DATA:-$DATA_ROOT/no_tweets}; fi
fi
runs="A B"; [ -n "${C_DATA:-}" ] && runs="$runs C"; [ -n "${D_DATA:-}" ] && runs="$runs D"
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
here=$(cd "$(dirname "$0")" && pwd)
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }
quality() {  # quality() RUN STAGE: gpu_quality.sh --stage STAGE for run A … D, logged beside its WORK
  local run=$1 stage=$2 data=${1}_DATA backend=${1}_BACKEND desc=${1}_DESC seed=${1}_SEED work=$WORK_ROOT/fq$1
  local -a env=(DATA="${!data}" BACKEND="${!backend:-unsloth}" WORK="$work" RESULTS="$work/finetune_quality.json"
                SEED="${!seed:-42}" DATA_DESC="${!desc:-${!data}}")
  local -a args=(--stage "$stage")
  case $run in
    A) args+=(--eval-extra "$A_DATA/test.jsonl" --eval-extra-args "--source tweets --limit $TWEETS_ROWS --validation-limit 60") ;;
    C) env+=(SKIP_BASE=1 SAMPLE_SIZE=0 QUANTS=q4_k_m SCORE_DATA="$A_DATA" SCORE_SOURCE=financial_phrasebank) ;;
    D) env+=(SKIP_BASE=1 SAMPLE_SIZE=0 QUANTS=q4_k_m SCORE_DATA="$A_DATA" SCORE_SOURCE=tweets
             SCORE_ARGS="--limit $TWEETS_ROWS --validation-limit 60") ;;
  esac
  env "${env[@]}" bash "$here/gpu_quality.sh" "${args[@]}" > "$work.$stage.log" 2>&1
}

for run in $runs; do rm -rf "$WORK_ROOT/fq$run"; mkdir -p "$WORK_ROOT/fq$run/eval/base"; done
[ -z "${BASE_CACHE:-}" ] || cp "$BASE_CACHE" "$WORK_ROOT/fqA/eval/base/predictions.cache.jsonl"
declare -A pid trained
stamp "train A (seed $A_SEED, $A_DATA)"
quality A train & pid[A]=$!
for run in C D; do
  data=${run}_DATA
  case " $runs " in *" $run "*) stamp "train $run (${!data})"; quality $run train & pid[$run]=$! ;; esac
done
while [ ! -f "$WORK_ROOT/fqA/eval/base.done" ] && kill -0 "${pid[A]}" 2>/dev/null; do sleep 3; done
[ -f "$WORK_ROOT/fqA/eval/base.done" ] && cp "$WORK_ROOT/fqA/eval/base/predictions.cache.jsonl" "$WORK_ROOT/fqB/eval/base/"
stamp "train B (seed $B_SEED, $B_DATA)"
quality B train & pid[B]=$!
for run in $runs; do wait "${pid[$run]}"; trained[$run]=$?; done
stamp "trained: $(for run in $runs; do printf '%s rc=%s ' "$run" "${trained[$run]}"; done)"
summarize() {  # quality_summary.py over the runs measured so far: a run cut short keeps their figures
  local -a summary=()
  for run in "${measured[@]}"; do
    case $run in
      A) summary+=(--run "$A_SEED=$WORK_ROOT/fqA") ;;
      B) summary+=(--run "$B_SEED=$WORK_ROOT/fqB") ;;
      C) summary+=(--loso "financial_phrasebank=$WORK_ROOT/fqC") ;;
      D) summary+=(--loso "tweets=$WORK_ROOT/fqD") ;;
    esac
  done
  stamp "summary of ${measured[*]:-no run} → $RESULTS"
  python "$here/quality_summary.py" "${summary[@]}" ${QUANTS:+--quants "$QUANTS"} --output "$RESULTS" \
    --settings "full_finetune=true epochs=${EPOCHS:-2} lr=${LR:-1e-4} batch=${BATCH:-32} seeds=$A_SEED,$B_SEED data=${A_DESC:-$A_DATA}"
}
status=0; measured=()
for run in $runs; do
  if [ "${trained[$run]}" -ne 0 ]; then echo "run $run: training failed ($WORK_ROOT/fq$run.train.log)" >&2; status=1; continue; fi
  stamp "measure $run"
  if quality "$run" measure; then measured+=("$run"); else echo "run $run: measuring failed ($WORK_ROOT/fq$run.measure.log)" >&2; status=1; fi
  tail -14 "$WORK_ROOT/fq$run.measure.log"
  [ ${#measured[@]} -eq 0 ] || summarize || status=1
done
exit $status
