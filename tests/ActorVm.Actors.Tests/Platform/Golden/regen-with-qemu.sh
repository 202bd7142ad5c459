#!/usr/bin/env bash
# Regenerates the QEMU goldens of the platform guests (not run by CI; needs qemu-system-x86_64).
# For each guest and vCPU count it writes
#   <guest>-smp<N>.serial  COM1 output after SeaBIOS's banner ("Booting from ROM.." and before removed)
#   <guest>-smp<N>.status  QEMU's exit status
# The command per kernel (pc-reset adds -no-reboot, so the reset ends QEMU as it ends ActorVm):
#   qemu-system-x86_64 -kernel K -nographic -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=0x4 \
#       -device pc-testdev -smp N -cpu max -m 128 -display none -monitor none
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
dotnet build "$root/Host" -c Release -o "$tmp/host" >/dev/null
run() {
    local guest=$1 smp=$2; shift 2
    "$tmp/host/actorvm" guest "$guest" --format elf32 -o "$tmp/$guest.elf32"
    set +e
    timeout 120 qemu-system-x86_64 -kernel "$tmp/$guest.elf32" -nographic -serial stdio \
        -device isa-debug-exit,iobase=0xf4,iosize=0x4 -device pc-testdev -smp "$smp" -cpu max -m 128 \
        -display none -monitor none "$@" >"$tmp/out" 2>/dev/null
    echo $? >"$here/$guest-smp$smp.status"
    set -e
    python3 - "$tmp/out" "$here/$guest-smp$smp.serial" <<'PY'
import sys
data = open(sys.argv[1], 'rb').read()
marker = b'Booting from ROM..'
open(sys.argv[2], 'wb').write(data[data.index(marker) + len(marker):])
PY
    echo "$guest -smp $smp: status $(cat "$here/$guest-smp$smp.status")"
}
run pc-devices 1
run pc-devices 4
run pc-ioapic 1
run pc-pic 1
run pc-reset 1 -no-reboot
run cr8-apic-off 1
run longmode-4m 1
run longmode-4m 2
for n in 1 2 4 8 255; do run apic-smp "$n"; done
