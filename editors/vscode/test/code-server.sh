#!/usr/bin/env bash
# The extension inside the real VS Code: installs the packaged .vsix into
# code-server, opens a workspace in Debian's Chromium (headless, driven by
# playwright-core) and checks what a person sees (test/code-server.test.js).
#   editors/vscode/test/code-server.sh
# Needs: `make test-deps` (chromium from apt; code-server and playwright-core
# from npm, in $LOCODE_VSCODE_TEST_DEPS, default ~/.cache/locode/vscode-test),
# Node 20, the locode binary (target/release/locode or LOCODE_BIN) and the model.
# Screenshots and logs go to $LOCODE_TEST_OUT (default target/vscode-e2e).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ext="$(cd "$here/.." && pwd)"
root="$(cd "$ext/../.." && pwd)"
deps="${LOCODE_VSCODE_TEST_DEPS:-$HOME/.cache/locode/vscode-test}"
fail() { echo "error: $*" >&2; exit 2; }
command -v node >/dev/null 2>&1 || fail "node not found; install Node.js 20 (Debian: apt-get install nodejs npm)"
[ -x "$deps/node_modules/.bin/code-server" ] || fail "code-server not found in $deps; run \`make test-deps\`"
[ -d "$deps/node_modules/playwright-core" ] || fail "playwright-core not found in $deps; run \`make test-deps\`"
chromium="${CHROMIUM:-/usr/lib/chromium/chromium}"
[ -x "$chromium" ] || fail "Chromium not found at $chromium; run \`make test-deps\` (apt-get install chromium)"
out="${LOCODE_TEST_OUT:-$root/target/vscode-e2e}"
rm -rf "$out"
mkdir -p "$out"
vsix="$("$ext/scripts/package.sh" | tail -1)"
export LOCODE_VSIX="$vsix" LOCODE_TEST_OUT="$out" CHROMIUM="$chromium"
export CODE_SERVER="$deps/node_modules/.bin/code-server"
export NODE_PATH="$deps/node_modules${NODE_PATH:+:$NODE_PATH}"
cd "$ext"
if ! node --test --test-reporter=spec "$@" test/code-server.test.js; then
  # The spec reporter lists the failed checks above; say where to look.
  {
    echo
    echo "FAILED: the VS Code test in code-server (editors/vscode/test/code-server.test.js); see the checks marked ✖ above."
    echo "Screenshots (FAILED-*.png for each failed check, last.png at the end), the LSP trace and code-server's log are in $out:"
    ls -1 "$out" | sed 's/^/  /'
  } >&2
  exit 1
fi
