#!/usr/bin/env bash
# The step 05 folders benchmarks/gpu_quality_pair.sh trains on, built from ../shared/data and the
# synthetic corpus on this (CPU) machine: OUT/recipe (tweets + FPB + the corpus + PASSAGES FPB
# passages, the tweets cut to TWEETS_SHARE of train: the recipe of record), OUT/no_fpb (tweets + the
# corpus + corpus passages: leave FPB out) and OUT/no_tweets (FPB + the corpus + FPB passages: leave
# the tweets out). Targets are graded (label polarity × annotator agreement, rounded to 0.1) unless
# GRADED=0; the public sources' reasonings quote the text's key clause and say what it means for the
# shares (dataset_builder/evidence.py); the corpus's are written for each text. Each folder's rows of
# FPB and of the tweets fall in the same splits as the recipe's where the run keeps FPB (step 05
# stratifies by source and label), so the recipe's test rows of a left-out source are texts the
# left-out run never saw. OUT/quality.tar.xz holds the three folders (~3 MB) for a device call to
# carry: on the GPU machine, `mkdir -p /tmp/fg/quality && tar xJf quality.tar.xz -C /tmp/fg/quality`.
#
#   bash benchmarks/quality_data.sh OUT      # ~40 s
#
# Environment: SHARED (../shared/data), CORPUS (examples/corpus/finsent_corpus.csv), PASSAGES (2000),
# TWEETS_SHARE (0.25: the tweets' largest share of train), GRADED (1).
set -euo pipefail
case "${1:-}" in -h|--help|"") sed -n '2,/^set -euo/{/^#/p}' "$0"; [ -n "${1:-}" ]; exit $? ;; esac
out=$1; here=$(cd "$(dirname "$0")/.." && pwd)
S=${SHARED:-$here/../shared/data}; PASSAGES=${PASSAGES:-2000}; CORPUS=${CORPUS:-$here/examples/corpus/finsent_corpus.csv}
TWEETS_SHARE=${TWEETS_SHARE:-0.25}
graded=--graded-sentiment; [ "${GRADED:-1}" = 1 ] || graded=--no-graded-sentiment
[ -f "$S/airline_tweets/Tweets.csv" ] && [ -d "$S/financial_phrasebank" ] \
  || { echo "error: SHARED: $S has no airline_tweets/Tweets.csv or financial_phrasebank/" >&2; exit 2; }
[ -f "$CORPUS" ] || { echo "error: CORPUS: file not found: $CORPUS" >&2; exit 2; }
mkdir -p "$out/steps"
step() { python "$here/dataset_builder/$1" "${@:2}"; }
step step_01_process_tweets.py --input "$S/airline_tweets/Tweets.csv" --output "$out/steps/s1.csv" $graded
step step_02_process_financial_phrasebank.py --input "$S/financial_phrasebank" --output "$out/steps/s2.csv" $graded
join() { local name=$1; shift; step step_04_join_outputs.py "${@/#/--input=}" --output "$out/steps/$name.csv"; }
join recipe tweets="$out/steps/s1.csv" financial_phrasebank="$out/steps/s2.csv" synthetic="$CORPUS"
join no_fpb tweets="$out/steps/s1.csv" synthetic="$CORPUS"
join no_tweets financial_phrasebank="$out/steps/s2.csv" synthetic="$CORPUS"
cap=(--set "dataset.train_share_max={tweets: $TWEETS_SHARE}")
step step_05_build_sharegpt_dataset.py --input "$out/steps/recipe.csv" --output "$out/recipe" --passages "$PASSAGES" "${cap[@]}"
step step_05_build_sharegpt_dataset.py --input "$out/steps/no_fpb.csv" --output "$out/no_fpb" --passages "$PASSAGES" \
  --set dataset.passage_source=synthetic "${cap[@]}"
step step_05_build_sharegpt_dataset.py --input "$out/steps/no_tweets.csv" --output "$out/no_tweets" --passages "$PASSAGES"
tar cJf "$out/quality.tar.xz" -C "$out" recipe no_fpb no_tweets
wc -l "$out"/*/train.jsonl
