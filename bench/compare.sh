#!/usr/bin/env bash
# Side-by-side MIPS of ActorVm, QEMU (TCG) and Bochs on one guest loop: the anchor loop of
# issue 7 (load, add, xor, shl, store, dec, jnz: 7 instructions per iteration, 32-bit
# protected mode, flat segments). Each emulator boots the same loop at two iteration counts;
# MIPS = 7 * (N2 - N1) / (t(N2) - t(N1)), so boot, BIOS and process start-up cancel out.
# Runs alternate between emulators (round-robin, ROUNDS times) so a noisy shared machine
# hits all of them alike; medians with min-max are printed, with the ratios of the medians.
#
#   bench/compare.sh                 # N1=10M, N2=60M iterations, 3 rounds
#   N1=10000000 N2=100000000 ROUNDS=5 bench/compare.sh
#   OUT=bench/results bench/compare.sh   # where the table, raw times and chart go
#
# Needs: dotnet (to build ActorVm), and optionally qemu-system-x86 and bochs + bochsbios +
# vgabios (Debian packages); a missing emulator is skipped. The chart needs gnuplot
# (gnuplot-nox). Times are CPU time (user + sys) of the emulator process, the figure that
# stays meaningful when other work shares the cores; wall time is recorded next to it.
#
# Guest images: bench/guests/anchor-<N>.elf (Multiboot ELF32, for ActorVm and QEMU -kernel)
# and anchor-<N>.bootsector (512-byte floppy boot sector, for Bochs), built by
# `dotnet tests/ActorVm.Benchmarks/bin/Release/net10.0/ActorVm.Benchmarks.dll kernel|bootsector
# <N> <file>` from tests/ActorVm.Benchmarks/CompareImages.cs (the loop itself is
# Hardware/Guests/GuestPrograms.cs BuildCompute). Missing images are generated.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N1=${N1:-10000000}
N2=${N2:-60000000}
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-$ROOT/bench/results}
GUESTS=$ROOT/bench/guests
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT" "$GUESTS"

log() { echo "compare: $*" >&2; }

log "building ActorVm (Release)"
dotnet build "$ROOT/Host" -c Release -v q -nologo >&2
dotnet build "$ROOT/tests/ActorVm.Benchmarks" -c Release -v q -nologo >&2
ACTORVM=$ROOT/Host/bin/Release/net10.0/actorvm
IMAGES="dotnet $ROOT/tests/ActorVm.Benchmarks/bin/Release/net10.0/ActorVm.Benchmarks.dll"

for n in "$N1" "$N2"; do
    [[ -f $GUESTS/anchor-$n.elf ]] || $IMAGES kernel "$n" "$GUESTS/anchor-$n.elf"
    [[ -f $GUESTS/anchor-$n.bootsector ]] || $IMAGES bootsector "$n" "$GUESTS/anchor-$n.bootsector"
    cp "$GUESTS/anchor-$n.bootsector" "$WORK/floppy-$n.img"
    truncate -s 1474560 "$WORK/floppy-$n.img"
done

EMULATORS=(actorvm)
command -v qemu-system-x86_64 >/dev/null && EMULATORS+=(qemu) || log "qemu-system-x86_64 not installed: skipped"
if command -v bochs >/dev/null && [[ -f /usr/share/bochs/BIOS-bochs-latest && -f /usr/share/vgabios/vgabios.bin ]]; then
    EMULATORS+=(bochs)
else
    log "bochs (with bochsbios and vgabios) not installed: skipped"
fi

# One run: prints "<cpu seconds> <wall seconds>"; fails when the guest did not finish cleanly.
run_one() {
    local emu=$1 n=$2 status
    local t=$WORK/time
    case $emu in
        actorvm)
            # Debug-exit value 0 (checksum ok) is exit status 1.
            /usr/bin/time -o "$t" -f "%U %S %e" "$ACTORVM" run --kernel "$GUESTS/anchor-$n.elf" >/dev/null 2>"$WORK/err" && status=0 || status=$?
            [[ $status == 1 ]] || { log "actorvm failed (status $status)"; cat "$WORK/err" >&2; return 1; }
            ;;
        qemu)
            /usr/bin/time -o "$t" -f "%U %S %e" qemu-system-x86_64 -accel tcg -m 64 -display none -serial null \
                -monitor none -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
                -kernel "$GUESTS/anchor-$n.elf" >/dev/null 2>"$WORK/err" && status=0 || status=$?
            [[ $status == 1 ]] || { log "qemu failed (status $status)"; cat "$WORK/err" >&2; return 1; }
            ;;
        bochs)
            cat > "$WORK/bochsrc" <<RC
megs: 32
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/bochs/VGABIOS-lgpl-latest
floppya: 1_44=$WORK/floppy-$n.img, status=inserted
boot: floppy
display_library: rfb, options="timeout=0"
log: $WORK/bochs.log
panic: action=fatal
info: action=ignore
cpu: count=1, ips=100000000
clock: sync=none
RC
            echo c > "$WORK/bochs.cmd"
            /usr/bin/time -o "$t" -f "%U %S %e" bochs -q -f "$WORK/bochsrc" -rc "$WORK/bochs.cmd" </dev/null >/dev/null 2>&1 || true
            # The guest's only way out is the shutdown port; anything else is a failure.
            grep -q "Shutdown port: shutdown requested" "$WORK/bochs.log" || { log "bochs did not reach the shutdown port"; tail -n 5 "$WORK/bochs.log" >&2; return 1; }
            ;;
    esac
    tail -n 1 "$t" | awk '{ printf "%.4f %.4f\n", $1 + $2, $3 }'
}

RAW=$OUT/compare-raw.txt
echo "# round emulator N cpu_s wall_s" > "$RAW"
for ((r = 1; r <= ROUNDS; r++)); do
    for emu in "${EMULATORS[@]}"; do
        for n in "$N1" "$N2"; do
            read -r cpu wall < <(run_one "$emu" "$n")
            echo "$r $emu $n $cpu $wall" >> "$RAW"
            log "round $r $emu N=$n: cpu ${cpu}s wall ${wall}s"
        done
    done
done

# MIPS per round (CPU and wall), then median and min-max per emulator.
TABLE=$OUT/compare.txt
awk -v n1="$N1" -v n2="$N2" '
    !/^#/ { cpu[$1 " " $2 " " $3] = $4; wall[$1 " " $2 " " $3] = $5; if (!($2 in seen)) { seen[$2] = 1; order[++k] = $2 } rounds[$1] = 1 }
    function median(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t } return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    END {
        instr = 7 * (n2 - n1)
        printf "%-8s %10s %10s %10s %10s   (%d rounds, %d M instructions between N1=%d and N2=%d)\n", "emulator", "MIPS(cpu)", "min", "max", "MIPS(wall)", length(rounds), instr / 1e6, n1, n2
        for (e = 1; e <= k; e++) {
            name = order[e]; m = 0
            for (r in rounds) {
                dc = cpu[r " " name " " n2] - cpu[r " " name " " n1]; dw = wall[r " " name " " n2] - wall[r " " name " " n1]
                m++; c[m] = dc > 0 ? instr / dc / 1e6 : 0; w[m] = dw > 0 ? instr / dw / 1e6 : 0
            }
            med[name] = median(c, m); lo = c[1]; hi = c[m]; mw = median(w, m)
            printf "%-8s %10.0f %10.0f %10.0f %10.0f\n", name, med[name], lo, hi, mw
            print name, med[name], lo, hi > "'"$OUT"'/compare-mips.dat"
        }
        if ("actorvm" in med) {
            for (e = 1; e <= k; e++) if (order[e] != "actorvm" && med[order[e]] > 0)
                printf "ratio actorvm / %s = %.2f\n", order[e], med["actorvm"] / med[order[e]]
        }
    }' "$RAW" | tee "$TABLE"

if command -v gnuplot >/dev/null; then
    gnuplot <<GP
set terminal pngcairo size 800,480
set output "$OUT/compare-mips.png"
set title "Anchor loop, MIPS by emulator (CPU time, median with min-max; 2-core shared machine)"
set ylabel "MIPS"
set logscale y
set yrange [10:*]
set style fill solid 0.6
set boxwidth 0.5
set xtics nomirror
set grid ytics
plot "$OUT/compare-mips.dat" using 0:2:xtic(1) with boxes notitle, \
     "" using 0:2:3:4 with yerrorbars lc rgb "black" notitle, \
     "" using 0:2:(sprintf("%.0f", \$2)) with labels offset 0,1 notitle
GP
    log "chart: $OUT/compare-mips.png"
else
    log "gnuplot not installed: no chart (apt-get install gnuplot-nox)"
fi
