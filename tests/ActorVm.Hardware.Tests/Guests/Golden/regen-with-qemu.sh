#!/usr/bin/env bash
# Regenerates the QEMU goldens of the built-in guest programs (not run by CI; needs
# qemu-system-x86_64, e.g. `apt-get install -y qemu-system-x86`). For each program it writes
#   <program>.serial  the guest's COM1 output, with SeaBIOS/iPXE's banner (everything up to and
#                     including "Booting from ROM..") removed, since ActorVm boots without a BIOS
#   <program>.status  QEMU's process exit status
# The command per kernel is:
#   qemu-system-x86_64 -kernel K -nographic -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=0x4 -display none -monitor none
# Both the a.out-kludge and the ELF32 packaging are run and must agree.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
dotnet build "$root/Host" -c Release -o "$tmp/host" >/dev/null
for program in hello longmode-selftest compute; do
    for format in aout elf32; do
        "$tmp/host/actorvm" guest "$program" --format "$format" -o "$tmp/$program.$format"
        set +e
        timeout 120 qemu-system-x86_64 -kernel "$tmp/$program.$format" -nographic -serial stdio \
            -device isa-debug-exit,iobase=0xf4,iosize=0x4 -display none -monitor none >"$tmp/$program.$format.out" 2>/dev/null
        echo $? >"$tmp/$program.$format.status"
        set -e
        python3 - "$tmp/$program.$format.out" "$tmp/$program.$format.serial" <<'PY'
import sys
data = open(sys.argv[1], 'rb').read()
marker = b'Booting from ROM..'
open(sys.argv[2], 'wb').write(data[data.index(marker) + len(marker):])
PY
    done
    cmp "$tmp/$program.aout.serial" "$tmp/$program.elf32.serial"
    cmp "$tmp/$program.aout.status" "$tmp/$program.elf32.status"
    cp "$tmp/$program.elf32.serial" "$here/$program.serial"
    cp "$tmp/$program.elf32.status" "$here/$program.status"
    echo "$program: status $(cat "$here/$program.status")"
done
