#!/usr/bin/env bash
# Runs a command longer than one device call (10 minutes) on the lent GPU machine, and follows it
# over several calls. `start` copies the repo (the call's working tree, which the next call lays
# anew) to a fresh COPY (what an earlier start left there is deleted), runs the command there
# detached (setsid nohup: it outlives the call), then follows it as `poll` does. `poll` waits while
# the command runs, at most SECONDS, prints the tail of its log and of the newest log under COPY,
# and packs its log and FILES (paths or globs under COPY) into $OUT/follow.tgz, so each call brings
# back what the run has written so far. Chain the calls without a pause: the machine goes back
# 30 s after a call ends, and the run with it.
#
#   bash benchmarks/gpu_follow.sh start SECONDS 'FILES' -- COMMAND [ARGS...]
#   bash benchmarks/gpu_follow.sh poll SECONDS 'FILES'
#
# e.g. bash benchmarks/gpu_follow.sh start 500 'seed/*.json seed/*/*.log' -- python benchmarks/seed_models.py --work seed
# Prints "running" or "finished (exit N)" last. Environment: COPY (/tmp/fs), OUT (the device tool's).
set -uo pipefail
usage() { sed -n '2,/^set -uo/{/^#/p}' "$0"; }
case "${1:-}" in -h|--help) usage; exit 0 ;; start|poll) ;; *) echo "error: the first argument is start or poll (see --help)" >&2; exit 2 ;; esac
action=$1; seconds=${2:-}; files=${3:-}
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "error: SECONDS: expected a whole number of seconds, got '${seconds}'" >&2; exit 2; }
COPY=${COPY:-/tmp/fs}; OUT=${OUT:?error: OUT is not set (the device tool sets it)}
log=$COPY/follow.log; status=$COPY/follow.status

if [ "$action" = start ]; then
  shift 3
  [ "${1:-}" = -- ] && shift
  [ $# -gt 0 ] || { echo "error: start needs a command after --" >&2; exit 2; }
  if [ -f "$COPY/follow.pid" ] && [ ! -f "$status" ] && kill -0 "$(cat "$COPY/follow.pid")" 2>/dev/null; then
    echo "error: a command is already running in $COPY (pid $(cat "$COPY/follow.pid")): poll it" >&2; exit 2
  fi
  rm -rf "$COPY" && mkdir -p "$COPY"   # a fresh copy: nothing of an earlier run's files is taken for this one's
  tar c --exclude=./.gpu --exclude=./.git . | tar x -C "$COPY"   # .gpu: the carried bundle, unpacked elsewhere
  rm -f "$status"
  # The exit status is written when the command ends: `poll` tells a finished run from a lost one.
  cd "$COPY" || exit 2
  setsid nohup bash -c '"$@" > follow.log 2>&1; echo $? > follow.status' follow "$@" < /dev/null > /dev/null 2>&1 &
  echo $! > "$COPY/follow.pid"
  sleep 1
fi

[ -f "$COPY/follow.pid" ] || { echo "error: nothing was started in $COPY (run start first)" >&2; exit 2; }
end=$((SECONDS + seconds))
while [ ! -f "$status" ] && [ $SECONDS -lt $end ]; do sleep 1; done
echo "=== $log"; tail -n 30 "$log" 2>/dev/null | cut -c1-400
newest=$(cd "$COPY" && find . -name '*.log' -newer "$COPY/follow.pid" ! -name follow.log -printf '%T@ %p\n' 2>/dev/null \
         | sort -n | tail -1 | cut -d' ' -f2-)
[ -z "$newest" ] || { echo "=== $newest"; tail -n 15 "$COPY/$newest" | cut -c1-400; }
# shellcheck disable=SC2086  # FILES are globs, expanded under COPY; one that matches nothing is left out
(cd "$COPY" && tar czf "$OUT/follow.tgz" follow.log $(for f in $files; do [ -e "$f" ] && echo "$f"; done | sort -u))
if [ -f "$status" ]; then echo "finished (exit $(cat "$status"))"; else echo "running"; fi
