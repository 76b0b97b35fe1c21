#!/usr/bin/env bash
# Rebuilds fuzz/seeds/ from real traffic: every SIPp scenario in perf/sipp is run for one
# call against baton with message tracing, and each captured message becomes a seed (the
# datagrams of one call, NUL-separated, seed the engine target).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --quiet --release --manifest-path "$root/Cargo.toml"
bin="$root/target/release/baton"
rm -rf "$root/fuzz/seeds/parse" "$root/fuzz/seeds/engine"
mkdir -p "$root/fuzz/seeds/parse" "$root/fuzz/seeds/engine"
port=17000
for xml in "$root"/perf/sipp/*.xml; do
  name=$(basename "$xml" .xml)
  port=$((port + 2))
  case $name in
    cancel|hook_down) app=(--call-hook "http://127.0.0.1:1/call") ;;
    *) app=(--app "$root/perf/sipp/apps/$name.json" --hook-base "http://127.0.0.1:1/") ;;
  esac
  RUST_LOG=error "$bin" serve --listen "udp:127.0.0.1:$port" "${app[@]}" --dead-letter "$work/dl" 2>/dev/null &
  pid=$!
  sleep 0.3
  (cd "$work" && sipp "127.0.0.1:$port" -sf "$xml" -m 1 -i 127.0.0.1 -p $((port + 1)) -trace_msg \
      -message_file "$work/$name.msgs" -timeout 20s -nostdin >/dev/null 2>&1) || true
  kill -TERM $pid; wait $pid || true
  python3 - "$work/$name.msgs" "$root/fuzz/seeds" "$name" <<'PY'
import re, sys
log, out, name = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(log, encoding="latin-1").read()
# Each entry: a dashed timestamp line, a "UDP message sent/received" line, a blank line, the message.
parts = re.split(r"-{10,} [^\n]*\n[^\n]*(?:sent|received)[^\n]*:\n\n", text)
def tidy(p):
    m = p.rstrip("\n").replace("\r\n", "\n").replace("\n", "\r\n") + "\r\n"
    # A message without a body ends with its blank line.
    return m if "\r\n\r\n" in m else m + "\r\n"
messages = [tidy(p) for p in parts if p.strip()]
for i, m in enumerate(messages):
    # Messages end with their blank line; SIPp's log adds line breaks after bodies.
    open(f"{out}/parse/{name}-{i:02}", "wb").write(m.encode("latin-1"))
open(f"{out}/engine/{name}", "wb").write(b"\0".join(b"\x02" + m.encode("latin-1") for m in messages))
PY
done
ls "$root/fuzz/seeds/parse" | wc -l
