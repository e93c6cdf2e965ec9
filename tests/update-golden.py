#!/usr/bin/env python3
"""Regenerate the .expected files of golden tests, for review with `git diff`.

    python3 tests/update-golden.py [PATTERN...] [-j N] [--build DIR] [--root DIR]
                                   [--no-build]

With no PATTERN, every test under tests/golden/; otherwise the tests whose name
(golden/parser/foo) or path (tests/golden/parser/foo.slapo) holds one of the patterns.
Prints each .expected file it creates or changes.  A test that times out, is killed by
a signal or needs a tool that was not built keeps its old file and makes the exit
status 1.
"""

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (tests/run.py)


def main():
    root = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description="Regenerate golden .expected files.")
    ap.add_argument("patterns", nargs="*", metavar="PATTERN",
                    help="only the tests whose name or path holds PATTERN")
    run.add_common_args(ap, root, "tests")
    args = ap.parse_args()

    ctx = run.Context(args.root, args.build, args.jobs)
    try:
        failed_build = None if args.no_build else run.build(ctx)
        if failed_build:
            print("update-golden: %s" % failed_build.detail, file=sys.stderr)
            return 1
        tests = run.golden_tests(ctx, args.patterns or [""])
        with ThreadPoolExecutor(ctx.jobs) as pool:
            outputs = list(pool.map(lambda t: run.golden_output(ctx, *t), tests))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        ctx.close()

    changed = unchanged = errors = 0
    for (name, path), (output, why) in zip(tests, outputs):
        exp = run.expected_path(path)
        rel = exp.relative_to(ctx.root)
        if why:
            errors += 1
            print("error %s: %s" % (name, why.replace("\n", "\n    ")))
        elif exp.exists() and run.read_expected(path) == output:
            unchanged += 1
        else:
            print("%s %s" % ("updated" if exp.exists() else "created", rel))
            exp.write_bytes(output.encode("utf-8", errors="surrogateescape"))
            changed += 1
    print("%d changed, %d unchanged%s" % (changed, unchanged,
                                         ", %d errors" % errors if errors else ""))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
