#!/usr/bin/env bash
# Builds and runs the whole test suite twice: a gcc release build with warnings as errors, then
# a clang AddressSanitizer + UndefinedBehaviorSanitizer build. Integration tests start their own
# redis-server, dev broker and Klaviyo simulator on 127.0.0.1.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
label=${AW_TEST_LABEL:-}   # e.g. AW_TEST_LABEL=unit for the fast subset
ctest_args=(--output-on-failure --no-tests=error)

bash "$root/scripts/install-deps.sh"
[ -n "$label" ] && ctest_args+=(-L "$label")

echo "== format (clang-format, .clang-format) =="
find "$root/common" "$root/worker" "$root/tests" "$root/bench" \( -name '*.c' -o -name '*.h' -o -name '*.cc' \) \
    -print0 | xargs -0 clang-format --dry-run --Werror

echo "== release build (gcc, -Werror) =="
cmake -S "$root" -B "$root/build/release" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAW_WERROR=ON \
      -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ >/dev/null
cmake --build "$root/build/release" -j"$jobs"
(cd "$root/build/release" && ctest "${ctest_args[@]}" -j"$jobs")

echo "== sanitizer build (clang, ASan + UBSan) =="
cmake -S "$root" -B "$root/build/asan" -DCMAKE_BUILD_TYPE=Debug -DAW_WERROR=ON -DAW_ASAN=ON \
      -DAW_UBSAN=ON -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build "$root/build/asan" -j"$jobs"
(cd "$root/build/asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
   UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest "${ctest_args[@]}" -j"$jobs")
