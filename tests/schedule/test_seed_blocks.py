#!/usr/bin/env python3
"""The quick start's module prints must be byte-identical to the user's
document (tests/data/quick-start.rst, Slapo's quick start): the whole
bert-large BertLMHeadModel, layer 0's attention, layer 0's intermediate,
and the intermediate after decompose(). Also checks that the find()
result prints as in the document."""
import os
import subprocess
import sys

root = os.environ.get("SLAPO_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
build = os.environ.get("SLAPO_BUILD", "build")
slapoc = os.path.join(root, build, "tools", "slapoc")


def seed_blocks(path):
    """Output blocks (`.. code-block:: none` after `sphx-glr-script-out`),
    de-indented by the 4 spaces the document adds."""
    lines = open(path, encoding="utf-8").read().split("\n")
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == ".. code-block:: none" and i > 1 and \
                "sphx-glr-script-out" in "".join(lines[i - 3:i]):
            i += 1
            while i < len(lines) and lines[i].strip() == "":
                i += 1
            block = []
            while i < len(lines) and (lines[i].startswith("    ") or lines[i] == ""):
                block.append(lines[i][4:])
                i += 1
            while block and block[-1] == "":
                block.pop()
            blocks.append("\n".join(block))
        else:
            i += 1
    return blocks


def main():
    blocks = seed_blocks(os.path.join(root, "tests", "data", "quick-start.rst"))
    modules = [b for b in blocks if b.startswith(("BertLMHeadModel(", "BertAttention(",
                                                   "BertIntermediate("))]
    finds = [b for b in blocks if b.startswith("[[")]
    if len(modules) != 4 or len(finds) != 1:
        print(f"expected 4 module blocks and 1 find block in the document, got "
              f"{len(modules)} and {len(finds)}")
        return 1
    r = subprocess.run([slapoc, "examples/quick-start.slapo"], cwd=root,
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        print("slapoc failed:", r.stderr)
        return 1
    out = r.stdout
    failed = 0
    pos = 0
    for b in modules + finds:
        at = out.find(b + "\n", pos)
        if at < 0:
            first = b.split("\n")[0]
            print(f"block starting {first!r} ({len(b)} bytes) not found byte-identical "
                  f"in slapoc's output after offset {pos}")
            failed += 1
        else:
            pos = at + len(b)
    print(f"{len(modules) + len(finds) - failed} of {len(modules) + len(finds)} blocks identical")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
