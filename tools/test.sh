#!/usr/bin/env bash
# The test command (README, .ci/run): installs missing packages, builds, runs the whole ctest
# suite, then builds the parser tests with ASan+UBSan and runs them.
# Data: DCQ_TEST_DATA (default ../shared/data beside the checkout); tests skip visibly without it.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup-deps.sh
jobs=$(nproc)
data="${DCQ_TEST_DATA:-$(pwd)/../shared/data}"

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDCQ_TEST_DATA="$data" >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build -j"$jobs" --output-on-failure

# Sanitizer pass over everything that parses untrusted bytes (label "parser").
# -O1 -g1: sanitizer builds compile 2-2.5x faster than at -O2 -g (tokenizer_test.cpp: 81 -> 34 s of
# CPU) and still report file:line in their traces; this phase was 17 of the 24 minutes of CI.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDCQ_SANITIZE=ON \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DDCQ_TEST_DATA="$data" >/dev/null
# The areas are DCQ_PARSER_TESTS of tests/CMakeLists.txt (one list, so a new parser test cannot be
# labelled without being built here).
areas=$(sed -n 's/^set(DCQ_PARSER_TESTS \(.*\))$/\1/p' tests/CMakeLists.txt | tr ' ' '|')
[ -n "$areas" ] || { echo "tools/test.sh: DCQ_PARSER_TESTS not found in tests/CMakeLists.txt" >&2; exit 1; }
targets=$(cmake --build build-asan --target help | awk '/^\.\.\. (test_|replay_)/{print $2}' |
          grep -E "^(test_($areas)\$|replay_)" || true)
# shellcheck disable=SC2086
cmake --build build-asan -j"$jobs" --target dcq $targets
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan -j"$jobs" -L parser --output-on-failure
echo "all tests passed"
