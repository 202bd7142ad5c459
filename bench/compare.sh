#!/usr/bin/env bash
# Side-by-side MIPS of ActorVm, QEMU (TCG) and Bochs on the guest loops of issue 7, one loop at
# a time, each emulator running the identical instruction sequence:
#   integer  the anchor loop (load, add, xor, shl, store, dec, jnz; 7 per iteration),
#            32-bit protected mode, flat segments
#   memory   long mode, 4-level paging (2 MiB pages), 4 KiB + 64 stride over a 2 MiB buffer,
#            load + store (7 per iteration)
#   branchy  data-dependent Jcc, JMP, CMP, LEA with SIB, SHR (9 per iteration), 32-bit
#   callret  CALL, PUSH, POP, RET, DEC, JNZ (6 per iteration), 32-bit
# Each emulator boots each loop at two iteration counts;
# MIPS = per_iteration * (N2 - N1) / (t(N2) - t(N1)), so boot, BIOS and process start-up cancel
# out. Runs alternate between emulators (round-robin, ROUNDS times) so a noisy shared machine
# hits all of them alike; medians with min-max are printed per loop, with the ratios of the
# medians, then one side-by-side line per loop.
#
#   bench/compare.sh                                  # all four loops, N1=10M, N2=60M, 3 rounds
#   LOOPS=integer N1=10000000 N2=100000000 ROUNDS=5 bench/compare.sh
#   LOOPS="memory callret" N1=5000000 N2=30000000 bench/compare.sh
#   OUT=bench/results bench/compare.sh                # where the tables, raw times and chart go
#
# Needs: dotnet (to build ActorVm), and optionally qemu-system-x86 and bochs + bochsbios +
# vgabios (Debian packages; Debian's Bochs 2.7 is built with x86-64, which the memory loop
# needs); a missing emulator is skipped. The chart needs gnuplot (gnuplot-nox). Times are CPU
# time (user + sys) of the emulator process, the figure that stays meaningful when other work
# shares the cores; wall time is recorded next to it.
#
# ActorVm runs each kernel with `actorvm run --sync --kernel`: the synchronous runner is the
# interpreter alone on one thread, like the other two emulators' single CPU. The default actor VM
# adds its dispatcher and timer threads, whose CPU time would be charged to the guest loop
# (ACTORVM_RUN="run --kernel" measures it that way).
#
# Guest images, per loop and iteration count, in bench/guests/: <name>-<N>.elf (Multiboot
# ELF32, for ActorVm and QEMU -kernel; it leaves through the debug-exit port) and
# <name>-<N>.bootsector (512-byte floppy boot sector, for Bochs; it leaves through Bochs'
# shutdown port), where <name> is "anchor" for the integer loop and the loop's name otherwise.
# Both come from one loop emitter in tests/ActorVm.Benchmarks/BenchGuests.cs, written by
# `dotnet tests/ActorVm.Benchmarks/bin/Release/net10.0/ActorVm.Benchmarks.dll kernel|bootsector
# <N> <file> <loop>` (CompareImages.cs, BootSector.cs). Missing images are generated.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOOPS=${LOOPS:-integer memory branchy callret}
N1=${N1:-10000000}
N2=${N2:-60000000}
ROUNDS=${ROUNDS:-3}
BOCHS_TIMEOUT=${BOCHS_TIMEOUT:-600}
OUT=${OUT:-$ROOT/bench/results}
GUESTS=$ROOT/bench/guests
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT" "$GUESTS"

log() { echo "compare: $*" >&2; }

# Instructions one iteration retires (BenchGuests.All), and the image name of each loop.
per_iteration() { case $1 in integer | memory) echo 7 ;; branchy) echo 9 ;; callret) echo 6 ;; *) return 1 ;; esac; }
image_name() { [[ $1 == integer ]] && echo anchor || echo "$1"; }
for loop in $LOOPS; do
    per_iteration "$loop" >/dev/null || { log "unknown loop '$loop' (integer, memory, branchy, callret)"; exit 2; }
done

log "building ActorVm (Release)"
dotnet build "$ROOT/Host" -c Release -v q -nologo >&2
dotnet build "$ROOT/tests/ActorVm.Benchmarks" -c Release -v q -nologo >&2
ACTORVM=$ROOT/Host/bin/Release/net10.0/actorvm
ACTORVM_RUN=${ACTORVM_RUN:-run --sync --kernel}
IMAGES="dotnet $ROOT/tests/ActorVm.Benchmarks/bin/Release/net10.0/ActorVm.Benchmarks.dll"

for loop in $LOOPS; do
    name=$(image_name "$loop")
    for n in "$N1" "$N2"; do
        [[ -f $GUESTS/$name-$n.elf ]] || $IMAGES kernel "$n" "$GUESTS/$name-$n.elf" "$loop"
        [[ -f $GUESTS/$name-$n.bootsector ]] || $IMAGES bootsector "$n" "$GUESTS/$name-$n.bootsector" "$loop"
        cp "$GUESTS/$name-$n.bootsector" "$WORK/floppy-$name-$n.img"
        truncate -s 1474560 "$WORK/floppy-$name-$n.img"
    done
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
    local emu=$1 loop=$2 n=$3 status name
    name=$(image_name "$loop")
    local t=$WORK/time
    case $emu in
        actorvm)
            # Debug-exit value 0 (checksum ok) is exit status 1.
            /usr/bin/time -o "$t" -f "%U %S %e" "$ACTORVM" $ACTORVM_RUN "$GUESTS/$name-$n.elf" >/dev/null 2>"$WORK/err" && status=0 || status=$?
            [[ $status == 1 ]] || { log "actorvm failed (status $status)"; cat "$WORK/err" >&2; return 1; }
            ;;
        qemu)
            /usr/bin/time -o "$t" -f "%U %S %e" qemu-system-x86_64 -accel tcg -m 64 -display none -serial null \
                -monitor none -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
                -kernel "$GUESTS/$name-$n.elf" >/dev/null 2>"$WORK/err" && status=0 || status=$?
            [[ $status == 1 ]] || { log "qemu failed (status $status)"; cat "$WORK/err" >&2; return 1; }
            ;;
        bochs)
            cat > "$WORK/bochsrc" <<RC
megs: 32
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/bochs/VGABIOS-lgpl-latest
floppya: 1_44=$WORK/floppy-$name-$n.img, status=inserted
boot: floppy
display_library: rfb, options="timeout=0"
log: $WORK/bochs.log
panic: action=fatal
info: action=ignore
cpu: count=1, ips=100000000
clock: sync=none
RC
            echo c > "$WORK/bochs.cmd"
            # Bounded: a Bochs that cannot run the guest (e.g. built without x86-64, for the memory
            # loop) resets and boots the floppy again forever instead of exiting.
            /usr/bin/time -o "$t" -f "%U %S %e" timeout "$BOCHS_TIMEOUT" bochs -q -f "$WORK/bochsrc" -rc "$WORK/bochs.cmd" </dev/null >/dev/null 2>&1 || true
            # The guest's only way out is the shutdown port; anything else is a failure.
            grep -q "Shutdown port: shutdown requested" "$WORK/bochs.log" || { log "bochs did not reach the shutdown port"; tail -n 5 "$WORK/bochs.log" >&2; return 1; }
            ;;
    esac
    tail -n 1 "$t" | awk '{ printf "%.4f %.4f\n", $1 + $2, $3 }'
}

RAW=$OUT/compare-raw.txt
echo "# round loop emulator N cpu_s wall_s" > "$RAW"
for ((r = 1; r <= ROUNDS; r++)); do
    for loop in $LOOPS; do
        for emu in "${EMULATORS[@]}"; do
            for n in "$N1" "$N2"; do
                read -r cpu wall < <(run_one "$emu" "$loop" "$n")
                echo "$r $loop $emu $n $cpu $wall" >> "$RAW"
                log "round $r $loop $emu N=$n: cpu ${cpu}s wall ${wall}s"
            done
        done
    done
done

# MIPS per round (CPU and wall), then median and min-max per loop and emulator; then one
# side-by-side line per loop (the lines bench/results/compare.txt ends with).
TABLE=$OUT/compare.txt
awk -v n1="$N1" -v n2="$N2" -v loops="$LOOPS" -v emus="${EMULATORS[*]}" -v dat="$OUT/compare-mips.dat" '
    !/^#/ { cpu[$1 " " $2 " " $3 " " $4] = $5; wall[$1 " " $2 " " $3 " " $4] = $6; rounds[$1] = 1 }
    function median(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t } return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    END {
        nl = split(loops, L, " "); ne = split(emus, E, " ")
        per["integer"] = 7; per["memory"] = 7; per["branchy"] = 9; per["callret"] = 6
        printf "# loop %s (median MIPS by CPU time, min, max per emulator)\n", emus > dat
        for (l = 1; l <= nl; l++) {
            loop = L[l]; instr = per[loop] * (n2 - n1)
            printf "%s: %d instructions per iteration, %d M instructions between N1=%d and N2=%d, %d rounds\n", loop, per[loop], instr / 1e6, n1, n2, length(rounds)
            printf "  %-8s %10s %10s %10s %10s\n", "emulator", "MIPS(cpu)", "min", "max", "MIPS(wall)"
            line = loop
            for (e = 1; e <= ne; e++) {
                name = E[e]; m = 0
                for (r in rounds) {
                    k1 = r " " loop " " name " " n1; k2 = r " " loop " " name " " n2
                    dc = cpu[k2] - cpu[k1]; dw = wall[k2] - wall[k1]
                    m++; c[m] = dc > 0 ? instr / dc / 1e6 : 0; w[m] = dw > 0 ? instr / dw / 1e6 : 0
                    if (dc <= 0) unresolved++
                }
                med[loop, name] = median(c, m); lo = c[1]; hi = c[m]; mw = median(w, m)
                printf "  %-8s %10.0f %10.0f %10.0f %10.0f\n", name, med[loop, name], lo, hi, mw
                if (unresolved) printf "  warning: %s took no more CPU time at N2 than at N1 in %d round(s) (0 MIPS there): raise N2 - N1\n", name, unresolved
                unresolved = 0
                line = line " " med[loop, name] " " lo " " hi
            }
            print line > dat
            for (e = 1; e <= ne; e++) if (E[e] != "actorvm" && med[loop, E[e]] > 0)
                printf "  ratio actorvm / %s = %.2f\n", E[e], med[loop, "actorvm"] / med[loop, E[e]]
        }
        printf "\nside by side (median MIPS by CPU time; ratio = ActorVm / emulator)\n%-8s", "loop"
        for (e = 1; e <= ne; e++) printf " %9s", E[e]
        for (e = 1; e <= ne; e++) if (E[e] != "actorvm") printf " %11s", "av/" E[e]
        printf "\n"
        for (l = 1; l <= nl; l++) {
            printf "%-8s", L[l]
            for (e = 1; e <= ne; e++) printf " %9.0f", med[L[l], E[e]]
            for (e = 1; e <= ne; e++) if (E[e] != "actorvm") printf " %10.2fx", (med[L[l], E[e]] > 0 ? med[L[l], "actorvm"] / med[L[l], E[e]] : 0)
            printf "\n"
        }
    }' "$RAW" | tee "$TABLE"

if command -v gnuplot >/dev/null; then
    # One cluster per loop, one bar per emulator (median, min-max whiskers).
    plots=()
    for i in "${!EMULATORS[@]}"; do
        c=$((2 + 3 * i))
        xtic=""
        [[ $i != 0 ]] || xtic=":xtic(1)"
        plots+=("\"$OUT/compare-mips.dat\" using $c:$((c + 1)):$((c + 2))$xtic title \"${EMULATORS[$i]}\"")
    done
    gnuplot <<GP
set terminal pngcairo size 900,480
set output "$OUT/compare-mips.png"
set title "MIPS by loop and emulator (CPU time, median with min-max; 2-core shared machine)"
set ylabel "MIPS"
set logscale y
set yrange [10:*]
set style data histogram
set style histogram errorbars gap 1 lw 1
set style fill solid 0.6 border -1
set key top left
set xtics nomirror
set grid ytics
plot $(IFS=,; echo "${plots[*]}")
GP
    log "chart: $OUT/compare-mips.png"
else
    log "gnuplot not installed: no chart (apt-get install gnuplot-nox)"
fi
