#!/usr/bin/env bash
# Debian's Chromium for the browser tests (tests/ui/test_browser.py drives /usr/bin/chromium through
# Playwright). Installed from the distribution's own repositories only, never downloaded from
# elsewhere; when that is not possible the browser tests skip with the reason, nothing else does.
set -uo pipefail
CHROMIUM=/usr/bin/chromium
[[ -x "$CHROMIUM" ]] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "browser.sh: no $CHROMIUM and no apt-get: the browser tests will be skipped" >&2
  exit 0
fi
if [[ $(id -u) == 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "browser.sh: no $CHROMIUM and no root or password-less sudo: the browser tests will be skipped" >&2
  exit 0
fi
echo "installing Debian's chromium (for the browser tests)"
if ! { "${as_root[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq chromium; } \
  >/tmp/ghl-s4s-apt-chromium.log 2>&1; then
  tail -n 20 /tmp/ghl-s4s-apt-chromium.log >&2
  echo "browser.sh: apt-get could not install chromium: the browser tests will be skipped" >&2
fi
exit 0
