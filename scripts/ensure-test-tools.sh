#!/usr/bin/env bash
# Install the Debian packages the test suite drives, when they are missing:
#   chromium    — browser tests (Playwright launches /usr/bin/chromium, never its own build)
#   asciinema   — asciicast fixtures for the terminal-recording tests
#   bsdutils    — util-linux `script`/`scriptreplay` for typescript round trips
# Runs unattended (CI has no stdin); uses sudo only when not already root.
set -euo pipefail

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v asciinema >/dev/null 2>&1 || missing+=(asciinema)
command -v scriptreplay >/dev/null 2>&1 || missing+=(bsdutils)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
else
    echo "error: missing ${missing[*]} and neither root nor sudo is available to install them" >&2
    exit 1
fi

echo "Installing test tools: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
