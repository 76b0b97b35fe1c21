#!/usr/bin/env bash
# baton's performance on this machine, in one go (a benchmark, not a test):
#   1. the SIPp carrier at 1,000 calls/s against baton on one core: CPU µs per transfer
#   2. `baton load` at rising rates, baton and the generator each pinned to a core:
#      throughput, failures, latency and CPU µs per transfer
#   3. 100,000 calls parked at once (answered, waiting before the REFER): memory per call
# Hooks are off: this measures SIP and the engine (the hook worker is measured apart).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cargo build --quiet --release --manifest-path "$root/Cargo.toml" || exit 2
bin=$root/target/release/baton
tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
stop_baton() { # pid
  kill -TERM "$1" 2>/dev/null
  while kill -0 "$1" 2>/dev/null; do sleep 0.1; done
}
start_baton() { # port app [flags]
  local port=$1 app=$2; shift 2
  RUST_LOG=warn taskset -c 0 "$bin" serve --listen "udp:127.0.0.1:$port" --app "$app" "$@" >/dev/null 2>&1 &
  sleep 0.3
  pgrep -f "listen udp:127.0.0.1:$port" | head -1
}
echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

echo "== 1. SIPp carrier, 10,000 calls at 1,000/s"
if command -v sipp >/dev/null; then
  pid=$(start_baton 16700 "$here/apps/transfer.json")
  work=$(mktemp -d)
  (cd "$work" && taskset -c 1 sipp 127.0.0.1:16700 -sf "$here/sipp/happy.xml" -m 10000 -r 1000 -l 5000 -i 127.0.0.1 -p 16701 \
      -buff_size 4194304 -timeout 60s -timeout_error -nostdin >/dev/null 2>&1)
  rc=$?
  ticks=$(cpu_ticks "$pid"); stop_baton "$pid"; rm -rf "$work"
  echo "sipp exit $rc; baton CPU $(( ticks * 1000000 / tck / 10000 )) µs per transfer"
else
  echo "sipp not installed (apt-get install sip-tester)"
fi

echo "== 2. baton load at rising rates, 5 s each"
port=16710
for rate in 1000 2000 5000 10000 12500 15000 20000; do
  port=$((port + 1))
  pid=$(start_baton "$port" "$here/apps/transfer.json")
  out=$(taskset -c 1 "$bin" load --target "127.0.0.1:$port" --rate "$rate" --duration 5 2>/dev/null)
  ticks=$(cpu_ticks "$pid"); stop_baton "$pid"
  completed=$(echo "$out" | head -1 | awk '{print $4}')
  failed=$(echo "$out" | head -1 | awk '{print $9}')
  echo "rate $rate: completed $completed failed $failed, $(( ticks * 1000000 / tck / (completed > 0 ? completed : 1) )) µs CPU per transfer; $(echo "$out" | grep -E '^(transfers|latency)' | tr '\n' ' ')"
done

echo "== 3. 100,000 parked calls"
pid=$(start_baton 16720 "$here/apps/park.json" --max-calls 200000)
before=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
taskset -c 1 timeout 14 "$bin" load --target 127.0.0.1:16720 --rate 10000 --calls 100000 >/dev/null 2>&1 &
sleep 12
after=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
kill -9 "$pid"
echo "resident before ${before} KiB, with 100,000 parked calls ${after} KiB: $(( (after - before) * 1024 / 100000 )) bytes per call"
