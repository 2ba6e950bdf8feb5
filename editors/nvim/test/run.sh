#!/usr/bin/env bash
# Headless Neovim test of locode with the real model.
#   editors/nvim/test/run.sh            # uses target/release/locode
#   LOCODE_BIN=/path/to/locode NVIM=/path/to/nvim editors/nvim/test/run.sh
# The last line of output is "N passed, M failed"; exit status 0 only if all passed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
nvim="${NVIM:-nvim}"
if ! command -v "$nvim" >/dev/null 2>&1; then
  echo "error: Neovim not found ('$nvim'); install it (Debian/Ubuntu: sudo apt-get install -y neovim; 0.11: make test-deps) or set NVIM" >&2
  exit 2
fi
bin="${LOCODE_BIN:-$root/target/release/locode}"
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
if [ ! -x "$bin" ]; then
  echo "error: locode binary not found at $bin (cargo build --release, or set LOCODE_BIN)" >&2
  exit 2
fi
echo "$("$nvim" --version | head -n1), locode: $bin"
export LOCODE_BIN="$bin" LOCODE_NVIM_PLUGIN_DIR="$root"
# -i NONE: no shada; -n: no swap files; stdin from /dev/null so the editor never
# waits for input. The script quits Neovim itself; the trailing "cquit 3" is
# only reached when the script could not even run (a Lua error), and the
# timeout guards against a hang.
to=()
if command -v timeout >/dev/null 2>&1; then to=(timeout "${LOCODE_NVIM_TEST_TIMEOUT:-600}"); fi
set +e
"${to[@]}" "$nvim" --headless -u NONE -i NONE -n \
  -c "luafile $here/test_locode.lua" -c "cquit 3" </dev/null
rc=$?
set -e
case $rc in
  0) ;;
  3) echo "error: the test script did not run to the end (Lua error above)" >&2 ;;
  124) echo "error: timed out" >&2 ;;
esac
exit $rc
