#!/usr/bin/env bash
# Refresh the vendored 3Dmol.js viewer (src/dplm2/evaluate/static/) from the npm package `3dmol`.
# The report's 3D views embed it inline so that results/report.html works offline as one file.
#   tools/update_3dmol.sh 2.5.5
# then put the printed sha256 into dplm2/evaluate/views.py (VIEWER_SHA256, VIEWER_VERSION).
set -euo pipefail
version=${1:?usage: tools/update_3dmol.sh VERSION}
dest="$(cd "$(dirname "$0")/.." && pwd)/src/dplm2/evaluate/static"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "3dmol@$version" >/dev/null && tar xzf "3dmol-$version.tgz")
cp "$tmp/package/build/3Dmol-min.js" "$dest/3Dmol-min.js"
cat "$tmp/package/LICENSE" "$tmp/package/build/3Dmol-min.js.LICENSE.txt" > "$dest/3Dmol-LICENSE.txt"
sha256sum "$dest/3Dmol-min.js"
