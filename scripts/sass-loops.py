#!/usr/bin/env python3
"""Counts the instructions of each loop in a kernel's machine code.

Reads the output of `cuobjdump -sass -fun KERNEL FILE.cubin` on stdin and
prints every loop it finds (a branch back to an earlier address), innermost
first by size: its address range, its instruction count and its most common
opcodes. A kernel's inner loop is usually the loop with the arithmetic you
expect in it (for the 4-bit matrix-vector kernels, the one holding the IDP
instructions, __dp4a); what else it holds is what it pays besides.

    cuobjdump -sass -fun matmul_q4_gemv_q8 matmul_fast.cubin | python3 scripts/sass-loops.py

The book's Week 2 Day 4 chapter ("Fewer instructions a round") and the
maintainers' GPU page show how the .cubin is built.
"""

import collections
import re
import sys

INSTRUCTION = re.compile(r"\s+/\*([0-9a-f]+)\*/\s+(.*?)\s*;")
BRANCH = re.compile(r"\bBRA(?:\.[A-Z.]+)?\s+(?:!?U?P\w+,\s*)?(0x[0-9a-f]+)")


def read(lines):
    """The instructions as (address, text), in order."""
    out = []
    for line in lines:
        m = INSTRUCTION.match(line)
        if m:
            out.append((int(m.group(1), 16), m.group(2)))
    return out


def opcode(text):
    """The opcode without its predicate and modifiers: IDP for @P0 IDP.4A.S8.S8."""
    words = text.split()
    op = words[1] if words[0].startswith("@") and len(words) > 1 else words[0]
    return op.split(".")[0]


def loops(instructions):
    """(start, end, instructions inside) for every backward branch."""
    found = []
    for address, text in instructions:
        m = BRANCH.search(text)
        # a branch to itself is the padding after a kernel's last exit
        if m and int(m.group(1), 16) < address:
            start = int(m.group(1), 16)
            body = [t for a, t in instructions if start <= a <= address]
            found.append((start, address, body))
    return sorted(found, key=lambda f: len(f[2]))


def main():
    instructions = read(sys.stdin)
    if not instructions:
        sys.exit("sass-loops: no instructions on stdin (pipe in cuobjdump -sass -fun KERNEL FILE.cubin)")
    print(f"{len(instructions)} instructions in all")
    for start, end, body in loops(instructions):
        counts = collections.Counter(opcode(t) for t in body)
        top = ", ".join(f"{op} {n}" for op, n in counts.most_common(12))
        print(f"loop {start:#x}-{end:#x}: {len(body)} instructions: {top}")


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:  # the reader (head, less) stopped early
        sys.stderr.close()
