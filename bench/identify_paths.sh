#!/bin/sh
# 1:N identification latency per kernel path: `bench identify` run once per
# path and gallery size, each in its own process with RIDGELINE_KERNELS set to
# the path, so that the prefilter and the full matcher's counts both take it
# (the dispatch is decided once, at start). Every path gives the same scores,
# so rank-1 is the same in every row; the exhaustive comparison is left to
# the default run of `make bench` (--exhaustive-probes 0 here). A path this
# machine cannot run (no AVX-512, no usable OpenCL device) is reported as such.
#
# usage: bench/identify_paths.sh BINARY [SIZES [PATHS]]
#        (defaults: "10000 100000 1000000", "scalar popcnt avx2 avx512 opencl";
#         RIDGELINE_TESTDATA as for bench identify; logs in a temporary folder)
# Prints a line a run, a table, then one JSON line with every run's figures.
set -eu

if [ $# -lt 1 ]; then
    sed -n '2,13s/^# \{0,1\}//p' "$0" >&2
    exit 2
fi
bin=$1 sizes=${2:-10000 100000 1000000} paths=${3:-scalar popcnt avx2 avx512 opencl}
[ -x "$bin" ] || { echo "identify_paths: $bin is not an executable" >&2; exit 2; }
for s in $sizes; do
    case "$s" in '' | *[!0-9]*) echo "identify_paths: sizes are whole numbers" >&2; exit 2 ;; esac
done
for p in $paths; do
    case "$p" in scalar | popcnt | avx2 | avx512 | opencl) ;;
    *) echo "identify_paths: unknown path \"$p\" (scalar popcnt avx2 avx512 opencl)" >&2; exit 2 ;;
    esac
done

logs=$(mktemp -d "${TMPDIR:-/tmp}/ridgeline-paths-XXXXXX")
echo "identify_paths: sizes $sizes; paths $paths; logs in $logs"
rows=$logs/rows.txt
: >"$rows"
field() { echo "$line" | sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p"; } # from the run's JSON line
json="["
for n in $sizes; do
    for p in $paths; do
        log=$logs/$p-$n.txt
        if RIDGELINE_KERNELS=$p "$bin" bench identify --size "$n" --kernels "$p" --exhaustive-probes 0 >"$log" 2>&1; then
            line=$(grep '^{"size"' "$log")
            p50=$(field p50_ms) p99=$(field p99_ms) scan=$(field scan_p50_ms) rank1=$(field rank1)
            kernel=$(echo "$line" | sed -n 's/.*"kernels":"\([^"]*\)".*/\1/p')
            printf '%s %s %s %s %s %s\n' "$n" "$p" "$p50" "$p99" "$scan" "$rank1" >>"$rows"
            echo "identify_paths: $n fingers, $p ($kernel): p50 $p50 ms, p99 $p99 ms, scan p50 $scan ms, rank-1 $rank1"
            json="$json{\"size\":$n,\"path\":\"$p\",\"kernel\":\"$kernel\",\"p50_ms\":$p50,\"p99_ms\":$p99,\"scan_p50_ms\":$scan,\"rank1\":$rank1},"
        else
            why=$(grep -v '^ *$' "$log" | tail -1)
            printf '%s %s - - - -\n' "$n" "$p" >>"$rows"
            echo "identify_paths: $n fingers, $p: not run here: $why"
            json="$json{\"size\":$n,\"path\":\"$p\",\"not_run\":true},"
        fi
    done
done
json="${json%,}]"

echo
printf '  %10s  %-8s %10s %10s %12s %8s\n' fingers path "p50 ms" "p99 ms" "scan p50 ms" rank-1
while read -r n p p50 p99 scan rank1; do
    printf '  %10s  %-8s %10s %10s %12s %8s\n' "$n" "$p" "$p50" "$p99" "$scan" "$rank1"
done <"$rows"
machine=$(grep -m1 '^machine:' "$logs"/*.txt 2>/dev/null | head -1 | sed 's/^[^:]*:machine: //')
echo "  machine: ${machine:-unknown}"
echo "{\"bench\":\"identify_paths\",\"runs\":$json}"
