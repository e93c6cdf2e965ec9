#!/usr/bin/env python3
"""Hostile input for the front end: `slapoc --check` must answer each file
with the right diagnostic and exit status, in reasonable time, and never
crash or hang.

    python3 tests/badinput/test_badinput.py

Environment:
  SLAPO_BUILD       build directory holding tools/slapoc (default: build, from
                    the repository root)
  SLAPO_ASAN_BUILD  optional second build made with -Db_sanitize=address,undefined;
                    when set, every case runs under it as well (the 50 MB file
                    shrinks to 5 MB there) and any sanitizer report fails the test

Exit status 0 when every case passes, 1 otherwise (a missing slapoc fails too).
"""

import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(os.environ.get("SLAPO_ROOT") or Path(__file__).resolve().parents[2])
TIMEOUT = 60  # seconds for one run
BIG_LIMIT = 20.0  # seconds allowed for the 50 MB file (plain build)


def build_dir(var, default):
    value = os.environ.get(var, default)
    if not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else ROOT / path


# Each case: name, file bytes (or a function of the size scale), expected
# exit status, expected diagnostic as (line, column, text) -- column None
# when it is not worth pinning down -- or a whole stderr line when line is
# None, or no diagnostic at all.
STATEMENTS = (
    b"# layer {i}: decompose the dense layer of the intermediate block\n"
    b"subsch = sch[\"bert.encoder.layer.{i}.intermediate\"]\n"
    b"subsch[\"dense\"].decompose()\n"
    b"x = [1, 2.5, \"three\", none, true] + y * (z - 1) ** 2\n"
)


def big_file(size):
    block = STATEMENTS
    return block * (size // len(block) + 1)


CASES = [
    ("truncated",
     b"module M(config) {\n    dense = Linear(config.hidden_size,",
     1, (2, 19, "'(' never closed")),
    ("truncated-block",
     b"module M(config) {\n    dense = Linear(1, 2)\n    forward(x) {\n",
     1, (3, 16, "'{' never closed")),
    ("unterminated-string",
     b"x = \"abc\ny = 1\n",
     1, (1, 5, "unterminated string")),
    ("unterminated-interpolation",
     b"x = \"layer.{i\n",
     1, (1, 12, "unterminated interpolation (no '}' before the end of the string)")),
    ("unknown-character",
     b"x = 1 $ 2\n",
     1, (1, 7, "unexpected character '$'")),
    ("unknown-control-character",
     b"x = 1 \x01 2\n",
     1, (1, 7, "unexpected character U+0001")),
    ("deep-parens",
     b"(" * 10000 + b"\n",
     1, (1, 257, "nesting too deep (limit 256)")),
    ("deep-brackets",
     b"x = " + b"[" * 10000 + b"]" * 10000 + b"\n",
     1, (1, 261, "nesting too deep (limit 256)")),
    ("deep-blocks",
     b"for x in y {\n" * 10000,
     1, (257, 12, "nesting too deep (limit 256)")),
    ("deep-strings",
     b"x = \"" + b"{\"" * 5000 + b"\n",
     1, (1, 518, "nesting too deep (limit 256)")),
    ("deep-unary",
     b"x = " + b"-" * 100000 + b"1\n",
     1, (1, None, "expression nested too deeply (limit 1000)")),
    ("long-chain",
     b"x = " + b" + ".join([b"a"] * 5000) + b"\n",
     1, (1, None, "expression nested too deeply (limit 1000)")),
    ("nul-byte",
     b"x = 1\n\0y = 2\n",
     1, (2, 1, "source contains a NUL byte")),
    ("invalid-utf8",
     b"x = \"\xff\"\n",
     1, (1, 6, "invalid UTF-8 byte 0xff")),
    ("overlong-utf8",
     b"x = 1\ny = \"\xc0\xaf\"\n",
     1, (2, 6, "invalid UTF-8 byte 0xc0")),
    ("empty", b"", 0, None),
    ("only-comments", b"# nothing\n\n   # here\n", 0, None),
    ("big-valid", big_file, 0, None),
    ("too-big",
     lambda scale: b"#" * ((64 << 20) + 1),
     1, (None, None, "slapoc: error: cannot read '{path}': file is larger than the 64 MiB limit")),
]

SANITIZER = re.compile(rb"(AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer|runtime error:)")


def run(slapoc, path):
    start = time.monotonic()
    try:
        p = subprocess.run([str(slapoc), "--check", str(path)], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, b"", b"", TIMEOUT
    return p.returncode, p.stdout, p.stderr, time.monotonic() - start


def check_case(slapoc, tmp, name, content, want_status, want_diag, asan):
    """A list of failure messages for one case (empty when it passes)."""
    if callable(content):
        content = content(5_000_000 if asan else 50_000_000)
    path = tmp / (name + ".slapo")
    path.write_bytes(content)
    status, out, err, secs = run(slapoc, path)
    path.unlink()
    fails = []
    if status is None:
        return ["timed out after %d s" % TIMEOUT]
    if status < 0:
        fails.append("killed by signal %d" % -status)
    elif status != want_status:
        fails.append("exit %d, expected %d" % (status, want_status))
    if SANITIZER.search(err):
        fails.append("sanitizer report")
    if out:
        fails.append("unexpected stdout")
    if name == "big-valid" and not asan and secs > BIG_LIMIT:
        fails.append("took %.1f s (limit %.0f s)" % (secs, BIG_LIMIT))
    text = err.decode("utf-8", errors="replace")
    first = text.splitlines()[0] if text else ""
    if want_diag is None:
        if text:
            fails.append("unexpected diagnostics")
    else:
        line, col, msg = want_diag
        if line is None:
            want = msg.format(path=path)
            if first != want:
                fails.append("first line %r, expected %r" % (first, want))
        else:
            m = re.match(r"(.*):(\d+):(\d+): error: (.*)$", first)
            if not m:
                fails.append("no 'file:line:col: error:' line first: %r" % first)
            else:
                got = (m.group(1), int(m.group(2)), int(m.group(3)), m.group(4))
                if (got[0] != str(path) or got[1] != line or
                        (col is not None and got[2] != col) or got[3] != msg):
                    fails.append("got %s:%d:%d: %s, expected line %d col %s: %s"
                                 % (got + (line, col, msg)))
    if fails:
        fails.append("stderr: " + text[:400].replace("\n", "\n        "))
    return fails


def mutants(seed, count):
    """Small random edits of the quick start: cut, doubled, swapped, dropped
    and foreign bytes (all valid UTF-8, so the lexer and parser see them)."""
    src = (ROOT / "examples" / "quick-start.slapo").read_bytes()
    pieces = [b"(", b")", b"[", b"]", b"{", b"}", b"\"", b"{x}", b"\n", b"..", b"**",
              b"=", b",", b":", b"#", b"\\", b"\xc3\xa9", b"$", b"else", b"forward",
              b"module M() {", b"pattern", b"1e999", b"99999999999999999999"]
    rng = random.Random(seed)
    for i in range(count):
        data = bytearray(src)
        for _ in range(rng.randint(1, 6)):
            pos = rng.randrange(len(data) + 1)
            op = rng.randrange(4)
            if op == 0:
                data[pos:pos] = rng.choice(pieces)
            elif op == 1:
                del data[pos:pos + rng.randint(1, 20)]
            elif op == 2:
                data = data[:pos]
            else:
                n = rng.randint(1, 30)
                data[pos:pos] = data[pos:pos + n]
        yield "mutant-%d" % i, bytes(data)


def check_mutant(slapoc, tmp, name, content):
    path = tmp / (name + ".slapo")
    path.write_bytes(content)
    status, out, err, _ = run(slapoc, path)
    fails = []
    if status is None:
        fails.append("timed out")
    elif status not in (0, 1):
        fails.append("exit %d" % status)
    elif SANITIZER.search(err):
        fails.append("sanitizer report")
    elif status == 1 and not re.search(rb": error: ", err):
        fails.append("exit 1 without an error message")
    if fails:
        keep = tmp.parent / ("slapo-badinput-" + name + ".slapo")
        keep.write_bytes(content)
        fails.append("input kept in %s" % keep)
    path.unlink()
    return fails


def main():
    builds = []
    plain = build_dir("SLAPO_BUILD", "build")
    builds.append(("", plain))
    asan = build_dir("SLAPO_ASAN_BUILD", "")
    if asan:
        builds.append(("asan", asan))
    failed = passed = 0
    with tempfile.TemporaryDirectory(prefix="slapo-badinput-") as d:
        tmp = Path(d)
        for tag, build in builds:
            slapoc = build / "tools" / "slapoc"
            if not slapoc.exists():
                print("FAIL %s does not exist (build slapoc first)" % slapoc)
                failed += 1
                continue
            prefix = tag + "/" if tag else ""
            results = [(name, check_case(slapoc, tmp, name, content, status, diag, bool(tag)))
                       for name, content, status, diag in CASES]
            results += [(name, check_mutant(slapoc, tmp, name, content))
                        for name, content in mutants(20240601, 300)]
            for name, fails in results:
                if fails:
                    failed += 1
                    print("FAIL %s%s: %s" % (prefix, name, "\n    ".join(fails)))
                else:
                    passed += 1
        if not asan:
            print("(SLAPO_ASAN_BUILD not set: the sanitizer runs were skipped)")
    print("badinput: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
