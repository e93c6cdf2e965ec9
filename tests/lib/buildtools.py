"""Where the built tools are, for script tests (Python standard library only).

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
    import buildtools as bt
    cc, why = bt.compiler(tmpdir)     # a slapoc that can do -o, or (None, why)

SLAPO_ROOT and SLAPO_BUILD come from tests/run.py (defaults: this checkout
and its build/).
"""

import os
import shutil
import subprocess
import sys

ROOT = os.environ.get("SLAPO_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("SLAPO_BUILD", "build"))
SKIP = 77


def tool(*rel):
    """The first of these build-relative paths that is an executable file."""
    for r in rel:
        p = os.path.join(BUILD, r)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def slapoc():
    return tool("tools/slapoc")


def slapo_run():
    return tool("tools/slapo-run", "runtime/slapo-run")


def fake_model():
    """The runtime's hand-written model library (tests/runtime/fake_model.c)."""
    p = os.path.join(BUILD, "tests", "runtime", "fake_mlp_a.so")
    return p if os.path.isfile(p) else None


_compiler = {}


def compiler(tmpdir):
    """(path, None) for a slapoc that compiles models (`-o`): build/tools/slapoc
    once it links the code generator, else the interim codegen/slapoc-cg;
    (None, why) when neither can. Probed once per process."""
    if "result" not in _compiler:
        probe = os.path.join(ROOT, "tests", "golden", "zoo", "bert-model.slapo")
        result = (None, "slapoc -o is not available (no code generator built)")
        for cc in (slapoc(), tool("codegen/slapoc-cg")):
            if not cc:
                continue
            out = os.path.join(tmpdir, "probe.so")
            r = subprocess.run([cc, probe, "-o", out], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            if r.returncode == 0 and os.path.isfile(out):
                result = (cc, None)
                break
        _compiler["result"] = result
    return _compiler["result"]


def python_with(module):
    """A Python 3 interpreter that can import `module`: this one, else
    /usr/bin/python3 or the python3 on PATH; None if none can."""
    candidates = [sys.executable, shutil.which("python3") or "", "/usr/bin/python3"]
    for py in candidates:
        if not py or not os.path.isfile(py):
            continue
        if py == sys.executable:
            try:
                __import__(module)
                return py
            except ImportError:
                continue
        r = subprocess.run([py, "-c", "import " + module], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        if r.returncode == 0:
            return py
    return None


def sanitizer_env(env):
    """env for a program that loads instrumented model libraries without
    being instrumented itself (Python through ctypes): under
    scripts/sanitize.sh, the sanitizer runtimes preloaded and leak
    detection off (the interpreter's own allocations are not ours).
    Returns env, changed in place; unchanged outside a sanitizer run."""
    preload = os.environ.get("SLAPO_SANITIZER_PRELOAD", "")
    if preload and preload not in env.get("LD_PRELOAD", ""):
        env["LD_PRELOAD"] = (preload + " " + env.get("LD_PRELOAD", "")).strip()
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    return env


def reexec_with(module):
    """Makes sure this script runs in a Python that has `module` (and, in a
    sanitizer run, the sanitizer runtimes preloaded): returns if this one
    does, re-executes the script with one that does, or exits 77 (skip)
    saying that no python3 has the module."""
    py = python_with(module)
    env = sanitizer_env(dict(os.environ))
    if py == sys.executable and env.get("LD_PRELOAD") == os.environ.get("LD_PRELOAD"):
        return
    if py is None or os.environ.get("SLAPO_TEST_REEXEC") == module:
        print("skip: %s is not installed for any python3 here" % module)
        sys.exit(SKIP)
    env["SLAPO_TEST_REEXEC"] = module
    os.execve(py, [py] + sys.argv, env)
