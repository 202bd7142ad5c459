#!/usr/bin/env bash
# Regenerates the QEMU goldens of the SMP guests (not run by CI; needs qemu-system-x86_64).
# The kernels are built by the tests themselves (SmpGuestSpec writes each kernel it boots to
# $ACTORVM_KERNEL_DIR), then booted on QEMU with 4 vCPUs:
#   qemu-system-x86_64 -kernel K -smp 4 -cpu max -nographic -serial stdio \
#       -device isa-debug-exit,iobase=0xf4,iosize=0x4 -display none -monitor none
# <guest>.serial is COM1's output with SeaBIOS/iPXE's banner (up to "Booting from ROM..")
# removed, since ActorVm boots without a BIOS; <guest>.status is QEMU's exit status.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
ACTORVM_KERNEL_DIR="$tmp" dotnet test "$root/tests/ActorVm.Actors.Tests" --filter "FullyQualifiedName~SmpGuestSpec" >/dev/null || true
# smp-x2apic is not run: QEMU 7.2's TCG has no x2APIC (see README.md).
for guest in smp-ipi; do
    kernel="$tmp/$guest.elf32"
    set +e
    timeout 120 qemu-system-x86_64 -kernel "$kernel" -smp 4 -cpu max -nographic -serial stdio \
        -device isa-debug-exit,iobase=0xf4,iosize=0x4 -display none -monitor none >"$tmp/$guest.out" 2>/dev/null
    echo $? >"$here/$guest.status"
    set -e
    python3 - "$tmp/$guest.out" "$here/$guest.serial" <<'PY'
import sys
data = open(sys.argv[1], 'rb').read()
if data.count(b'SeaBIOS') != 1:
    sys.exit(sys.argv[1] + ': QEMU rebooted (the guest triple-faulted)')
marker = b'Booting from ROM..'
open(sys.argv[2], 'wb').write(data[data.index(marker) + len(marker):])
PY
    echo "$guest: status $(cat "$here/$guest.status")"
done
