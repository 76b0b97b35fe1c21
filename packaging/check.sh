#!/usr/bin/env bash
# Builds the Debian package from target/release/baton and checks it: the files it installs,
# its conffiles, and its systemd unit (systemd-analyze verify, and an exposure score from
# systemd-analyze security of at most 3, "OK").
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || cargo install --quiet --locked cargo-deb
cargo deb --no-build --quiet >/dev/null
deb=$(ls -t target/debian/baton_*.deb | head -1)
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/bin/baton ./etc/baton/baton.toml ./etc/baton/transfer.json ./usr/lib/systemd/system/baton.service; do
  grep -qx -- "$f" <<<"$contents" || { echo "FAIL: $f is not in $deb"; exit 1; }
done
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
dpkg-deb -e "$deb" "$root/DEBIAN"
grep -qx /etc/baton/baton.toml "$root/DEBIAN/conffiles" || { echo "FAIL: /etc/baton/baton.toml is not a conffile"; exit 1; }
# The packaged configuration is one baton accepts.
"$root/usr/bin/baton" config --config "$root/etc/baton/baton.toml" --app "$root/etc/baton/transfer.json" >/dev/null
if command -v systemd-analyze >/dev/null; then
  # The unit as installed, its ExecStart pointed at the unpacked binary (nothing is installed here).
  mkdir -p "$root/check"
  sed "s|/usr/bin/baton|$root/usr/bin/baton|" "$root/usr/lib/systemd/system/baton.service" >"$root/check/baton.service"
  systemd-analyze verify "$root/check/baton.service"
  exposure=$(systemd-analyze security --offline=true "$root/check/baton.service" 2>/dev/null | awk '/Overall exposure level/ {print $(NF-2)}')
  awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 3.0) }' || { echo "FAIL: exposure $exposure, want at most 3.0"; exit 1; }
  echo "PASS debian package: $deb (systemd exposure $exposure)"
else
  echo "PASS debian package: $deb (NOTE: no systemd-analyze here: the unit was not verified)"
fi
