#!/usr/bin/env bash
# Install the external tools some tests compare against or render in, with apt-get:
#   TMalign  (Debian tm-align)  TM-score agreement of tmtools with the TM-align binary
#   mmseqs   (Debian mmseqs2)   the process stage's MMseqs2 clustering split
#   chromium (Debian chromium)  the report's 3D views rendered in a headless browser
# Without them those tests skip (saying which tool is missing); .ci/run runs this first and then
# the tests with DPLM2_REQUIRE_TOOLS=1, so in CI a missing tool fails instead of skipping.
# Idempotent: installs only what is missing.  Exit 0 installed (or nothing to do); 3 missing
# tools could not be installed (not root, no apt-get, or apt-get failed).
set -euo pipefail

declare -A PACKAGE=([TMalign]=tm-align [mmseqs]=mmseqs2 [chromium]=chromium)
missing=()
for exe in TMalign mmseqs chromium; do
    command -v "$exe" >/dev/null || missing+=("${PACKAGE[$exe]}")
done
if ((${#missing[@]} == 0)); then
    echo "install_test_tools: TMalign, mmseqs and chromium already installed" >&2
    exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    echo "install_test_tools: cannot install ${missing[*]} (needs root and apt-get)" >&2
    exit 3
fi
echo "install_test_tools: apt-get install ${missing[*]}" >&2
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null; }; then
    echo "install_test_tools: apt-get could not install ${missing[*]}" >&2
    exit 3
fi
