#!/usr/bin/env bash
# Browser tests of the tokenmgr web page: Debian chromium (headless) + playwright-core from npm.
# Usage: tests/browser/run.sh   (env LM_BUILD_DIR: build with src/bin/tokenmgr, default build/release)
# Screenshots land in build/browser-artifacts/. Installs chromium (apt) and npm deps if missing;
# never downloads a browser build of its own.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
export LM_BUILD_DIR="${LM_BUILD_DIR:-build/release}"
if [[ ! -x "$LM_BUILD_DIR/src/bin/tokenmgr" ]]; then
  echo "tests/browser: no tokenmgr in $LM_BUILD_DIR (build it first, or set LM_BUILD_DIR)" >&2
  exit 1
fi
if [[ ! -x /usr/bin/chromium ]]; then
  if [[ $(id -u) -eq 0 ]]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "tests/browser: /usr/bin/chromium missing (apt-get install chromium)" >&2
    exit 1
  fi
fi
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if [[ ! -d "$here/node_modules/playwright-core" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
cd "$here"
exec node --test --test-concurrency=1 --test-reporter=spec ui.test.mjs console.test.mjs
