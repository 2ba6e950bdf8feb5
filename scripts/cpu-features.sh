#!/usr/bin/env bash
# The llama.cpp build options (GGML_*, which llama-cpp-sys-2's build script
# passes to CMake) for this machine's x86-64 CPU beyond the AVX2 baseline
# llama-cpp-2 builds for: AVX-512 and VNNI where the CPU has them. This is
# what llama.cpp's own default build (GGML_NATIVE) gets, without AMX, whose
# kernel crashed at the first decode on a CPU that has it (the kernel did
# not grant the tile state). Prints nothing elsewhere: other CPUs keep
# llama-cpp-2's defaults.
set -euo pipefail
[[ "$(uname -sm)" == "Linux x86_64" && -r /proc/cpuinfo ]] || exit 0
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
has() { for f in "$@"; do [[ "$flags" == *" $f "* ]] || return 1; done; }
out=()
if has avx512f avx512cd avx512vl avx512dq avx512bw; then
    out+=(GGML_AVX512=ON)
    has avx512vbmi && out+=(GGML_AVX512_VBMI=ON)
    has avx512_vnni && out+=(GGML_AVX512_VNNI=ON)
    has avx512_bf16 && out+=(GGML_AVX512_BF16=ON)
fi
has avx_vnni && out+=(GGML_AVX_VNNI=ON)
echo "${out[@]}"
