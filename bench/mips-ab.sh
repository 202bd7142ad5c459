#!/usr/bin/env bash
# Before/after comparison of the quick MIPS probe on the same load: runs `mips <loop> N REPEATS`
# (best of REPEATS runs in one process, default 7, CPU time, boot and decode included; with
# REPEATS=1 each figure is a fresh process's first run, JIT and block compiles included) of two builds of
# tests/ActorVm.Benchmarks alternately, loop by loop, ROUNDS times, swapping which build goes
# first every round, then prints per loop and build the median and min-max of the rounds' best
# figures and the ratio of the medians.
#
#   bench/mips-ab.sh /path/to/before/ActorVm.Benchmarks.dll /path/to/after/ActorVm.Benchmarks.dll
#   ROUNDS=7 N=3000000 LOOPS="integer memory" REPEATS=1 bench/mips-ab.sh BEFORE.dll AFTER.dll
#
# A "before" build: `git archive <commit> | tar -x -C /tmp/before` and
# `dotnet build /tmp/before/tests/ActorVm.Benchmarks -c Release`.
set -euo pipefail

BEFORE=$1
AFTER=$2
ROUNDS=${ROUNDS:-6}
N=${N:-3000000}
REPEATS=${REPEATS:-7}
LOOPS=${LOOPS:-integer memory branchy callret}
RAW=$(mktemp)

best() { (cd /tmp && dotnet "$1" mips "$2" "$N" "$REPEATS") | sort -k5 -n | tail -1 | cut -d' ' -f5; }

echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$ROUNDS"); do
    order="before after"
    [ $((round % 2)) -eq 0 ] && order="after before"
    for loop in $LOOPS; do
        for build in $order; do
            dll=$BEFORE
            [ "$build" = after ] && dll=$AFTER
            echo "$round $loop $build $(best "$dll" "$loop")" | tee -a "$RAW"
        done
    done
done
echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"

stats() { sort -n | awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.0f (%.0f-%.0f)", m, v[1], v[NR] }'; }
printf '%-8s %-22s %-22s %s\n' loop "before MIPS" "after MIPS" "after/before"
for loop in $LOOPS; do
    b=$(awk -v l="$loop" '$2 == l && $3 == "before" { print $4 }' "$RAW" | stats)
    a=$(awk -v l="$loop" '$2 == l && $3 == "after" { print $4 }' "$RAW" | stats)
    printf '%-8s %-22s %-22s %.2f\n' "$loop" "$b" "$a" "$(echo "${a%% *} / ${b%% *}" | bc -l)"
done
rm -f "$RAW"
