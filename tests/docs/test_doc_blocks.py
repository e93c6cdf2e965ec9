#!/usr/bin/env python3
"""Every fenced code block of README.md and docs/*.md, run, so the docs cannot drift.

    test_doc_blocks.py [-v] [--update] [FILE.md ...]

A block's language and the `<!-- doc-test: ... -->` markers on the lines just above
its fence say what is done with it; tests/README.md has the convention:

  console  a transcript: each `$ command` runs (bash, on a pseudo terminal) and must
           print exactly the lines below it and exit 0 (marker `exit: N`: N)
  sh, bash a script, run with bash -e only when marked `run`; unmarked, it fails
           (mark it `run` or `skip: REASON`: installs, test-suite runs and file
           rewrites must never run by accident)
  slapo    `slapoc --check` (marker `run`: also `slapoc FILE`)
  c        compiled after #include <slapo/slapo.h> with -fsyntax-only; marker
           `program: ARGS`: a whole program, compiled and run with ARGS
  python   run with python/ on PYTHONPATH; must exit 0
  other    prose (text, ebnf, diagrams): not run

Other markers: `skip: REASON`; `needs: codegen` or Python modules (`needs: torch`);
`file: NAME` / `append: NAME` (the block is saved in the page's directory for the
commands that follow; slapo blocks are still checked); `excerpt-of: PATH` (the block
must appear verbatim in that file).

The blocks of one page run in order in one scratch directory that links the
repository's top-level entries (`examples/quick-start.slapo` resolves), with slapoc,
slapo-run and a python3 that has numpy first on PATH; slapoc is one that compiles
(`-o`): the build's, or the interim codegen/slapoc-cg. The suite run from inside a
block skips this test (SLAPO_DOC_TEST is set). --update rewrites each transcript
with what its commands print now: review it with git diff.
"""

import difflib
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import buildtools as bt  # noqa: E402

TIMEOUT = 300  # seconds per command or block
FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})\s*([^`\s]*)[^`]*$")
MARKER = re.compile(r"^\s*<!--\s*doc-test:\s*(.*?)\s*-->\s*$")
QUIET_LANGS = {"sh", "bash", "shell", "python", "c"}  # `file`: saved, run by later commands
TEXT_LANGS = {"", "text", "ebnf", "json", "diff", "none", "plain", "troff"}


class Block:
    """A fenced block: its language, text, where it is, and its markers."""

    def __init__(self, path, line, lang, lines, markers, span):
        self.path, self.line, self.lang = path, line, lang.lower()
        self.lines = lines  # the block's lines, without the fences
        self.markers = markers  # {word: argument}
        self.span = span  # (first, last) line index of the content, 0-based

    @property
    def text(self):
        return "".join(l + "\n" for l in self.lines)

    def where(self):
        return "%s:%d" % (os.path.relpath(self.path, bt.ROOT), self.line)


def parse(path):
    """The fenced blocks of a Markdown file, in order."""
    lines = open(path, encoding="utf-8").read().split("\n")
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = len(m.group(1)), m.group(2), m.group(3)
        markers, k = {}, i - 1
        while k >= 0 and MARKER.match(lines[k]):
            word, _, arg = MARKER.match(lines[k]).group(1).partition(":")
            markers[word.strip()] = arg.strip()
            k -= 1
        j = i + 1
        close = re.compile(r"^ {0,3}%s%s*\s*$" % (re.escape(fence), re.escape(fence[0])))
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        body = [l[indent:] if l[:indent].strip() == "" else l.lstrip() for l in lines[i + 1:j]]
        blocks.append(Block(path, i + 1, lang, body, markers, (i + 1, j - 1)))
        i = j + 1
    return blocks


# ---- running ---------------------------------------------------------------


def run_tty(command, cwd, env):
    """Runs `bash -c command` on a pseudo terminal, as a person at a terminal
    would: stdout line-buffered, stdout and stderr interleaved as written.
    Returns (status, output) with \\r\\n turned back into \\n. Without
    pseudo terminals, runs it on a pipe (stderr merged into stdout)."""
    try:
        master, slave = pty.openpty()
    except OSError:
        return run_plain(["bash", "-c", command], cwd, env)
    p = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                         stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + TIMEOUT
    while True:
        ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            os.killpg(p.pid, 9)
            chunks.append(b"\n[timed out after %d s]\n" % TIMEOUT)
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    status = p.wait()
    return status, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def run_plain(argv, cwd, env, stdin=None):
    try:
        r = subprocess.run(argv, cwd=cwd, env=env, input=stdin, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True, timeout=TIMEOUT)
        return r.returncode, r.stdout
    except subprocess.TimeoutExpired:
        return None, "timed out after %d s" % TIMEOUT


def transcript(block):
    """[(command, expected output)] of a console block."""
    steps, cmd, out = [], None, []
    lines = iter(block.lines)
    for line in lines:
        if line.startswith("$ "):
            if cmd is not None:
                steps.append((cmd, out))
            cmd, out = line[2:], []
            while cmd.endswith("\\"):
                cmd = cmd[:-1] + "\n" + next(lines, "")
        elif cmd is not None:
            out.append(line)
        elif line.strip():
            raise ValueError("a console block starts with a `$ command` line")
    if cmd is not None:
        steps.append((cmd, out))
    return steps


def expected(out_lines):
    return "".join(l + "\n" for l in out_lines)


class Page:
    """The scratch directory and environment one Markdown file runs in."""

    def __init__(self, path, env):
        self.path, self.env = path, env
        self.dir = tempfile.mkdtemp(prefix="slapo-doc-")
        for name in os.listdir(bt.ROOT):
            if not name.startswith("."):
                os.symlink(os.path.join(bt.ROOT, name), os.path.join(self.dir, name))
        self.updates = {}  # block span -> new lines (--update)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def save(self, block):
        name = block.markers.get("file") or block.markers.get("append")
        if name:
            target = os.path.join(self.dir, name)
            if os.path.islink(target):  # a top-level entry of the repository: not it
                os.unlink(target)
            with open(target, "a" if "append" in block.markers else "w") as f:
                f.write(block.text)

    def temp(self, suffix, text):
        fd, path = tempfile.mkstemp(suffix=suffix, dir=self.dir)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return path

    # each returns None (passed) or a failure message
    def console(self, block, update):
        status_want = int(block.markers.get("exit", "0"))
        new_lines, failures = [], []
        for cmd, out in transcript(block):
            status, got = run_tty(cmd, self.dir, self.env)
            want = expected(out)
            if got and not got.endswith("\n"):
                got += "\n"
            new_lines += ["$ " + cmd.replace("\n", "\\\n")] + got.split("\n")[:-1]
            if status != status_want:
                failures.append("`%s` exited %s, want %d:\n%s" % (cmd, status, status_want, got))
            elif got != want:
                diff = difflib.unified_diff(want.split("\n"), got.split("\n"), "documented",
                                            "printed", lineterm="", n=2)
                failures.append("`%s` prints something else:\n%s" % (cmd, "\n".join(
                    list(diff)[:60])))
        if update and new_lines != block.lines:
            self.updates[block.span] = new_lines
            return None
        return "\n".join(failures) or None

    def sh(self, block, update):
        if "run" not in block.markers:  # never run a command list by accident
            return ("a ```%s block runs only when marked <!-- doc-test: run --> (or "
                    "<!-- doc-test: skip: REASON -->)" % block.lang)
        status, out = run_plain(["bash", "-e", self.temp(".sh", block.text)], self.dir, self.env)
        return None if status == 0 else "exit %s:\n%s" % (status, out[-3000:])

    def slapo(self, block, update):
        path = self.temp(".slapo", block.text)
        status, out = run_plain(["slapoc", "--check", path], self.dir, self.env)
        if status != 0:
            return "slapoc --check: %s" % out.replace(path, "BLOCK")
        if "run" in block.markers:
            status, out = run_plain(["slapoc", path], self.dir, self.env)
            if status != 0:
                return "slapoc: exit %s: %s" % (status, out[-3000:].replace(path, "BLOCK"))
        return None

    def c(self, block, update):
        inc = "-I" + os.path.join(bt.ROOT, "include")
        if "program" not in block.markers:
            src = self.temp(".c", "#include <slapo/slapo.h>\n" + block.text)
            status, out = run_plain(["cc", "-std=c11", "-Wall", "-fsyntax-only", inc, src],
                                    self.dir, self.env)
            return None if status == 0 else "does not compile:\n" + out
        src = self.temp(".c", block.text)
        exe = src[:-2]
        status, out = run_plain(["cc", "-std=c11", "-Wall", "-Werror", inc, src, "-ldl", "-o",
                                 exe], self.dir, self.env)
        if status != 0:
            return "does not compile:\n" + out
        status, out = run_plain(["bash", "-c", '"$0" ' + block.markers["program"], exe],
                                self.dir, self.env)
        return None if status == 0 else "the program exited %s:\n%s" % (status, out[-3000:])

    def python(self, block, update):
        status, out = run_plain(["python3", self.temp(".py", block.text)], self.dir, self.env)
        return None if status == 0 else "exit %s:\n%s" % (status, out[-3000:])


RUNNERS = {"console": Page.console, "sh": Page.sh, "bash": Page.sh, "shell": Page.sh,
           "slapo": Page.slapo, "c": Page.c, "python": Page.python}


def excerpt(block):
    """`excerpt-of: PATH`: the block must appear, verbatim, in that file."""
    path = block.markers.get("excerpt-of")
    if path and block.text not in open(os.path.join(bt.ROOT, path), encoding="utf-8").read():
        return "the block is no longer an excerpt of %s" % path
    return None


def environment(tmp):
    """(env, {need: why not} for what is missing)."""
    missing = {}
    bindir = os.path.join(tmp, "bin")
    os.makedirs(bindir)
    cc, why = bt.compiler(tmp)
    if not cc:
        missing["codegen"] = why
    tools = {"slapoc": cc or bt.slapoc(), "slapo-run": bt.slapo_run(),
             "python3": bt.python_with("numpy")}
    if not tools["python3"]:
        missing["numpy"] = "numpy is not installed for any python3 here"
        tools["python3"] = sys.executable
    if not tools["slapoc"]:
        missing["codegen"] = "slapoc is not built"
    for name, target in tools.items():
        if target:
            os.symlink(target, os.path.join(bindir, name))
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""),
               PYTHONPATH=os.path.join(bt.ROOT, "python"), SLAPO_ROOT=bt.ROOT,
               SLAPO_BUILD=bt.BUILD, SLAPO_FAKE_MODEL=bt.fake_model() or "",
               LC_ALL="C", NO_COLOR="1", TERM="dumb", PYTHONDONTWRITEBYTECODE="1",
               SLAPO_DOC_TEST="1")
    return bt.sanitizer_env(env), missing


def needs(block):
    """What a block needs: its `needs` marker, and numpy for Python code."""
    words = block.markers.get("needs", "").replace(",", " ").split()
    if block.lang == "python" or (block.lang == "console" and "python3 " in block.text):
        words.append("numpy")
    return words


def unmet(need, env, missing):
    """Why `need` (codegen, or a Python module) is not met here, or None."""
    if need not in missing and need != "codegen":
        r = subprocess.run(["python3", "-c", "import " + need], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        missing[need] = None if r.returncode == 0 else "%s is not installed for %s" % (
            need, shutil.which("python3", path=env["PATH"]))
    return missing.get(need)


def doc_files(args):
    if args:
        return [os.path.abspath(a) for a in args]
    docs = os.path.join(bt.ROOT, "docs")
    return [os.path.join(bt.ROOT, "README.md")] + sorted(
        os.path.join(docs, f) for f in os.listdir(docs) if f.endswith(".md"))


def rewrite(path, updates):
    lines = open(path, encoding="utf-8").read().split("\n")
    for (first, last), new in sorted(updates.items(), reverse=True):
        lines[first:last + 1] = new
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print("updated %d block(s) of %s" % (len(updates), os.path.relpath(path, bt.ROOT)))


def test_block(page, block, update, missing):
    """('ran' | 'failed' | 'skipped' | 'prose', message) for one block."""
    runner = RUNNERS.get(block.lang)
    why = block.markers.get("skip")
    for need in needs(block):
        reason = unmet(need, page.env, missing)
        if why is None and reason:
            why = "needs %s: %s" % (need, reason)
    if why is not None:
        return "skipped", why
    if "file" in block.markers or "append" in block.markers:
        name = block.markers.get("file") or block.markers.get("append")
        if "/" in name or name.startswith("."):  # the page's directory links the repository
            return "failed", "`file:` and `append:` take a plain file name, not %r" % name
        page.save(block)
        if runner is None or block.lang in QUIET_LANGS:
            return "ran", None  # the commands that follow use it
    if runner is None:
        if block.lang in TEXT_LANGS:
            return "prose", None
        return "skipped", "no runner for ```%s" % block.lang
    failure = runner(page, block, update) or excerpt(block)
    return ("failed", failure) if failure else ("ran", None)


def main(argv):
    if os.environ.get("SLAPO_DOC_TEST"):  # a doc block ran the test suite: no recursion
        print("skip: inside a doc block")
        return bt.SKIP
    verbose, update = "-v" in argv, "--update" in argv
    files = doc_files([a for a in argv if not a.startswith("-")])
    if not bt.slapoc():
        print("skip: slapoc is not built in %s" % bt.BUILD)
        return bt.SKIP
    counts = {"ran": 0, "skipped": 0, "prose": 0, "failed": 0}
    with tempfile.TemporaryDirectory(prefix="slapo-docs-") as tmp:
        env, missing = environment(tmp)
        for path in files:
            page = Page(path, env)
            try:
                for block in parse(path):
                    status, message = test_block(page, block, update, missing)
                    counts[status] += 1
                    where = "%s (```%s)" % (block.where(), block.lang)
                    if status == "failed":
                        print("FAIL %s: %s" % (where, message.replace("\n", "\n    ")))
                    elif status == "skipped":
                        print("skipped %s: %s" % (where, message))
                    elif verbose and status == "ran":
                        print("ok " + where)
                if page.updates:
                    rewrite(path, page.updates)
            finally:
                page.close()
    print("doc blocks: %(ran)d ran, %(failed)d failed, %(skipped)d skipped, "
          "%(prose)d prose blocks not run" % counts)
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
