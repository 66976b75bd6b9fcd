#!/bin/sh
# Registration rates of two builds, run in turn: on a shared box the speed
# drifts by a fifth from hour to hour, so one run of each says little and
# alternating pairs are how changes to the write path are judged
# (docs/performance.md). Each run is `bench match` registering SIZE people
# into a fresh store; it stops after registering and probing (--no-rematch),
# or, for builds without that flag, once the last registration is reported
# (a progress line: SIZE of 100000 or more).
#
# usage: bench/ab_match.sh OLD_BINARY NEW_BINARY [SIZE [ROUNDS]]
#        (defaults: 1000000, 2; RIDGELINE_TESTDATA and TMPDIR as for bench match)
# Prints one line a run (registrations/s, CPU ms a registration for the whole
# process, load average before) and the logs' folder.
set -eu

if [ $# -lt 2 ]; then
    sed -n '2,13s/^# \{0,1\}//p' "$0" >&2
    exit 2
fi
old=$1 new=$2 size=${3:-1000000} rounds=${4:-2}
for b in "$old" "$new"; do
    [ -x "$b" ] || { echo "ab_match: $b is not an executable" >&2; exit 2; }
done
case "$size$rounds" in *[!0-9]*) echo "ab_match: SIZE and ROUNDS are whole numbers" >&2; exit 2 ;; esac

logs=$(mktemp -d "${TMPDIR:-/tmp}/ridgeline-ab-XXXXXX")
echo "ab_match: $size registrations a run, $rounds rounds, logs in $logs"
round=1
while [ "$round" -le "$rounds" ]; do
    for which in old new; do
        if [ "$which" = old ]; then bin=$old; else bin=$new; fi
        log=$logs/$which-$round.txt
        load=$(cut -d' ' -f1 /proc/loadavg)
        store=$logs/store
        if "$bin" bench --help 2>/dev/null | grep -q -- --no-rematch; then
            "$bin" bench match --size "$size" --probes 200 --no-rematch --data "$store" >"$log" 2>&1 || true
        else
            "$bin" bench match --size "$size" --probes 200 --data "$store" >"$log" 2>&1 &
            pid=$!
            until grep -q "$size/$size registered" "$log" 2>/dev/null; do
                kill -0 "$pid" 2>/dev/null || break
                sleep 1
            done
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
        rm -rf "$store"
        json=$(grep '^{"size"' "$log" || true)
        if [ -n "$json" ]; then
            rate=$(echo "$json" | sed -n 's/.*"registrations_per_s":\([0-9.]*\).*/\1/p' | cut -d. -f1)
            cpu=$(echo "$json" | sed -n 's/.*"registration_cpu_ms":\([0-9.]*\).*/\1/p' | cut -c1-5)
        else
            line=$(grep "$size/$size registered" "$log" || true)
            rate=$(echo "$line" | sed -n 's/.* s, \([0-9]*\)\/s;.*/\1/p')
            cpu=$(grep -o '[0-9.]* CPU ms each' "$log" | awk '{ s += $1; n++ } END { if (n) printf "%.3f", s / n }')
        fi
        if [ -z "$rate" ]; then
            echo "ab_match: $which run $round did not finish; see $log" >&2
            exit 1
        fi
        printf '%s round %d: %s registrations/s, %s CPU ms a registration, load before %s\n' \
            "$which" "$round" "$rate" "$cpu" "$load"
    done
    round=$((round + 1))
done
