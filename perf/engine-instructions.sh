#!/usr/bin/env bash
# The engine's instructions per whole transfer (INVITE to the 200 for baton's BYE), against
# the load generator's sans-IO carrier in memory, counted by callgrind inside the engine's
# entry points only: the same number on a busy machine as on an idle one. The entry points
# are named exactly: a toggle also fires on a pattern's closures (`handle_*` matches
# `handle_datagram::{{closure}}`), which switched counting off inside them.
#   perf/engine-instructions.sh [N]     (hooks off, then on: eventHook x3 + actionHook)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
command -v valgrind >/dev/null || { echo "valgrind not found: apt-get install -y valgrind" >&2; exit 2; }
cargo build --quiet --release --example transfer_loop --manifest-path "$root/Cargo.toml"
bin=$root/target/release/examples/transfer_loop
n=${1:-20000}
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    --toggle-collect='baton_proto::engine::Engine::handle_receive' --toggle-collect='baton_proto::engine::Engine::handle_timeout' \
    --toggle-collect='baton_proto::engine::Engine::handle_hook_reply' --toggle-collect='baton_proto::engine::Engine::poll_output' \
    "$bin" "$@" 2>&1 | awk '/Collected/ {print $4}'
}
for hooks in off hooks; do
  total=$(count "$n" "$hooks")
  printf 'hooks %-5s engine instructions per transfer: %d\n' "${hooks/hooks/on}" $(( total / n ))
done
