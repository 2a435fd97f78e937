#!/usr/bin/env bash
# Builds the Debian package from an already-built tree and checks that it installs both executables,
# the desktop entry, the AppStream metadata and the icon under one application id.
set -euo pipefail
build_dir="$1"
app_id="$2"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
(cd "$build_dir" && cpack -G DEB -B "$out" >/dev/null)
deb=$(ls "$out"/*.deb)
listing=$(dpkg-deb -c "$deb")
for f in ./usr/bin/quantscope ./usr/bin/quantscope-cli \
         "./usr/share/applications/$app_id.desktop" \
         "./usr/share/metainfo/$app_id.metainfo.xml" \
         "./usr/share/icons/hicolor/scalable/apps/$app_id.svg"; do
  if ! grep -qF " $f" <<<"$listing"; then
    echo "missing from $(basename "$deb"): $f" >&2
    exit 1
  fi
done
dpkg-deb -f "$deb" Package Version Depends
echo "package ok: $(basename "$deb")"
