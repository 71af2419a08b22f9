#!/usr/bin/env bash
# Build KenLM's `lmplz` (ARPA estimation) and `build_binary` (ARPA -> mmap-able binary) into
# <repo>/.tools/bin from the kenlm==0.3.0 source distribution on PyPI.
#
# Idempotent: does nothing when both binaries already exist and run. Needs a C++ compiler, cmake,
# make and the Boost program_options/system/thread/test headers; when any of them is missing and
# the script runs as root (or with password-less sudo), it runs `apt-get update` once and installs
# them. Exits non-zero with a message naming what failed.
#
#   scripts/build_kenlm_tools.sh            # build into .tools/bin
#   KENLM_MAX_ORDER=7 scripts/build_kenlm_tools.sh
#   PYTHON=python3 scripts/build_kenlm_tools.sh   # the Python whose pip downloads the sdist
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$REPO/.tools/bin"
KENLM_VERSION="${KENLM_VERSION:-0.3.0}"
KENLM_MAX_ORDER="${KENLM_MAX_ORDER:-6}"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi

say() { printf 'build_kenlm_tools: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

tools_work() {
  [[ -x "$BIN/lmplz" && -x "$BIN/build_binary" ]] || return 1
  # Both print their usage and exit 1 when run like this; a missing shared library (e.g. the Boost
  # runtime removed since the build) prints a loader error instead.
  local out
  out="$("$BIN/lmplz" --help 2>&1 || true)"
  [[ "$out" == *"Builds unpruned language models"* ]] || return 1
  out="$("$BIN/build_binary" 2>&1 || true)"
  [[ "$out" == *"sage"* ]] || return 1
}

if tools_work; then
  say "lmplz and build_binary already in $BIN; nothing to do"
  exit 0
fi

# --- build dependencies ---------------------------------------------------------------------------
APT_PACKAGES=(build-essential cmake libboost-program-options-dev libboost-system-dev
              libboost-thread-dev libboost-test-dev zlib1g-dev)

have_boost() {
  local inc
  for inc in /usr/include /usr/local/include; do
    [[ -f "$inc/boost/program_options.hpp" && -f "$inc/boost/thread.hpp" \
       && -f "$inc/boost/test/unit_test.hpp" && -f "$inc/boost/system/error_code.hpp" ]] && return 0
  done
  return 1
}

missing_deps() {
  command -v cmake >/dev/null || echo cmake
  command -v make >/dev/null || echo make
  command -v c++ >/dev/null || command -v g++ >/dev/null || echo "a C++ compiler"
  have_boost || echo "Boost headers (program_options, system, thread, test)"
}

missing="$(missing_deps | paste -sd, -)"
if [[ -n "$missing" ]]; then
  say "missing: $missing"
  SUDO=""
  if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
      die "missing $missing and not root: install ${APT_PACKAGES[*]} (Debian/Ubuntu) and run again"
    fi
  fi
  command -v apt-get >/dev/null || die "missing $missing and no apt-get here: install cmake, a C++ compiler and Boost (program_options, system, thread, test) and run again"
  say "apt-get update && apt-get install ${APT_PACKAGES[*]}"
  # Another apt-get (another build, unattended upgrades) may hold the dpkg lock: wait for it.
  APT_LOCK=(-o DPkg::Lock::Timeout="${APT_LOCK_TIMEOUT:-600}")
  APT_LOG="$(mktemp "${TMPDIR:-/tmp}/kenlm-apt.XXXXXX.log")"
  $SUDO apt-get "${APT_LOCK[@]}" update -qq > "$APT_LOG" 2>&1 \
    || { tail -n 20 "$APT_LOG" >&2; die "apt-get update failed (log: $APT_LOG)"; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${APT_LOCK[@]}" install -y -qq --no-install-recommends \
    "${APT_PACKAGES[@]}" >> "$APT_LOG" 2>&1 \
    || { tail -n 20 "$APT_LOG" >&2; die "apt-get install ${APT_PACKAGES[*]} failed (log: $APT_LOG)"; }
  rm -f "$APT_LOG"
  missing="$(missing_deps | paste -sd, -)"
  [[ -z "$missing" ]] || die "still missing after apt-get: $missing"
fi

# --- source -----------------------------------------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/kenlm-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
say "downloading the kenlm==$KENLM_VERSION sdist with $PYTHON -m pip"
"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary kenlm "kenlm==$KENLM_VERSION" -d "$WORK/dist" \
  || die "pip download kenlm==$KENLM_VERSION failed (is PyPI reachable?)"
SDIST="$(find "$WORK/dist" -maxdepth 1 -name 'kenlm-*.tar.gz' | head -n 1)"
[[ -n "$SDIST" ]] || die "pip download gave no kenlm-*.tar.gz in $WORK/dist"
tar -xzf "$SDIST" -C "$WORK" || die "cannot unpack $SDIST"
SRC="$(find "$WORK" -maxdepth 2 -name CMakeLists.txt -path '*kenlm-*' -printf '%h\n' | head -n 1)"
[[ -n "$SRC" ]] || die "no CMakeLists.txt in $SDIST"

# --- build ------------------------------------------------------------------------------------------
started=$SECONDS
say "configuring (KENLM_MAX_ORDER=$KENLM_MAX_ORDER) and building with $JOBS jobs"
cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DKENLM_MAX_ORDER="$KENLM_MAX_ORDER" \
  -DCOMPILE_TESTS=OFF > "$WORK/cmake.log" 2>&1 || { tail -n 40 "$WORK/cmake.log" >&2; die "cmake configure failed"; }
cmake --build "$WORK/build" --target lmplz build_binary -j "$JOBS" > "$WORK/make.log" 2>&1 \
  || { tail -n 40 "$WORK/make.log" >&2; die "make lmplz build_binary failed"; }

mkdir -p "$BIN"
for tool in lmplz build_binary; do
  built="$(find "$WORK/build" -type f -name "$tool" -perm -u+x | head -n 1)"
  [[ -n "$built" ]] || die "the build produced no $tool"
  # copy then rename, so a concurrent reader never sees half a binary
  cp "$built" "$BIN/.$tool.tmp.$$" && chmod 755 "$BIN/.$tool.tmp.$$" && mv -f "$BIN/.$tool.tmp.$$" "$BIN/$tool"
done
tools_work || die "built binaries in $BIN do not run"
say "built lmplz and build_binary into $BIN in $((SECONDS - started)) s (kenlm $KENLM_VERSION, max order $KENLM_MAX_ORDER)"
