#!/usr/bin/env python3
"""Run slapoc's test suites and count the results.

    python3 tests/run.py [-k PATTERN] [-v] [-j N] [--build DIR] [--root DIR] [--no-build]

Suites, in this order (tests/README.md describes them):
  unit/    meson's C unit tests (`meson test`), read from meson-logs/testlog.json
  golden/  tests/golden/**/*.slapo: `# RUN:` commands whose output must equal the
           `.expected` file beside the test
  script/  tests/**/test_*.py, test_*.sh and executable test_*: exit 0 pass, 77 skip

Prints one block per failure, then one line `N passed, N failed[, N skipped]`, and
exits 1 if anything failed.  Python 3 standard library only; tests/update-golden.py
imports this file for the golden-test machinery.
"""

import argparse
import difflib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

GOLDEN_TIMEOUT = 60  # seconds per `# RUN:` command
SCRIPT_TIMEOUT = 600  # seconds per script test
SKIP_STATUS = 77  # exit status meaning "skipped" (meson's convention)
TAIL_LINES = 40  # output lines shown for a failed unit or script test
DIFF_LINES = 60  # diff lines shown for a failed golden test
TOOLS = ("slapoc", "slapo-run")  # command names that resolve to <build>/tools/NAME
DEFAULT_RUN = "slapoc --check %s"
RUN_RE = re.compile(r"#\s*RUN:\s*(.*\S)")


class Result:
    """One test's outcome: status is 'pass', 'fail' or 'skip'."""

    def __init__(self, name, status, detail=""):
        self.name = name
        self.status = status
        self.detail = detail  # why it failed or was skipped; may span lines


class Context:
    """Where things are, and the child processes still running."""

    def __init__(self, root, build, jobs=None):
        self.root = Path(root).resolve()
        build = Path(build)
        self.build = build if build.is_absolute() else self.root / build
        self.jobs = jobs or os.cpu_count() or 1
        self.tmp = Path(tempfile.mkdtemp(prefix="slapo-tests-"))  # holds the %t paths
        self.live = set()  # running Popen objects, killed by close()
        self.closed = False
        self.lock = threading.Lock()
        self.env = dict(os.environ)
        self.env.update(
            SLAPO_BUILD=str(self.build),
            SLAPO_ROOT=str(self.root),
            PATH=str(self.build / "tools") + os.pathsep + os.environ.get("PATH", ""),
            LC_ALL="C",
            NO_COLOR="1",
        )

    def close(self):
        with self.lock:
            self.closed = True
            for p in self.live:
                kill_group(p)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run(self, argv, timeout, merge=False):
        """Run argv from the repository root with stdin closed.  Returns (status,
        stdout, stderr), the outputs as bytes; status is None on a timeout and
        negative for a signal.  With merge, stderr goes into stdout."""
        with self.lock:
            if self.closed:
                raise KeyboardInterrupt
            p = subprocess.Popen(
                argv,
                cwd=self.root,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT if merge else subprocess.PIPE,
                start_new_session=True,  # a process group of its own, killed whole
            )
            self.live.add(p)
        try:
            out, err = p.communicate(timeout=timeout)
            status = p.returncode
        except subprocess.TimeoutExpired:
            kill_group(p)
            out, err = p.communicate()
            status = None
        except BaseException:  # Ctrl-C while waiting
            kill_group(p)
            raise
        finally:
            with self.lock:
                self.live.discard(p)
        return status, out, err or b""


def kill_group(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def text(data):
    """Bytes to str, keeping undecodable bytes so that they round-trip to files."""
    return data.decode("utf-8", errors="surrogateescape")


def tail(s, n=TAIL_LINES):
    lines = s.rstrip("\n").splitlines()
    cut = ["... (%d lines cut)" % (len(lines) - n)] if len(lines) > n else []
    return "\n".join(cut + lines[-n:])


def signal_name(n):
    try:
        return signal.Signals(n).name
    except ValueError:
        return "signal %d" % n


def build(ctx):
    """Bring the build up to date with ninja.  Returns a failed Result or None."""
    if not (ctx.build / "build.ninja").exists():
        return None  # unit_tests() reports it
    status, out, _ = ctx.run(["ninja", "-C", str(ctx.build), "--quiet"], None, merge=True)
    if status != 0:
        why = "ninja -C %s failed:\n%s" % (ctx.build, tail(text(out)))
        return Result("build", "fail", why)
    return None


# ---- unit/: meson's C unit tests ------------------------------------------------------

MESON_STATUS = {"OK": "pass", "EXPECTEDFAIL": "pass", "SKIP": "skip"}  # others fail


def unit_tests(ctx, pattern):
    if not (ctx.build / "build.ninja").exists():
        yield Result("unit", "fail", "%s is not configured: run `bash scripts/setup.sh`"
                     % ctx.build)
        return
    intro = ctx.build / "meson-info" / "intro-tests.json"
    tests = json.loads(intro.read_text()) if intro.exists() else []
    names = sorted({t["name"] for t in tests if pattern in "unit/" + t["name"]})
    if not names:
        return
    log = ctx.build / "meson-logs" / "testlog.json"
    if log.exists():
        log.unlink()
    argv = ["meson", "test", "-C", str(ctx.build), "--no-rebuild", "--print-errorlogs", "-q"]
    argv += names if pattern else []
    meson_status, out, _ = ctx.run(argv, None, merge=True)
    failed = False
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    records = [json.loads(line) for line in lines if line.strip()]
    for r in sorted(records, key=lambda r: r["name"]):  # the log is in finishing order
        name = "unit/" + r["name"].split(" / ")[-1]  # drop a "project:suite / " prefix
        status = MESON_STATUS.get(r["result"], "fail")
        output = (r.get("stdout") or "") + (r.get("stderr") or "")
        if status == "fail":
            failed = True
            detail = "%s (exit %s)\n%s" % (r["result"], r.get("returncode"), tail(output))
        else:
            detail = tail(output, 1)
        yield Result(name, status, detail)
    if meson_status != 0 and not failed:
        yield Result("unit", "fail", "meson test failed:\n" + tail(text(out)))


# ---- golden/: tests/golden/**/*.slapo -------------------------------------------------


def golden_tests(ctx, patterns):
    """(name, path) of the golden tests whose name or path holds one of patterns.
    Files under a directory named `inputs` are helpers that tests import, not tests."""
    top = ctx.root / "tests" / "golden"
    found = []
    for path in sorted(top.rglob("*.slapo")):
        if "inputs" in path.relative_to(top).parts[:-1]:
            continue
        name = "golden/" + path.relative_to(top).with_suffix("").as_posix()
        rel = path.relative_to(ctx.root).as_posix()
        if any(p in name or p in rel for p in patterns):
            found.append((name, path))
    return found


def run_commands(path):
    """The `# RUN:` commands of a test's header (its leading comment and blank
    lines), or the default command when there are none."""
    cmds = []
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            break
        m = RUN_RE.fullmatch(line)
        if m:
            cmds.append(m.group(1))
    return cmds or [DEFAULT_RUN]


def golden_output(ctx, name, path):
    """Run a golden test's commands.  Returns (output, None) with output in the
    .expected format, or (None, why) when there is nothing to compare: a missing
    tool, a timeout, a signal."""
    rel = path.relative_to(ctx.root).as_posix()
    tmp = ctx.tmp / name
    tmp.parent.mkdir(parents=True, exist_ok=True)
    subst = {"s": rel, "S": Path(rel).parent.as_posix(), "t": str(tmp)}
    parts = []
    for cmd in run_commands(path):
        cmd = re.sub(r"%([sSt])", lambda m: shlex.quote(subst[m.group(1)]), cmd)
        try:
            words = shlex.split(cmd)
        except ValueError as e:
            return None, "bad RUN line (%s): %s" % (e, cmd)
        for tool in TOOLS:
            exe = ctx.build / "tools" / tool
            if tool in words and not exe.exists():
                return None, ("%s does not exist: the build failed or has not run "
                              "(bash scripts/setup.sh)" % exe)
        status, out, err = ctx.run(["bash", "-o", "pipefail", "-c", cmd], GOLDEN_TIMEOUT)
        output = text(out) + text(err)
        if status is None:
            return None, "timed out after %d s: %s" % (GOLDEN_TIMEOUT, cmd)
        if status < 0 or status > 128:  # bash reports a signal inside a pipe as 128+N
            sig = -status if status < 0 else status - 128
            return None, "killed by %s: %s\n%s" % (signal_name(sig), cmd, tail(output))
        if status != 0:
            if output and not output.endswith("\n"):
                output += "\n"
            output += "[exit %d]\n" % status
        parts.append(output)
    return "".join(parts), None


def expected_path(path):
    return path.with_suffix(".expected")


def read_expected(path):
    return text(expected_path(path).read_bytes())


def golden_diff(expected, actual):
    diff = list(difflib.unified_diff(expected.splitlines(), actual.splitlines(),
                                     "expected", "actual", n=2, lineterm=""))
    if not diff:
        return "the outputs differ only in line endings or the final newline"
    if len(diff) > DIFF_LINES:
        diff = diff[:DIFF_LINES] + ["... (%d diff lines cut)" % (len(diff) - DIFF_LINES)]
    return "\n".join(diff)


def golden_test(ctx, name, path):
    actual, why = golden_output(ctx, name, path)
    if why:
        return Result(name, "fail", why)
    exp = expected_path(path).relative_to(ctx.root)
    update = "python3 tests/update-golden.py " + name
    if not expected_path(path).exists():
        return Result(name, "fail", "%s is missing; write it with `%s`" % (exp, update))
    expected = read_expected(path)
    if actual != expected:
        return Result(name, "fail", "output differs from %s (if intended: %s)\n%s"
                      % (exp, update, golden_diff(expected, actual)))
    return Result(name, "pass")


def run_golden(ctx, pattern):
    pool = ThreadPoolExecutor(ctx.jobs)
    try:
        yield from pool.map(lambda t: golden_test(ctx, *t), golden_tests(ctx, [pattern]))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


# ---- script/: tests/**/test_*.py, test_*.sh, executable test_* -----------------------


def script_tests(ctx, pattern):
    top = ctx.root / "tests"
    for path in sorted(top.rglob("test_*")):
        rel = path.relative_to(top)
        if rel.parts[0] == "golden" or "__pycache__" in rel.parts or not path.is_file():
            continue
        if path.suffix == ".py":
            argv = [sys.executable, str(path)]
        elif path.suffix == ".sh":
            argv = ["bash", str(path)]
        elif os.access(path, os.X_OK):
            argv = [str(path)]
        else:
            continue
        name = "script/" + rel.as_posix()
        if pattern not in name:
            continue
        status, out, _ = ctx.run(argv, SCRIPT_TIMEOUT, merge=True)
        output = text(out)
        if status == 0:
            yield Result(name, "pass")
        elif status == SKIP_STATUS:
            yield Result(name, "skip", tail(output, 1))
        else:
            if status is None:
                why = "timed out after %d s" % SCRIPT_TIMEOUT
            elif status < 0:
                why = "killed by " + signal_name(-status)
            else:
                why = "exit %d" % status
            yield Result(name, "fail", "%s\n%s" % (why, tail(output)))


# ---- driver ---------------------------------------------------------------------------


def report(r, verbose):
    if r.status == "fail":
        print("FAIL %s: %s" % (r.name, r.detail.replace("\n", "\n    ")))
    elif verbose:
        why = " (%s)" % r.detail if r.status == "skip" and r.detail else ""
        print("%s %s%s" % (r.status.upper(), r.name, why))
    sys.stdout.flush()


def add_common_args(ap, root, what):
    """-j, --build, --root and --no-build (this script's and update-golden.py's)."""
    ap.add_argument("-j", dest="jobs", type=int, metavar="N",
                    help=f"{what} run N at a time (default: the CPU count)")
    ap.add_argument("--build", default="build", metavar="DIR",
                    help="build directory, relative to the root (default: build)")
    ap.add_argument("--root", default=str(root), metavar="DIR",
                    help="repository root (default: the one holding this script)")
    ap.add_argument("--no-build", action="store_true",
                    help="do not bring the build up to date with ninja first")


def main():
    root = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description="Run slapoc's tests (see tests/README.md).")
    ap.add_argument("-k", dest="pattern", default="", metavar="PATTERN",
                    help="run only the tests whose name holds PATTERN (e.g. golden/parser)")
    ap.add_argument("-v", dest="verbose", action="store_true",
                    help="print every test's name and result")
    add_common_args(ap, root, "golden tests")
    args = ap.parse_args()
    sys.stdout.reconfigure(errors="backslashreplace")

    ctx = Context(args.root, args.build, args.jobs)
    count = {"pass": 0, "fail": 0, "skip": 0}
    try:
        failed_build = None if args.no_build else build(ctx)
        results = [failed_build] if failed_build else []
        for suite in (results, unit_tests(ctx, args.pattern), run_golden(ctx, args.pattern),
                      script_tests(ctx, args.pattern)):
            for r in suite:
                report(r, args.verbose)
                count[r.status] += 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        ctx.close()

    line = "%d passed, %d failed" % (count["pass"], count["fail"])
    if count["skip"]:
        line += ", %d skipped" % count["skip"]
    print(line)
    return 1 if count["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
