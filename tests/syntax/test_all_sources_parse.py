#!/usr/bin/env python3
"""Every .slapo file shipped in lang/ and examples/ parses (`slapoc --check`),
and every example runs its schedule script to the end (`slapoc FILE`, output
discarded): the library and the examples cannot rot unnoticed."""
import glob
import os
import subprocess
import sys

root = os.environ.get("SLAPO_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
slapoc = os.path.join(root, os.environ.get("SLAPO_BUILD", "build"), "tools", "slapoc")


def run(args):
    return subprocess.run([slapoc] + args, cwd=root, capture_output=True, text=True,
                          timeout=300)


def main():
    files = sorted(glob.glob("lang/**/*.slapo", root_dir=root, recursive=True) +
                   glob.glob("examples/**/*.slapo", root_dir=root, recursive=True))
    failed = 0
    for f in files:
        r = run(["--check", f])
        if r.returncode != 0:
            print(f"FAIL --check {f}:\n{r.stderr}")
            failed += 1
    examples = [f for f in files if f.startswith("examples/")]
    for f in examples:
        r = run([f])
        if r.returncode != 0:
            print(f"FAIL running {f}:\n{r.stderr}")
            failed += 1
    print(f"{len(files)} files parsed, {len(examples)} examples run, {failed} failures")
    return 1 if failed or not files else 0


if __name__ == "__main__":
    sys.exit(main())
