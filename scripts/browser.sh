#!/usr/bin/env bash
# The browser test of `workbench lab` drives Debian's Chromium: installed here where
# apt-get can (as root, e.g. CI and lab servers); elsewhere that test says how.
# Run by `make test` only: the demo needs no browser.
set -uo pipefail
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "installing Chromium (Debian package) for the JupyterLab browser test"
  apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; } \
    || echo "could not install Chromium; the browser test will be skipped" >&2
fi
