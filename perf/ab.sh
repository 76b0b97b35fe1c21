#!/usr/bin/env bash
# A/B two baton binaries on this noisy machine: alternating runs of `baton load` against
# each (one shard on core 0, the generator on core 1), so drift hits both alike. Prints CPU
# per transfer of every run, then each side's median.
#   perf/ab.sh OLD_BIN NEW_BIN [RATE] [PAIRS]
#   A_FLAGS / B_FLAGS: extra `serve` flags for each side (e.g. options one does not know).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
a=$1 b=$2 rate=${3:-10000} pairs=${4:-5}
tck=$(getconf CLK_TCK)
declare -A cpu
run() { # label bin flags port
  local label=$1 bin=$2 flags=$3 port=$4
  # shellcheck disable=SC2086
  RUST_LOG=warn taskset -c 0 "$bin" serve --listen "udp:127.0.0.1:$port" --app "$here/apps/transfer.json" \
    --shards 1 --pin false --io "${IO:-epoll}" $flags >/dev/null 2>&1 &
  local pid=$!
  sleep 0.3
  local out completed ticks
  out=$(taskset -c 1 "$b" load --target "127.0.0.1:$port" --rate "$rate" --duration 5 2>/dev/null | head -1)
  ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill -TERM "$pid"; wait "$pid" 2>/dev/null
  completed=$(echo "$out" | awk '{print $4}')
  local us=$(( ticks * 1000000 / tck / (completed > 0 ? completed : 1) ))
  cpu[$label]="${cpu[$label]:-} $us"
  echo "$label: $out; $us µs CPU per transfer"
}
port=17100
for ((i = 0; i < pairs; i++)); do
  run A "$a" "${A_FLAGS:-}" $((port += 2))
  run B "$b" "${B_FLAGS:-}" $((port += 2))
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
echo "median µs CPU per transfer at $rate/s: A $(echo "${cpu[A]}" | median), B $(echo "${cpu[B]}" | median)"
