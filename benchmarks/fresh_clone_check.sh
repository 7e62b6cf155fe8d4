#!/usr/bin/env bash
# Checked as a new user would: clone this repo into a temporary folder (with ../shared beside
# it, as CI has) and run the README's two commands exactly as written, timing each.
# Usage: bash benchmarks/fresh_clone_check.sh [REPO_DIR]   (default: this repo)
set -euo pipefail
repo=$(cd "${1:-$(dirname "$0")/..}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ln -s "$repo/../shared" "$work/shared"
git clone --quiet "$repo" "$work/finsent"
cd "$work/finsent"
for command in "make demo" "make test"; do
  grep -qF "$command" README.md || { echo "README no longer shows '$command'"; exit 1; }
  start=$(date +%s)
  $command
  echo "== '$command' passed in $(( $(date +%s) - start )) s on a fresh clone"
done
