#!/usr/bin/env python3
"""Fills the hex column ('?') of instruction-semantics case files by assembling the asm column
with GNU as (Intel syntax). Usage: fill-hex.py FILE... ; lines are
bits | hex | asm | inputs | outputs. The test decodes the hex with Iced; the asm is documentation."""
import subprocess, sys, tempfile, os

def assemble(bits, text):
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "a.s")
        with open(src, "w") as f:
            f.write(".intel_syntax noprefix\n.code%s\n%s\n" % (bits, text.replace(";", "\n")))
        obj = os.path.join(d, "a.o")
        subprocess.run(["as", "--64" if bits == "64" else "--32", "-o", obj, src], check=True)
        out = os.path.join(d, "a.bin")
        subprocess.run(["objcopy", "-O", "binary", "-j", ".text", obj, out], check=True)
        return " ".join("%02x" % b for b in open(out, "rb").read())

for path in sys.argv[1:]:
    lines = open(path).read().split("\n")
    for i, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cols = [c.strip() for c in line.split("|")]
        if cols[1] == "?":
            cols[1] = assemble(cols[0], cols[2])
            lines[i] = " | ".join(cols)
    open(path, "w").write("\n".join(lines))
