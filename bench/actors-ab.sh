#!/usr/bin/env bash
# Before/after comparison of the actor-layer figures on the same load: runs every actor probe
# of two builds of tests/ActorVm.Benchmarks alternately, PASSES times (each pass ROUNDS rounds
# per probe), and prints each pass's line per build, so both see the same machine.
#
#   bench/actors-ab.sh /path/to/before/ActorVm.Benchmarks.dll /path/to/after/ActorVm.Benchmarks.dll
#   PASSES=2 ROUNDS=3 VCPUS="1 4 16 64 256 1024 4096" bench/actors-ab.sh BEFORE.dll AFTER.dll
#
# A "before" build: `git worktree add /tmp/before <commit>`, copy this tree's
# tests/ActorVm.Benchmarks/*.cs into it (the probes, so both builds run the same guests), and
# `dotnet build /tmp/before/tests/ActorVm.Benchmarks -c Release`.
set -euo pipefail

BEFORE=$1
AFTER=$2
PASSES=${PASSES:-2}
ROUNDS=${ROUNDS:-3}
VCPUS=${VCPUS:-1 4 16 64 256 1024 4096}
PROBES=${PROBES:-icr-fastpath timer-fastpath io-slowpath ipi-running ipi-halted self-ipi-timer self-ipi-ipi}

run() { (cd /tmp && dotnet "$1" actors "${@:2}" 2>/dev/null) || echo "(failed: $*)"; }

echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
for pass in $(seq 1 "$PASSES"); do
    for probe in $PROBES; do
        for build in before after; do
            dll=$BEFORE
            [ "$build" = after ] && dll=$AFTER
            run "$dll" "$probe" "$ROUNDS" | sed "s/^/pass $pass $build  /"
        done
    done
    for build in before after; do
        dll=$BEFORE
        [ "$build" = after ] && dll=$AFTER
        # shellcheck disable=SC2086
        run "$dll" alltoall $VCPUS | sed "s/^/pass $pass $build alltoall /"
        # shellcheck disable=SC2086
        run "$dll" scale $VCPUS | sed "s/^/pass $pass $build scale /"
        run "$dll" timer "$ROUNDS" | sed "s/^/pass $pass $build  /"
    done
    echo "# pass $pass done $(date -u +%T) load: $(cut -d' ' -f1-3 /proc/loadavg)"
done
