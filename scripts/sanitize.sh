#!/usr/bin/env bash
# Builds the compiled core with AddressSanitizer + UndefinedBehaviorSanitizer (CMake option
# FRUGALNN_SANITIZE) in build/asan, away from .venv's own build, and runs the kernel tests and the
# bindings fuzz suite against it. .ci/run runs it after the main tests; run it alone the same way:
#   bash scripts/sanitize.sh [extra pytest args]
# An out-of-bounds access, a use after free or undefined behaviour (overflow, a bad shift, a
# misaligned load) aborts the test process with the sanitizer's report.
#
# How it swaps the module in: a bare venv (build/asan/venv) whose one .pth puts build/asan/site
# (a copy of src/frugalnn plus the sanitized _core) ahead of .venv's site-packages. .venv's own
# .pth files are not read there, so its editable frugalnn (whose import hook would win) stays out,
# and child processes started by tests (sys.executable) get the same setup.
set -euo pipefail
cd "$(dirname "$0")/.."

py="$PWD/.venv/bin/python"
out=build/asan
[ -x "$py" ] || { echo "sanitize: run scripts/setup.sh first" >&2; exit 1; }

# the CMake that built .venv's core (scikit-build-core uses the system one when there is one)
cmake=$(command -v cmake || true)
if [ -z "$cmake" ]; then
  "$py" -m pip --disable-pip-version-check -q install cmake
  cmake=$(dirname "$py")/cmake
fi
"$cmake" -S . -B "$out/cmake" -DFRUGALNN_SANITIZE=ON -DPython_EXECUTABLE="$py" -DCMAKE_BUILD_TYPE=Release >/dev/null
"$cmake" --build "$out/cmake" -j "$(nproc)" >/dev/null

rm -rf "$out/site"
mkdir -p "$out/site"
cp -r src/frugalnn "$out/site/frugalnn"
find "$out/site" -name __pycache__ -prune -exec rm -rf {} +
cp "$out"/cmake/_core*.so "$out/site/frugalnn/"

[ -x "$out/venv/bin/python" ] || "$py" -m venv --without-pip "$out/venv"
site=$("$out/venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
deps=$("$py" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
printf '%s\n%s\n' "$(realpath "$out/site")" "$deps" > "$site/frugalnn_sanitize.pth"

libasan=$(gcc -print-file-name=libasan.so)
[ -f "$libasan" ] || { echo "sanitize: libasan.so not found (gcc -print-file-name=libasan.so)" >&2; exit 1; }
# libstdc++ preloaded too: python does not link it, and ASan must find __cxa_throw at start-up to
# intercept C++ exceptions (else "CHECK failed ... real___cxa_throw" at the first one thrown).
libstdcxx=$(gcc -print-file-name=libstdc++.so)

# The kernel tests and the bindings fuzz suites (tests/fuzz/test_bindings.py and each op's
# tests/fuzz/test_<op>_bindings.py): every binding, every backend. (The rest of the
# suite runs the same kernels through torch models: slower under ASan, and nothing it reaches is
# not reached here.) detect_leaks=0: CPython itself never frees some allocations.
# allocator_may_return_null=1: a huge numpy allocation is a MemoryError, as without ASan.
# Reports go to files: pytest captures stderr, and an aborted process never prints what it captured.
# The one timing test among the kernel tests (special values cost about a normal call) measures ASan's
# instrumentation, not the kernel, here: it runs in the main suite.
timing_test="tests/kernels/test_lut.py::test_special_values_cost_about_a_normal_call"
reports="$PWD/$out/reports"
rm -rf "$reports" && mkdir -p "$reports"
rc=0
LD_PRELOAD="$libasan $libstdcxx" \
ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:abort_on_error=1:log_path=$reports/asan" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan" \
  "$out/venv/bin/python" -m pytest -q -p no:cacheprovider tests/kernels tests/fuzz/test_bindings.py \
  tests/fuzz/test_*_bindings.py --deselect "$timing_test" "$@" || rc=$?
if compgen -G "$reports/*" >/dev/null; then
  for f in "$reports"/*; do echo "=== sanitizer report $f"; head -c 20000 "$f"; done >&2
  [ "$rc" -ne 0 ] || rc=1
fi
exit "$rc"
