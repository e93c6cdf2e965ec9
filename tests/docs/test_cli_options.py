#!/usr/bin/env python3
"""The options of slapoc and slapo-run: `--help`, docs/cli.md and docs/slapoc.1 agree.

  slapoc     the options `slapoc --help` lists, the rows of the slapoc table of
             docs/cli.md and the OPTIONS of the manual page docs/slapoc.1 are the
             same set; the page's version (.TH) is `slapoc --version`'s; groff
             renders it without a warning (when groff is installed)
  slapo-run  `slapo-run --help` and the slapo-run table of docs/cli.md agree

An option is compared by name: `--verify-shape=B,S` is `--verify-shape`, `-o FILE`
is `-o`; a fixed value stays (`--dump-after=lower`). Python 3 standard library only.
"""

import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import buildtools as bt  # noqa: E402

failures = []


def norm(opt):
    """'--emit=KIND' -> '--emit'; '--dump-after=lower' stays."""
    name, eq, value = opt.partition("=")
    if eq and (not value or re.fullmatch(r"[A-Z][A-Z0-9_,]*", value)):
        return name
    return opt


def from_help(text):
    """Options of a usage text: the option column of lines that start with '-'."""
    opts = set()
    for line in text.splitlines():
        m = re.match(r"^\s+(-\S.*?)(\s{2,}|$)", line)
        if not m:
            continue
        for piece in re.split(r",\s+|\s+/\s+", m.group(1)):
            word = piece.split()[0] if piece.split() else ""
            if word.startswith("-"):
                opts.add(norm(word))
    return opts


def from_cli_md(path, tool):
    """Options in the first cells of the table rows of `## TOOL` in docs/cli.md."""
    opts, inside = set(), False
    for line in open(path, encoding="utf-8"):
        if line.startswith("## "):
            inside = line.strip() == "## " + tool
        elif inside and line.startswith("| `-"):
            cell = line.split(" | ")[0]
            for span in re.findall(r"`([^`]+)`", cell):
                opts.add(norm(span.split()[0]))
    return opts


def from_man(path):
    """Options of the OPTIONS section: the line after each .TP."""
    lines = open(path, encoding="utf-8").read().splitlines()
    opts, inside = set(), False
    for i, line in enumerate(lines):
        if line.startswith(".SH"):
            inside = line.split(None, 1)[1].strip('"') == "OPTIONS"
        elif inside and line.startswith(".TP") and i + 1 < len(lines):
            tag = lines[i + 1].replace("\\-", "-")
            args = re.findall(r'"([^"]*)"|(\S+)', tag.split(None, 1)[1] if " " in tag else "")
            for quoted, bare in args:
                word = (quoted or bare).strip()
                if word.startswith("-"):
                    opts.add(norm(word.split()[0]))
    return opts


def same(what, a, b, a_name, b_name):
    if a - b:
        failures.append("%s: in %s, not in %s: %s" % (what, a_name, b_name, sorted(a - b)))
    if b - a:
        failures.append("%s: in %s, not in %s: %s" % (what, b_name, a_name, sorted(b - a)))


def output(argv):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    return r.stdout


def main():
    slapoc, slapo_run = bt.slapoc(), bt.slapo_run()
    if not slapoc or not slapo_run:
        print("skip: slapoc or slapo-run is not built in %s" % bt.BUILD)
        return bt.SKIP
    cli = os.path.join(bt.ROOT, "docs", "cli.md")
    man = os.path.join(bt.ROOT, "docs", "slapoc.1")

    helped = from_help(output([slapoc, "--help"]))
    same("slapoc", helped, from_cli_md(cli, "slapoc"), "slapoc --help", "docs/cli.md")
    same("slapoc", helped, from_man(man), "slapoc --help", "docs/slapoc.1")
    same("slapo-run", from_help(output([slapo_run, "--help"])), from_cli_md(cli, "slapo-run"),
         "slapo-run --help", "docs/cli.md")
    if len(helped) < 10:
        failures.append("slapoc --help: only %d options found: %s" % (len(helped), helped))

    version = output([slapoc, "--version"]).strip()
    th = next((l for l in open(man, encoding="utf-8") if l.startswith(".TH")), "")
    if '"%s"' % version not in th:
        failures.append("docs/slapoc.1: .TH says %r, slapoc --version %r" % (th.strip(), version))
    if shutil.which("groff"):
        warn = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", man],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True).stdout
        if warn.strip():
            failures.append("groff warns about docs/slapoc.1:\n" + warn)

    for f in failures:
        print("FAIL " + f)
    print("cli options: %d slapoc options, %d failures" % (len(helped), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
