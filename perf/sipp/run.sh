#!/usr/bin/env bash
# Plays the carrier with SIPp against a real baton for every scenario in this folder and
# checks each call's SIP flow (SIPp's verdict) and every hook it produced (hooks.py).
#
#   perf/sipp/run.sh [CALLS] [RATE] [SCENARIO...]
#
# Defaults: 20 calls per scenario at 10 calls/s. The acceptance run is `run.sh 1000 100 happy`.
# TRANSPORT=tcp plays them over one TCP connection (SIPp's -t t1) to a tcp: listener.
# XDP=1 runs baton with --io xdp in a network namespace of its own and SIPp in another,
# joined by a veth pair (needs root; the hook server runs beside baton).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
calls=${1:-20}
rate=${2:-10}
shift $(( $# > 2 ? 2 : $# ))
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(happy refused busy no_notify notify_first far_end_bye compact headers cancel hook_down)

command -v sipp >/dev/null || { echo "sipp not found: apt-get install -y sip-tester" >&2; exit 2; }
bin=${BATON_BIN:-$root/target/release/baton}
if [ -z "${BATON_BIN:-}" ]; then
  cargo build --quiet --release --manifest-path "$root/Cargo.toml" || exit 2
fi

work=$(mktemp -d)
in_a=() in_b=() ip_a=127.0.0.1 ip_b=127.0.0.1 io=()
if [ -n "${XDP:-}" ]; then
  a=baton-sipp-a-$$ b=baton-sipp-b-$$
  ip netns add "$a" && ip netns add "$b" &&
    ip link add vsa numrxqueues 2 numtxqueues 2 netns "$a" type veth peer name vsb netns "$b" &&
    ip -n "$a" addr add 10.78.0.1/24 dev vsa && ip -n "$b" addr add 10.78.0.2/24 dev vsb &&
    ip -n "$a" link set vsa up && ip -n "$b" link set vsb up && ip -n "$a" link set lo up && ip -n "$b" link set lo up ||
    { echo "XDP=1: cannot make the network namespaces (root is needed)" >&2; exit 2; }
  in_a=(ip netns exec "$a") in_b=(ip netns exec "$b") ip_a=10.78.0.1 ip_b=10.78.0.2 io=(--io xdp:vsa)
fi
hook_port=${HOOK_PORT:-18080}
"${in_a[@]}" python3 "$here/hooks.py" serve "$hook_port" "$work/hooks.jsonl" &
hook_pid=$!
trap 'kill $hook_pid 2>/dev/null; rm -rf "$work"; [ -z "${XDP:-}" ] || { ip netns del "$a"; ip netns del "$b"; } 2>/dev/null' EXIT
sleep 0.3

transport=${TRANSPORT:-udp}
case $transport in
  udp) sipp_transport=u1 ;;
  tcp) sipp_transport=t1 ;;
  *) echo "TRANSPORT=$transport: udp or tcp (Debian's SIPp has no TLS)" >&2; exit 2 ;;
esac
failed=0
port=15060
for name in "${scenarios[@]}"; do
  port=$((port + 2))
  hooks="http://127.0.0.1:$hook_port/$name"
  case $name in
    cancel) app=(--call-hook "$hooks/slow-call") ;;
    hook_down) app=(--call-hook "http://127.0.0.1:1/call") ;;
    *) app=(--app "$here/apps/$name.json" --hook-base "$hooks/") ;;
  esac
  RUST_LOG=${RUST_LOG:-warn} "${in_a[@]}" "$bin" serve --listen "$transport:$ip_a:$port" "${io[@]}" "${app[@]}" \
    --call-status-hook "$hooks/status" --dead-letter "$work/$name.dead" 2>"$work/$name.baton.log" &
  baton_pid=$!
  sleep 0.3
  started=$(date +%s.%N)
  (cd "$work" && "${in_b[@]}" sipp "$ip_a:$port" -t "$sipp_transport" -sf "$here/$name.xml" -m "$calls" -r "$rate" -l 2000 \
      -i "$ip_b" -p $((port + 1)) -buff_size 4194304 -timeout 120s -timeout_error -nostdin \
      -trace_err -error_file "$work/$name.errors" >"$work/$name.sipp.log" 2>&1)
  sipp_rc=$?
  elapsed=$(echo "$(date +%s.%N) - $started" | bc)
  # utime + stime of baton, in clock ticks (fields 14 and 15 of /proc/PID/stat).
  ticks=$(awk '{print $14 + $15}' "/proc/$baton_pid/stat" 2>/dev/null || echo 0)
  cpu_us=$(( ticks * 1000000 / $(getconf CLK_TCK) ))
  kill -TERM $baton_pid
  wait $baton_pid
  baton_rc=$?
  python3 "$here/hooks.py" check "$name" "$work/hooks.jsonl" "$calls"
  hooks_rc=$?
  # Every hook must have been delivered, none dead-lettered.
  dead=$( [ -s "$work/$name.dead" ] && wc -l < "$work/$name.dead" || echo 0)
  if [ $sipp_rc -eq 0 ] && [ $hooks_rc -eq 0 ] && [ $baton_rc -eq 0 ] && [ "$dead" -eq 0 ]; then
    printf 'PASS %-13s %5d calls over %s%s in %6.1fs, baton CPU %d µs per call\n' "$name" "$calls" "$transport" "${XDP:+ (xdp)}" "$elapsed" $((cpu_us / calls))
  else
    failed=$((failed + 1))
    printf 'FAIL %-13s sipp=%d hooks=%d baton-exit=%d dead-lettered=%d\n' "$name" $sipp_rc $hooks_rc $baton_rc "$dead"
    { tail -n 20 "$work/$name.errors" 2>/dev/null; echo; } | sed "s/^/  sipp: /"
    tail -n 5 "$work/$name.baton.log" | sed 's/^/  baton: /'
  fi
done
echo "$(( ${#scenarios[@]} - failed )) passed, $failed failed"
[ $failed -eq 0 ]
