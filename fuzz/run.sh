#!/usr/bin/env bash
# Runs every fuzz target over its seeds for a fixed number of runs with a fixed seed, so a
# CI run is reproducible. Longer runs: fuzz/run.sh SECONDS (no fixed seed, time-bounded).
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install --quiet cargo-fuzz
seconds=${1:-}
for spec in parse:300000 frame:200000 sipfrag:1000000 digest:1000000 document:150000 engine:20000 written:300000; do
  target=${spec%%:*} runs=${spec##*:}
  mkdir -p "corpus/$target"
  seeds=(); [ -d "seeds/$target" ] && seeds=("seeds/$target")
  if [ -n "$seconds" ]; then
    limits=(-max_total_time="$seconds")
  else
    limits=(-seed=1 -runs="$runs" -max_total_time=120)
  fi
  echo "fuzz $target"
  cargo fuzz run "$target" "corpus/$target" "${seeds[@]}" -- "${limits[@]}" -rss_limit_mb=2048 2>&1 | grep -E "^Done|ERROR|panicked" || true
  test -z "$(ls artifacts/"$target" 2>/dev/null)" || { echo "fuzz $target found a crash: fuzz/artifacts/$target"; exit 1; }
done
