#!/usr/bin/env bash
# Builds llama.cpp OUTSIDE the sparq repository, for side-by-side checks
# (scripts/llamacpp/perplexity_check.sh) and comparisons with llama.cpp's
# quantizers. Nothing is downloaded here: the llama.cpp sources come from a
# path you give (a git directory / clone, or an unpacked source tree).
#
# Usage:
#   scripts/llamacpp/build.sh --git-dir PATH [--commit REV] [--src DIR] [--build DIR] [--jobs N]
#   scripts/llamacpp/build.sh --src DIR [--build DIR] [--jobs N]      # DIR already holds the sources
#
# Defaults: --commit c392e5094deaf2d1a7c18683214f007fad3fe42b (llama.cpp build 4748, the
# commit shared/data/*/reference/llamacpp.json was measured with), --src /work/llamacpp-src,
# --build /work/llamacpp-build, --jobs $(nproc).
# Binaries end up in BUILD/bin: llama-perplexity llama-bench llama-quantize llama-cli
# llama-imatrix llama-tokenize.
set -euo pipefail

COMMIT=c392e5094deaf2d1a7c18683214f007fad3fe42b
GIT_DIR_IN=""
SRC=/work/llamacpp-src
BUILD=/work/llamacpp-build
JOBS=$(nproc)

while [[ $# -gt 0 ]]; do
    case "$1" in
        --git-dir) GIT_DIR_IN=$2; shift 2 ;;
        --commit) COMMIT=$2; shift 2 ;;
        --src) SRC=$2; shift 2 ;;
        --build) BUILD=$2; shift 2 ;;
        --jobs) JOBS=$2; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

case "$(realpath -m "$SRC")/" in
    "$(realpath -m "$(dirname "$0")/../..")"/*) echo "build.sh: --src must be outside the sparq repository" >&2; exit 2 ;;
esac

if [[ -n "$GIT_DIR_IN" ]]; then
    # A bare mirror or a clone: export the wanted commit's tree (no network).
    if [[ -d "$GIT_DIR_IN/.git" ]]; then GIT_DIR_IN="$GIT_DIR_IN/.git"; fi
    FULL=$(git --git-dir="$GIT_DIR_IN" rev-parse --verify "$COMMIT^{commit}")
    if [[ -f "$SRC/.sparq-llamacpp-commit" && "$(cat "$SRC/.sparq-llamacpp-commit")" == "$FULL" ]]; then
        echo "sources of $FULL already in $SRC"
    else
        rm -rf "$SRC"
        mkdir -p "$SRC"
        # models/ggml-vocab-*.gguf are test vocabularies (large, absent from shallow or
        # partial mirrors); the tools built here do not need them.
        git --git-dir="$GIT_DIR_IN" archive --format=tar "$FULL" -- . ':(exclude)models/ggml-vocab-*.gguf' \
            | tar -x -C "$SRC"
        echo "$FULL" > "$SRC/.sparq-llamacpp-commit"
        echo "exported llama.cpp $FULL into $SRC"
    fi
elif [[ ! -f "$SRC/CMakeLists.txt" ]]; then
    echo "build.sh: $SRC holds no llama.cpp sources; pass --git-dir PATH (a llama.cpp clone or mirror)" >&2
    exit 2
fi

# LLAMA_CURL=OFF: no network code. GGML_NATIVE=ON: tuned for this CPU (the binaries are
# for local comparisons only). An exported tree has no git metadata, so llama.cpp prints
# "build 0 (unknown)"; the commit built is recorded in SRC/.sparq-llamacpp-commit.
BUILD_COMMIT=$(cut -c1-8 "$SRC/.sparq-llamacpp-commit" 2>/dev/null || echo unknown)
cmake -S "$SRC" -B "$BUILD" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON \
    -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_SERVER=OFF \
    -DBUILD_SHARED_LIBS=OFF
nice -n 10 cmake --build "$BUILD" -j "$JOBS" --target \
    llama-perplexity llama-bench llama-quantize llama-cli llama-imatrix llama-tokenize
echo "built llama.cpp ${BUILD_COMMIT} in $BUILD/bin"
