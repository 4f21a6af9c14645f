#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests when it is missing. Playwright drives it through
# executable_path=/usr/bin/chromium; `playwright install` (which downloads its own browser) is not
# used.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "Chromium is missing at $CHROMIUM and apt-get is not available: install Debian's 'chromium' package" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "installing chromium needs root (or sudo)" >&2; exit 1; }
  SUDO="sudo"
fi
echo "installing chromium (apt-get)"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
[ -x "$CHROMIUM" ] || { echo "chromium was installed but $CHROMIUM is not there" >&2; exit 1; }
