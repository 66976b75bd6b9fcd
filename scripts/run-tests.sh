#!/usr/bin/env bash
# Runs every test program of each build folder given (e.g. build build/asan) and
# prints the totals. Each program is a cmocka group; integration tests start the
# build's own `ridgeline` (RIDGELINE_BIN). Exit status: 0 only when nothing failed.
set -uo pipefail
cd "$(dirname "$0")/.."

# use_sigaltstack=0: once PoCL (the CPU OpenCL driver, which runs LLVM in
# process) is loaded, ASan aborts at a thread's exit, failing to unmap its own
# alternate signal stack ("unable to unmap"); without PoCL
# (OCL_ICD_VENDORS=/nonexistent) the same tests pass clean, so it is the pair
# of them, not our code. ASan does not need the alternate stack to check.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:use_sigaltstack=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export RIDGELINE_TESTDATA="${RIDGELINE_TESTDATA:-../shared/data}"

total_pass=0 total_fail=0 total_skip=0
failed_programs=()
for build in "$@"; do
  export RIDGELINE_BIN="$build/ridgeline"
  pass=0 fail=0 skip=0
  echo "=== tests in $build (RIDGELINE_BIN=$RIDGELINE_BIN, RIDGELINE_TESTDATA=$RIDGELINE_TESTDATA)"
  for prog in "$build"/tests/test_*; do
    [ -x "$prog" ] || continue
    start=$(date +%s%N)
    out=$("$prog" 2>&1)
    rc=$?
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    secs="$((ms / 1000)).$(( (ms % 1000) / 100 ))"
    echo "$out"
    p=$(grep -Eo '^\[  PASSED  \] [0-9]+' <<<"$out" | grep -Eo '[0-9]+$' | tail -1)
    f=$(grep -Eo '^\[  FAILED  \] [0-9]+ test' <<<"$out" | grep -Eo '[0-9]+' | tail -1)
    s=$(grep -Eo '^\[  SKIPPED \] [0-9]+ test' <<<"$out" | grep -Eo '[0-9]+' | tail -1)
    p=${p:-0} f=${f:-0} s=${s:-0}
    if [ $rc -ne 0 ] && [ "$f" = 0 ]; then
      # crashed, or a sanitizer aborted it, before cmocka could count
      f=1
    fi
    [ "$f" != 0 ] && failed_programs+=("$prog")
    pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
    echo "--- $prog: $p passed, $f failed, $s skipped (${secs}s)"
  done
  echo "=== $build: $pass passed, $fail failed, $skip skipped"
  total_pass=$((total_pass + pass)) total_fail=$((total_fail + fail)) total_skip=$((total_skip + skip))
done

if [ ${#failed_programs[@]} -gt 0 ]; then
  echo "failing programs: ${failed_programs[*]}"
fi
echo "tests: $total_pass passed, $total_fail failed, $total_skip skipped"
[ $total_fail -eq 0 ]
