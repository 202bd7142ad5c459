#!/usr/bin/env bash
# The actor-layer figures of the suite (tests/ActorVm.Benchmarks ActorProbes, IpiLatencyProbe,
# TimerFastpathProbe, TimerProbe, ScaleProbe, AllToAllProbe): fastpath re-entry (ICR write and
# preemption-timer exit), slowpath OUT round trip, IPI latency to a running and to a halted
# vCPU, self-IPI cost by forced-exit method, timer lateness (hv and sw), vCPU scale (start-up,
# broadcast-IPI wake, managed memory per idle vCPU) and all-to-all IPI throughput. Writes
# bench/results/actors.txt, timer.txt, scale.txt, alltoall.txt and, with gnuplot, scale.png
# (start-up, wake time and IPI throughput against vCPU count).
#
#   bench/actors.sh                    # 3 rounds per probe; scale at 1..4096 vCPUs
#   ROUNDS=5 VCPUS="1 4 16 64" bench/actors.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
VCPUS=${VCPUS:-1 4 16 64 256 1024 4096}
OUT=${OUT:-$ROOT/bench/results}
mkdir -p "$OUT"
dotnet build "$ROOT/tests/ActorVm.Benchmarks" -c Release -v q -nologo >&2
BENCH="dotnet $ROOT/tests/ActorVm.Benchmarks/bin/Release/net10.0/ActorVm.Benchmarks.dll"

$BENCH actors all-probes "$ROUNDS" 2>/dev/null | tee "$OUT/actors.txt"
$BENCH actors timer "$ROUNDS" 2>/dev/null | tee "$OUT/timer.txt"
# shellcheck disable=SC2086
$BENCH actors scale $VCPUS 2>/dev/null | tee "$OUT/scale.txt"
# shellcheck disable=SC2086
$BENCH actors alltoall $VCPUS 2>/dev/null | tee "$OUT/alltoall.txt"

if command -v gnuplot >/dev/null; then
    gnuplot <<GP
set terminal pngcairo size 800,480
set output "$OUT/scale.png"
set title "vCPU scale: start-up, broadcast-IPI wake, IPI throughput (2-core shared machine)"
set xlabel "vCPUs"
set logscale x 2
set logscale y
set ylabel "wake ms / start-up ms"
set y2label "IPIs per second"
set logscale y2
set y2tics
set grid
set key left top
plot "$OUT/scale.txt" every ::1 using 1:2 with linespoints title "start-up (ms)", \
     "" every ::1 using 1:3 with linespoints title "wake, 2(N-1) IPIs (ms)", \
     "" every ::2 using 1:4 axes x1y2 with linespoints title "broadcast+reply IPIs/s (right)", \
     "$OUT/alltoall.txt" every ::2 using 1:6 axes x1y2 with linespoints title "all-to-all IPIs/s (right)"
GP
    echo "actors: chart $OUT/scale.png" >&2
fi
