#!/usr/bin/env bash
# baton's parser against rsip 0.4 on the benchmark messages, in instructions per parse
# counted by callgrind: the same numbers on a busy machine as on an idle one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
command -v valgrind >/dev/null || { echo "valgrind not found: apt-get install -y valgrind" >&2; exit 2; }
cargo build --quiet --release --example parse_loop --manifest-path "$root/Cargo.toml"
bin=$root/target/release/examples/parse_loop
n=20000
count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$@" 2>&1 | awk '/Collected/ {print $4}'; }
base=$(count ok none $n)
for m in refer notify invite ok; do
  ours=$(( ($(count "$m" baton $n) - base) / n ))
  theirs=$(( ($(count "$m" rsip $n) - base) / n ))
  printf '%-7s baton %6d  rsip %6d  instructions per parse: %s x\n' "$m" "$ours" "$theirs" \
    "$(awk -v a="$theirs" -v b="$ours" 'BEGIN { printf "%.1f", a / b }')"
done
