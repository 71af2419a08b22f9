#!/usr/bin/env bash
# Build llama.cpp's OpenAI-compatible `llama-server` into <repo>/.tools/bin from the llama.cpp tree
# vendored in the llama-cpp-python source distribution on PyPI (no wheel of the server exists for
# this platform, and the Hub is unreachable). Only the server target is built: about 6-10 minutes
# on 2 cores, once.
#
# Why: it is a real server that returns `top_logprobs`, so the judges' expected mode runs over HTTP
# against it (tests/llm/test_llama_server.py) and serves GGUF judges at llama.cpp's CPU speed.
#
# Idempotent: does nothing when the binary already exists and runs. Needs cmake and a C++ compiler
# (and ninja or make). Exits non-zero with a message naming what failed.
#
#   scripts/build_llama_server.sh
#   PYTHON=python3 scripts/build_llama_server.sh   # the Python whose pip downloads the sdist
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$REPO/.tools/bin"
LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi

say() { printf 'build_llama_server: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

if [[ -x "$BIN/llama-server" ]] && "$BIN/llama-server" --version >/dev/null 2>&1; then
  say "llama-server already in $BIN; nothing to do"
  exit 0
fi
command -v cmake >/dev/null || die "cmake is not installed"
command -v c++ >/dev/null || command -v g++ >/dev/null || die "no C++ compiler (c++ or g++)"
GENERATOR=()
if command -v ninja >/dev/null; then GENERATOR=(-G Ninja); fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
say "downloading llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION (source) for its llama.cpp tree"
"$PYTHON" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" \
  -d "$WORK" || die "pip could not download the llama-cpp-python sdist"
tar -xzf "$WORK"/llama_cpp_python-*.tar.gz -C "$WORK" --wildcards '*/vendor/llama.cpp/*' \
  || die "the sdist has no vendor/llama.cpp"
SRC="$(echo "$WORK"/llama_cpp_python-*/vendor/llama.cpp)"

say "building llama-server with $JOBS jobs (native CPU features, no curl/openssl, static)"
cmake -S "$SRC" -B "$WORK/build" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
  -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON >"$WORK/cmake.log" 2>&1 \
  || { tail -20 "$WORK/cmake.log" >&2; die "cmake configure failed"; }
cmake --build "$WORK/build" --target llama-server -j "$JOBS" >"$WORK/build.log" 2>&1 \
  || { tail -20 "$WORK/build.log" >&2; die "the build failed"; }
mkdir -p "$BIN"
install -m 0755 "$WORK/build/bin/llama-server" "$BIN/llama-server"
"$BIN/llama-server" --version >/dev/null 2>&1 || die "the built llama-server does not run"
say "built $BIN/llama-server"
