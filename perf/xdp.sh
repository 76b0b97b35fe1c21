#!/usr/bin/env bash
# baton across a veth pair between two network namespaces (needs root): `--io xdp`,
# `--io uring`, `--io epoll` and the C floor over kernel sockets, one shard pinned to core 0,
# `baton load` in the other namespace on core 1, at rising rates, 5 s each. Prints CPU per
# transfer and what the generator saw; the highest rate with 0 failed is each one's ceiling.
#   perf/xdp.sh [RATES...]      (default 1000 5000 10000 15000 18000)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
rates=("$@"); [ ${#rates[@]} -gt 0 ] || rates=(1000 5000 10000 15000 18000)
cargo build --quiet --release --manifest-path "$root/Cargo.toml" || exit 2
bin=$root/target/release/baton
work=$(mktemp -d)
cc -O2 -o "$work/floor" "$here/c/minimal-engine.c" || exit 2
a=baton-perf-a-$$ b=baton-perf-b-$$
cleanup() { ip netns del "$a" 2>/dev/null; ip netns del "$b" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
# One queue each side: every datagram reaches shard 0, as on one core it should.
ip netns add "$a" && ip netns add "$b" &&
  ip link add vpa netns "$a" type veth peer name vpb netns "$b" &&
  ip -n "$a" addr add 10.81.0.1/24 dev vpa && ip -n "$b" addr add 10.81.0.2/24 dev vpb &&
  ip -n "$a" link set vpa up && ip -n "$b" link set vpb up ||
  { echo "cannot make the network namespaces (root is needed)" >&2; exit 2; }
tck=$(getconf CLK_TCK)
echo "machine: $(nproc) cores, $(uname -r); veth between two namespaces"
port=17000
for io in xdp uring epoll "C floor"; do
  for rate in "${rates[@]}"; do
    port=$((port + 2))
    if [ "$io" = "C floor" ]; then
      ip netns exec "$a" taskset -c 0 "$work/floor" 10.81.0.1 "$port" & pid=$!
    else
      flag=$io; [ "$io" = xdp ] && flag=xdp:vpa
      RUST_LOG=warn ip netns exec "$a" taskset -c 0 "$bin" serve --listen "udp:10.81.0.1:$port" \
        --app "$here/apps/transfer.json" --shards 1 --pin false --io "$flag" \
        --source-rate 1000000 --source-burst 1000000 --source-unconfirmed 1000000 >/dev/null 2>&1 & pid=$!
    fi
    sleep 0.5
    out=$(ip netns exec "$b" taskset -c 1 "$bin" load --target "10.81.0.1:$port" --bind 10.81.0.2:0 \
      --rate "$rate" --duration 5 2>/dev/null)
    ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    completed=$(echo "$out" | head -1 | awk '{print $4}')
    failed=$(echo "$out" | head -1 | awk '{print $9}')
    echo "$io rate $rate: completed ${completed:-0} failed ${failed:-?}, $(( ticks * 1000000 / tck / (${completed:-0} > 0 ? ${completed:-1} : 1) )) µs CPU per transfer; $(echo "$out" | grep -E '^(transfers|latency)' | tr '\n' ' ')"
  done
done
