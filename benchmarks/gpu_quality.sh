#!/usr/bin/env bash
# Fine-tune quality on one CUDA GPU, end to end: Gemma 3 270M fully fine-tuned on step 05's train
# split (tweets + Financial PhraseBank), exported to GGUF q8_0 and q4_k_m, each served on the GPU by
# a CUDA llama-server built on the machine beside the training (SERVER_SOURCE below), else by the
# embedded llama.cpp engine on the CPUs, and measured with eval/evaluate_labelled.py on the FPB test split,
# against the same base model prompted 5-shot, and on examples/headlines/finsent_headlines.csv
# (headlines written for the project: no training source resembles them); then the q4_k_m model's
# sentiment variance over 15 iterations at temperature 0.2 on examples/news_snapshot.json. Writes
# $WORK/finetune_quality.json (benchmarks/quality_summary.py) and prints the table.
#
#   bash benchmarks/gpu_quality.sh [--stage all|train|measure] [--eval-extra FILE [--eval-extra-args "ARGS"]]
#
# --stage train: the CUDA llama-server's build (in the background), base folder, the base's 5-shot
#   evaluation (in the background, on the CPUs, while the GPU trains), training. --stage measure:
#   export, the wait for that build, variance, evaluations, summary. A device
#   call may last 10 minutes: run the two stages as two calls on the same machine (WORK in /tmp),
#   or start `--stage all` detached (setsid nohup ... &) from a copy of the repo in /tmp and poll it.
# --eval-extra FILE: also measure the q4_k_m GGUF on any labelled CSV/JSONL (ARGS: evaluate_labelled's
#   --text-column, --label-column, --label-map ...). A plain CSV/JSONL is split: a seeded 80% of its
#   rows is scored, the other 20% chooses the threshold (evaluate_labelled's --validation-fraction);
#   step 05's test.jsonl uses the validation.jsonl beside it instead.
# Environment (defaults): DATA (data/sharegpt: steps 01, 02, 04, 05 on ../shared/data; the run of
# record used step 05 --passages 4000 and EPOCHS 2, BENCHMARKS.md), WORK
# (outputs/gpu_quality), QUANTS ("q4_k_m q8_0": the quantizations evaluated on the FPB test split;
# both are exported either way), BACKEND (unsloth), FALLBACK_BACKEND (hf: trains again with it if BACKEND
# fails; empty: no second try), BASE_FREE_CORES (4: cores the base evaluation leaves to training),
# EPOCHS (2), LR (1e-4), BATCH (32), PARALLEL (16 engine slots),
# LLAMA_CPP (llama.cpp's converter folder, an unpacked llama-cpp-python sdist's vendor/llama.cpp;
# default: found or fetched as export_gguf.py does),
# QUANTIZE (a llama-quantize binary; default: llama-cpp-python's quantizer through export_gguf.py),
# RESULTS ($WORK/finetune_quality.json; a file that exists outside WORK, such as a committed
# benchmarks/results/*.json, is refused before anything runs unless OVERWRITE_RESULTS=1),
# DATA_DESC (what DATA holds, for the results' settings line: "tweets+FPB (step 05 train split)"),
# SEED (42: the training seed, finetune.seed), THREADS (CPU threads of each llama.cpp engine the
# measure stage starts; default every core: gpu_quality_pair.sh measures two runs at once on half
# the cores each), BASE_DIR (a folder prepare_base.py already wrote: the train stage uses it
# instead of converting the GGUF again), HEADLINES (examples/headlines/finsent_headlines.csv;
# empty: not scored), EXPECTED (1: the q4_k_m model also scored on the test rows with
# evaluate_labelled --expected-sentiment, into eval/expected), SOCIAL (examples/social_posts/finsent_social_posts.csv, finance social posts
# written apart from the training corpus; empty: not scored), LLAMA_SERVER (a llama-server binary, e.g. benchmarks/build_cuda_server.sh's
# CUDA build: the measure stage serves each fine-tuned GGUF with it, every layer on the GPU, and asks
# it through the openai backend; a server that does not start or holds no GPU memory leaves the
# measuring to the default, the embedded engine on the CPUs; how many servers of how many slots, and
# their flags: llama_server.sh's SERVERS, SERVER_SLOTS, SERVER_FLAGS, by default the layout
# gpu_eval.py measured best, else as many servers of PARALLEL slots as fit: SERVERS=auto; default: the
# server built below), SERVER_BUILD (1; 0: no build), SERVER_SOURCE (llama.cpp's source, a folder with
# CMakeLists.txt or gpu_carry.sh's llama-src.tar.xz; default: finetune.llama_cpp_source.llama_server_source(),
# the build tree of the installed llama-cpp-python's sdist, else a warning and no build): with LLAMA_SERVER
# unset and a GPU that nvidia-smi -L lists, the train stage builds CUDA llama-server from it at nice 19
# beside the training (benchmarks/server_build.sh, into $WORK/server: ~5-7 minutes on 16 cores; a
# finished build there is reused) and the measure stage waits for it and measures with it (9.6-29 rows/s
# on an H200 where the embedded engine does ~3); a failed build leaves the measuring to the embedded
# engine ($WORK/server.log says why). Leave-one-source-out (gpu_quality_pair.sh sets these): SCORE_DATA (DATA: the
# step 05 folder whose test rows score the model), SCORE_SOURCE (financial_phrasebank), SCORE_ARGS
# ("--validation-limit 60": evaluate_labelled flags for that scoring), SKIP_BASE (empty; 1: no base
# evaluation), SAMPLE_SIZE=0 (no variance run). For a quick smoke run of the pipeline's
# plumbing: EVAL_LIMIT (test and validation rows per evaluation; default all) and SAMPLE_SIZE
# (variance iterations, 15).
set -euo pipefail
stage=all; extra=""; extra_args=""
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --eval-extra) extra=$2; shift 2 ;;
    --eval-extra-args) extra_args=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/p}' "$0"; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$stage" in all|train|measure) ;; *) echo "error: --stage must be all, train or measure" >&2; exit 2 ;; esac
[ -z "$extra" ] || [ -f "$extra" ] || { echo "error: --eval-extra: file not found: $extra" >&2; exit 2; }

DATA=${DATA:-data/sharegpt}; WORK=${WORK:-outputs/gpu_quality}; BACKEND=${BACKEND:-unsloth}
FALLBACK_BACKEND=${FALLBACK_BACKEND-hf}
QUANTS=${QUANTS:-q4_k_m q8_0}
EPOCHS=${EPOCHS:-2}; LR=${LR:-1e-4}; BATCH=${BATCH:-32}; PARALLEL=${PARALLEL:-16}
RESULTS=${RESULTS:-$WORK/finetune_quality.json}; SAMPLE_SIZE=${SAMPLE_SIZE:-15}; SEED=${SEED:-42}
SCORE_DATA=${SCORE_DATA:-$DATA}; SCORE_SOURCE=${SCORE_SOURCE:-financial_phrasebank}
SCORE_ARGS=${SCORE_ARGS:---validation-limit 60}; HEADLINES=${HEADLINES-examples/headlines/finsent_headlines.csv}
SOCIAL=${SOCIAL-examples/social_posts/finsent_social_posts.csv}
DATA_DESC=${DATA_DESC:-tweets+FPB (step 05 train split)}
limit=${EVAL_LIMIT:+--limit $EVAL_LIMIT --validation-limit $EVAL_LIMIT}
NAME=finsent-gemma-3-270m
export PYTHONUNBUFFERED=1
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }
since() { echo $(( $(date +%s) - $1 )); }
for split in train validation test; do
  [ -f "$DATA/$split.jsonl" ] || { echo "error: $DATA/$split.jsonl not found: build it with dataset_builder steps 01, 02, 04, 05" >&2; exit 2; }
done
[ -f "$SCORE_DATA/test.jsonl" ] || { echo "error: SCORE_DATA: $SCORE_DATA/test.jsonl not found" >&2; exit 2; }
[ -z "${LLAMA_SERVER:-}" ] || [ -x "$LLAMA_SERVER" ] || { echo "error: LLAMA_SERVER: not an executable: $LLAMA_SERVER" >&2; exit 2; }
[ -z "$HEADLINES" ] || [ -f "$HEADLINES" ] || { echo "error: HEADLINES: file not found: $HEADLINES" >&2; exit 2; }
[ -z "$SOCIAL" ] || [ -f "$SOCIAL" ] || { echo "error: SOCIAL: file not found: $SOCIAL" >&2; exit 2; }
case "$(realpath -m "$RESULTS")" in "$(realpath -m "$WORK")"/*) ;; *)
  if [ -e "$RESULTS" ] && [ "${OVERWRITE_RESULTS:-}" != 1 ]; then
    echo "error: RESULTS: $RESULTS exists (a recorded result?): name another file, or set OVERWRITE_RESULTS=1" >&2; exit 2
  fi ;;
esac
mkdir -p "$WORK/eval" "$WORK/times"
base=${BASE_DIR:-$WORK/base}
# The steps are finsent/chain.py's (python -m finsent.chain STEP): the flags every caller of a step
# shares are written there, and a training or export finished before alike is reused on a rerun.
train() {  # full fine-tune of $base into $WORK/run (again with FALLBACK_BACKEND if BACKEND fails)
  stamp "training: $BACKEND backend, full fine-tune, lr $LR, $EPOCHS epochs"
  python -m finsent.chain train --backend "$BACKEND" --fallback-backend "$FALLBACK_BACKEND" --family gemma-3 \
    --base-model "$base" --train "$DATA/train.jsonl" --validation "$DATA/validation.jsonl" \
    --output-dir "$WORK/run" --log "$WORK/train.log" \
    --full-finetune --epochs "$EPOCHS" --learning-rate "$LR" --max-seq-length 512 --no-packing \
    --set finetune.batch_size="$BATCH" --set finetune.gradient_accumulation_steps=1 \
    --set finetune.gradient_checkpointing=false --set finetune.optimizer=adamw_torch_fused \
    --set finetune.warmup_ratio=0.03 --set finetune.weight_decay=0.01 --set finetune.lr_scheduler=cosine \
    --set finetune.eval_steps=400 --set finetune.save_steps=100000 --set finetune.logging_steps=50 \
    --set finetune.seed="$SEED"
}
# Accuracy runs answer greedily (the runner's evaluate); the variance run samples at 0.2.
evaluate() {  # evaluate() NAME ARGS...: one evaluate_labelled run of the model use_model chose into $WORK/eval/NAME
  local name=$1; shift
  python -m finsent.chain evaluate --output "$WORK/eval/$name" --parallel "$PARALLEL" --no-progress \
    "${model_flags[@]}" "$@" $limit
}

# shellcheck source=benchmarks/llama_server.sh
. "$(dirname "$0")/llama_server.sh"
# shellcheck source=benchmarks/server_build.sh
. "$(dirname "$0")/server_build.sh"
served_quant=""
stop_server() { stop_llama_server; served_quant=""; }
trap stop_server EXIT
use_model() {  # use_model QUANT: sets model_flags (the runner's evaluate and sentiments)
  local gguf=$WORK/gguf/$NAME-$1.gguf
  if [ -n "${LLAMA_SERVER:-}" ] && [ "$served_quant" != "$1" ]; then
    stop_server
    served_quant=$1
    # a server that fails leaves the run to the embedded engine, the reference the figures were made on
    start_llama_server "$LLAMA_SERVER" "$gguf" "$WORK/server-$1.log" || { echo "warning: measuring on the embedded engine instead of LLAMA_SERVER" >&2; stop_server; LLAMA_SERVER=""; }
  fi
  if [ -z "${LLAMA_SERVER:-}" ]; then
    model_flags=(--gguf "$gguf" --name "$NAME-$1" ${THREADS:+--threads $THREADS})
  else
    model_flags=(--name "$NAME-$1" --server-slots "$served_slots")
    for url in "${served_urls[@]}"; do model_flags+=(--server-url "$url"); done
  fi
}

if [ "$stage" != measure ]; then
  server_build_auto "$WORK"  # first: the build's minutes overlap the base folder and the training
  if [ -n "${BASE_DIR:-}" ]; then
    [ -f "$BASE_DIR/config.json" ] || { echo "error: BASE_DIR: $BASE_DIR/config.json not found (a prepare_base.py folder)" >&2; exit 2; }
    stamp "base model: $BASE_DIR (prepared already)"
  else
    t=$(date +%s); stamp "base model: GGUF → HF folder"
    python finetune/prepare_base.py --family gemma-3 --output "$base" --overwrite \
      ${BASE_GGUF:+--gguf "$BASE_GGUF"}
    echo "prepare_base_s $(since "$t")" > "$WORK/times/prepare_base"
  fi

  # The base's engine leaves BASE_FREE_CORES to the trainer (Unsloth compiles its kernels on the
  # CPUs: its first step took 309 s while an engine held every core).
  base_threads=$(( $(nproc) - ${BASE_FREE_CORES:-4} )); [ "$base_threads" -ge 1 ] || base_threads=1
  rm -f "$WORK/eval/base.done"
  [ -n "${SKIP_BASE:-}" ] || stamp "base 5-shot evaluation on the $SCORE_SOURCE test rows (background, $base_threads CPU threads)"
  [ -n "${SKIP_BASE:-}" ] || setsid nohup bash -c 's=$(date +%s); python -m finsent.chain evaluate --output "$1/eval/base" --parallel "$2" \
    --no-progress --input "$3/test.jsonl" --source "$4" \
    --prompt few-shot --structured --validation-limit 100 --threads "$6" $5 > "$1/eval/base.log" 2>&1; echo $? > "$1/eval/base.done"; \
    echo "base_eval_s $(( $(date +%s) - s ))" > "$1/times/base_eval"' _ "$WORK" "$PARALLEL" "$SCORE_DATA" "$SCORE_SOURCE" "$limit" "$base_threads" \
    < /dev/null > /dev/null 2>&1 &

  t=$(date +%s)
  train || exit 1  # the runner said why
  echo "train_s $(since "$t")" > "$WORK/times/train"
fi

if [ "$stage" != train ]; then
  t=$(date +%s); stamp "export: f16 GGUF, then q8_0 and q4_k_m"
  # The product's export path: llama.cpp's own converter (LLAMA_CPP, else found as export_gguf.py finds
  # it); with QUANTIZE, that binary writes q8_0 and q4_k_m from the f16.
  python -m finsent.chain export --run "$WORK/run" --gguf-dir "$WORK/gguf" --name $NAME --family gemma-3 \
    --quants f16,q8_0,q4_k_m ${LLAMA_CPP:+--llama-cpp-source "$LLAMA_CPP"} ${QUANTIZE:+--quantize "$QUANTIZE"}
  ls -la "$WORK/gguf"
  echo "export_s $(since "$t")" > "$WORK/times/export"

  # One llama.cpp engine per core at a time: two, each spinning a thread per core, slowed both ~20×
  # on the 16-core GPU machine (the base's requests took 219 s each); THREADS splits the cores.
  if [ -f "$WORK/eval/base.log" ]; then  # started by the train stage
    stamp "waiting for the base evaluation"
    while [ ! -f "$WORK/eval/base.done" ]; do sleep 5; done
    tail -3 "$WORK/eval/base.log"
  fi
  [ -n "${LLAMA_SERVER:-}" ] || server_build_use "$WORK"
  # The variance first: it takes ~25 s and is the figure a run is most often made for.
  if [ "$SAMPLE_SIZE" -gt 0 ]; then
    use_model q4_k_m; t=$(date +%s); stamp "variance: q4_k_m × $SAMPLE_SIZE iterations at temperature 0.2 on examples/news_snapshot.json"
    python -m finsent.chain sentiments "${model_flags[@]}" --parallel "$PARALLEL" --num-ctx 4096 \
      --snapshot examples/news_snapshot.json --sample-size "$SAMPLE_SIZE" --temperature 0.2 \
      --save-folder "$WORK/variance" --summary-file "$WORK/variance_summary.json" --run-config "$WORK/variance.yaml" \
      2>&1 | tail -4
    echo "variance_s $(since "$t")" > "$WORK/times/variance"
  fi
  for quant in $QUANTS; do
    t=$(date +%s); stamp "evaluate $quant on the $SCORE_SOURCE test rows of $SCORE_DATA (trained prompt, no schema, temperature 0)"
    # shellcheck disable=SC2086  # SCORE_ARGS are evaluate_labelled flags, split on purpose
    use_model "$quant"
    evaluate "$quant" --input "$SCORE_DATA/test.jsonl" --source "$SCORE_SOURCE" $SCORE_ARGS 2>&1 | tail -4
    echo "eval_${quant}_s $(since "$t")" > "$WORK/times/eval_$quant"
  done
  if [ -n "${EXPECTED:-}" ]; then
    # the sentiment read from the token probabilities (evaluate_labelled --expected-sentiment), in a
    # folder of its own: a failure there leaves the generated figures above as they are
    t=$(date +%s); stamp "evaluate q4_k_m on the $SCORE_SOURCE test rows with --expected-sentiment"
    use_model q4_k_m
    evaluate expected --input "$SCORE_DATA/test.jsonl" --source "$SCORE_SOURCE" \
      --expected-sentiment $SCORE_ARGS 2>&1 | tail -5 || true
    echo "eval_expected_s $(since "$t")" > "$WORK/times/eval_expected"
  fi
  score_written_set() {  # score_written_set NAME FILE: a labelled CSV written for the project, held out
    [ -n "$2" ] || return 0
    local t; t=$(date +%s); stamp "evaluate q4_k_m on $2 (80% scored, 20% choose the threshold)"
    use_model q4_k_m
    evaluate "$1" --input "$2" 2>&1 | tail -4
    echo "eval_$1_s $(since "$t")" > "$WORK/times/eval_$1"
  }
  score_written_set headlines "$HEADLINES"
  score_written_set social "$SOCIAL"

  if [ -n "$extra" ]; then
    stamp "evaluate q4_k_m on $extra (a plain CSV/JSONL: 80% scored, the other 20% choose the threshold)"
    # shellcheck disable=SC2086  # ARGS are evaluate_labelled flags, split on purpose
    use_model q4_k_m
    evaluate extra --input "$extra" $extra_args 2>&1 | tail -4
  fi

  stop_server
  python benchmarks/quality_summary.py --run "$SEED=$WORK" --quants "$QUANTS" --model-name $NAME \
    --settings "full_finetune=true epochs=$EPOCHS lr=$LR batch=$BATCH seed=$SEED data=$DATA_DESC" \
    --output "$RESULTS"
fi
