#!/usr/bin/env bash
# The step 05 folders benchmarks/gpu_quality_pair.sh trains on, built from ../shared/data on this
# (CPU) machine: OUT/recipe (tweets + FPB + 4,000 FPB passages: the recipe of record), OUT/no_fpb
# (tweets only: leave FPB out) and OUT/no_tweets (FPB + passages: leave the tweets out). Targets are
# graded (label polarity × annotator agreement, rounded to 0.1) unless GRADED=0; every reasoning
# names the text's own words (dataset_builder/evidence.py). Each folder's rows of a source fall in
# the same splits as the recipe's (step 05 stratifies by source and label), so the recipe's test
# rows of the left-out source are texts the left-out run never saw. OUT/quality.tar.xz holds the
# three folders (~2 MB) for a device call to carry: on the GPU machine,
# `mkdir -p /tmp/fg/quality && tar xJf quality.tar.xz -C /tmp/fg/quality`.
#
#   bash benchmarks/quality_data.sh OUT      # ~30 s
#
# Environment: SHARED (../shared/data), PASSAGES (4000), GRADED (1).
set -euo pipefail
case "${1:-}" in -h|--help|"") sed -n '2,/^set -euo/{/^#/p}' "$0"; [ -n "${1:-}" ]; exit $? ;; esac
out=$1; here=$(cd "$(dirname "$0")/.." && pwd)
S=${SHARED:-$here/../shared/data}; PASSAGES=${PASSAGES:-4000}
graded=--graded-sentiment; [ "${GRADED:-1}" = 1 ] || graded=--no-graded-sentiment
[ -f "$S/airline_tweets/Tweets.csv" ] && [ -d "$S/financial_phrasebank" ] \
  || { echo "error: SHARED: $S has no airline_tweets/Tweets.csv or financial_phrasebank/" >&2; exit 2; }
mkdir -p "$out/steps"
step() { python "$here/dataset_builder/$1" "${@:2}"; }
step step_01_process_tweets.py --input "$S/airline_tweets/Tweets.csv" --output "$out/steps/s1.csv" $graded
step step_02_process_financial_phrasebank.py --input "$S/financial_phrasebank" --output "$out/steps/s2.csv" $graded
step step_04_join_outputs.py --input tweets="$out/steps/s1.csv" --input financial_phrasebank="$out/steps/s2.csv" \
  --output "$out/steps/recipe.csv"
step step_04_join_outputs.py --input tweets="$out/steps/s1.csv" --output "$out/steps/no_fpb.csv"
step step_04_join_outputs.py --input financial_phrasebank="$out/steps/s2.csv" --output "$out/steps/no_tweets.csv"
step step_05_build_sharegpt_dataset.py --input "$out/steps/recipe.csv" --output "$out/recipe" --passages "$PASSAGES"
step step_05_build_sharegpt_dataset.py --input "$out/steps/no_fpb.csv" --output "$out/no_fpb"
step step_05_build_sharegpt_dataset.py --input "$out/steps/no_tweets.csv" --output "$out/no_tweets" --passages "$PASSAGES"
tar cJf "$out/quality.tar.xz" -C "$out" recipe no_fpb no_tweets
wc -l "$out"/*/train.jsonl
