#!/usr/bin/env bash
# baton's performance on this machine, in one go (a benchmark, not a test):
#   1. the SIPp carrier at 1,000 calls/s against baton (one shard, one core), against SIPp
#      playing the engine's side (sipp/engine/transfer-engine.xml) and against the stateless
#      C floor (c/minimal-engine.c): CPU µs per transfer
#   2. `baton load` at rising rates, baton (one shard) and the generator each pinned to a
#      core: throughput, failures, latency and CPU µs per transfer, on each I/O backend,
#      the C floor the same way (what this machine allows on the day), then each backend
#      again with coalescing off (--coalesce-us 0)
#   3. the same with hooks on: four per transfer, batched, to the generator's hook sink
#   4. 100,000 calls parked at once (answered, waiting before the REFER): memory per call
#   5. over TCP and TLS against UDP
#   6. across a veth pair (root): --io xdp against io_uring, epoll and the C floor (xdp.sh)
# IO=uring|epoll picks the backend of parts 1, 3 and 4 (default: auto).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cargo build --quiet --release --manifest-path "$root/Cargo.toml" || exit 2
bin=$root/target/release/baton
floor=$(mktemp -d)/minimal-engine
trap 'rm -rf "$(dirname "$floor")"' EXIT
cc -O2 -o "$floor" "$here/c/minimal-engine.c" || exit 2
tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
stop_baton() { # pid
  kill -TERM "$1" 2>/dev/null
  while kill -0 "$1" 2>/dev/null; do sleep 0.1; done
}
start_baton() { # port app [flags]
  local port=$1 app=$2; shift 2
  # The load generator is one source at up to 18,000 calls/s: the per-source checks run and admit it.
  RUST_LOG=warn taskset -c 0 "$bin" serve --listen "udp:127.0.0.1:$port" --app "$app" --shards 1 --pin false \
    --source-rate 1000000 --source-burst 1000000 --source-unconfirmed 1000000 \
    --io "${IO:-auto}" "$@" >/dev/null 2>&1 &
  sleep 0.3
  pgrep -f "listen udp:127.0.0.1:$port" | head -1
}
echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

echo "== 1. SIPp carrier, 10,000 calls at 1,000/s: baton, then SIPp as the engine"
if command -v sipp >/dev/null; then
  work=$(mktemp -d)
  carrier() { # port
    (cd "$work" && taskset -c 1 sipp "127.0.0.1:$1" -sf "$here/sipp/happy.xml" -m 10000 -r 1000 -l 5000 -i 127.0.0.1 \
        -p $(($1 + 1)) -buff_size 4194304 -timeout 60s -timeout_error -nostdin >/dev/null 2>&1)
  }
  pid=$(start_baton 16700 "$here/apps/transfer.json")
  carrier 16700; rc=$?
  ticks=$(cpu_ticks "$pid"); stop_baton "$pid"
  echo "baton: sipp exit $rc; CPU $(( ticks * 1000000 / tck / 10000 )) µs per transfer"
  # At this rate the default coalescing (200 µs) would gather fewer than two datagrams a
  # wait, so it stays off; gathering for 2 ms trades that much latency per message for CPU.
  pid=$(start_baton 16706 "$here/apps/transfer.json" --coalesce-us 2000)
  carrier 16706; rc=$?
  ticks=$(cpu_ticks "$pid"); stop_baton "$pid"
  echo "baton --coalesce-us 2000: sipp exit $rc; CPU $(( ticks * 1000000 / tck / 10000 )) µs per transfer"
  (cd "$work" && taskset -c 0 sipp -sf "$here/sipp/engine/transfer-engine.xml" -i 127.0.0.1 -p 16702 \
      -buff_size 4194304 -nostdin -bg >/dev/null 2>&1)
  sleep 0.3
  pid=$(pgrep -f "transfer-engine.xml" | head -1)
  carrier 16702; rc=$?
  ticks=$(cpu_ticks "$pid"); kill "$pid"
  echo "SIPp as the engine: sipp exit $rc; CPU $(( ticks * 1000000 / tck / 10000 )) µs per transfer"
  taskset -c 0 "$floor" 127.0.0.1 16704 & pid=$!
  sleep 0.3
  carrier 16704; rc=$?
  ticks=$(cpu_ticks "$pid"); kill "$pid"; rm -rf "$work"
  echo "C floor: sipp exit $rc; CPU $(( ticks * 1000000 / tck / 10000 )) µs per transfer"
else
  echo "sipp not installed (apt-get install sip-tester)"
fi

# Time from an event in a call to its hook's 2xx, from baton's /metrics histogram: the mean,
# and the bucket bounds that hold the median and the 99th percentile.
hook_ack() { # metrics port
  curl -s "http://127.0.0.1:$1/metrics" | awk '
    /^baton_hook_ack_seconds_bucket/ { split($1, a, "\""); le[n] = a[2]; c[n++] = $2 }
    /^baton_hook_ack_seconds_sum/ { sum = $2 }
    /^baton_hook_ack_seconds_count/ { count = $2 }
    END { if (!count) exit
          for (i = 0; i < n; i++) { if (!p50 && c[i] >= count / 2) p50 = le[i]; if (!p99 && c[i] >= count * 0.99) p99 = le[i] }
          printf "hook ack: mean %.1f ms, p50 <= %s s, p99 <= %s s over %d events\n", 1000 * sum / count, p50, p99, count }'
}

load_at() { # label port rate app [baton flags]
  local label=$1 port=$2 rate=$3 app=$4; shift 4
  local sink=()
  [ "$app" = "$here/apps/transfer-hooks.json" ] && sink=(--hook-sink "127.0.0.1:$((port + 1000))")
  if [ "$label" = "C floor" ]; then
    taskset -c 0 "$floor" 127.0.0.1 "$port" & pid=$!
    sleep 0.3
  else
    pid=$(start_baton "$port" "$app" "$@")
  fi
  out=$(taskset -c 1 "$bin" load --target "127.0.0.1:$port" --rate "$rate" --duration 5 "${sink[@]}" 2>/dev/null)
  ticks=$(cpu_ticks "$pid")
  [ -n "${METRICS:-}" ] && out="$out
$(hook_ack "$METRICS")"
  stop_baton "$pid"
  completed=$(echo "$out" | head -1 | awk '{print $4}')
  failed=$(echo "$out" | head -1 | awk '{print $9}')
  echo "$label rate $rate: completed $completed failed $failed, $(( ticks * 1000000 / tck / (completed > 0 ? completed : 1) )) µs CPU per transfer; $(echo "$out" | grep -E '^(transfers|latency|hooks|hook ack)' | tr '\n' ' ')"
}

echo "== 2. baton load at rising rates, 5 s each, hooks off (coalescing at its default, then off)"
port=16710
for io in epoll uring "C floor" "epoll no-coalesce" "uring no-coalesce"; do
  for rate in 1000 5000 10000 12500 15000 18000; do
    port=$((port + 2))
    case $io in
      *no-coalesce) IO=${io% *} load_at "$io" "$port" "$rate" "$here/apps/transfer.json" --coalesce-us 0 ;;
      *) IO=$io load_at "$io" "$port" "$rate" "$here/apps/transfer.json" ;;
    esac
  done
done

echo "== 3. hooks on: eventHook x3 + actionHook per transfer, batched to the load's sink"
for rate in 2000 4000 8000; do
  port=$((port + 2))
  hp=$((port + 1000))
  METRICS=$((port + 1500)) load_at "hooks" "$port" "$rate" "$here/apps/transfer-hooks.json" \
    --hook-base "http://127.0.0.1:$hp/" --hook-batch-url "http://127.0.0.1:$hp/batch" --metrics "127.0.0.1:$((port + 1500))"
done

echo "== 4. 100,000 parked calls"
pid=$(start_baton 16720 "$here/apps/park.json" --max-calls 200000)
before=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
taskset -c 1 timeout 14 "$bin" load --target 127.0.0.1:16720 --rate 10000 --calls 100000 >/dev/null 2>&1 &
sleep 12
after=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
kill -9 "$pid"
echo "resident before ${before} KiB, with 100,000 parked calls ${after} KiB: $(( (after - before) * 1024 / 100000 )) bytes per call"

echo "== 5. over TCP and TLS against UDP, same run (hooks off, one shard, one connection)"
tls_dir=$(dirname "$floor")
# A CA and a certificate for 127.0.0.1 signed by it (a self-signed leaf is refused as a CA).
make_cert() {
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -days 1 -subj /CN=baton-perf-ca -keyout "$tls_dir/ca.key" -out "$tls_dir/ca.pem" &&
    openssl req "${ec[@]}" -subj /CN=127.0.0.1 -keyout "$tls_dir/key.pem" -out "$tls_dir/cert.csr" &&
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$tls_dir/ext" &&
    openssl x509 -req -in "$tls_dir/cert.csr" -CA "$tls_dir/ca.pem" -CAkey "$tls_dir/ca.key" -CAcreateserial \
      -days 1 -extfile "$tls_dir/ext" -out "$tls_dir/cert.pem"
}
if make_cert >/dev/null 2>&1; then
  transports=(udp tcp tls)
else
  echo "NOTE: openssl not found: TLS skipped"
  transports=(udp tcp)
fi
streams_at() { # transport port rate
  local transport=$1 port=$2 rate=$3
  RUST_LOG=warn taskset -c 0 "$bin" serve --listen "$transport:127.0.0.1:$port" --app "$here/apps/transfer.json" \
    --tls-cert "$tls_dir/cert.pem" --tls-key "$tls_dir/key.pem" --shards 1 --pin false --io "${IO:-auto}" \
    --source-rate 1000000 --source-burst 1000000 --source-unconfirmed 1000000 >/dev/null 2>&1 &
  local pid=$!
  sleep 0.3
  local out completed failed ticks
  out=$(taskset -c 1 "$bin" load --target "127.0.0.1:$port" --transport "$transport" --tls-ca "$tls_dir/ca.pem" \
    --rate "$rate" --duration 5 2>/dev/null)
  ticks=$(cpu_ticks "$pid")
  stop_baton "$pid"
  completed=$(echo "$out" | head -1 | awk '{print $4}')
  failed=$(echo "$out" | head -1 | awk '{print $9}')
  echo "$transport rate $rate: completed $completed failed $failed, $(( ticks * 1000000 / tck / (completed > 0 ? completed : 1) )) µs CPU per transfer; $(echo "$out" | grep -E '^(transfers|latency)' | tr '\n' ' ')"
}
port=16900
for rate in 5000 10000 15000; do
  for transport in "${transports[@]}"; do
    port=$((port + 2))
    streams_at "$transport" "$port" "$rate"
  done
done


echo "== 6. across a veth pair: --io xdp against io_uring, epoll and the C floor (root only)"
if [ "$(id -u)" = 0 ]; then
  "$here/xdp.sh" 1000 5000 10000 15000 18000
else
  echo "skipped: network namespaces and XDP need root"
fi
