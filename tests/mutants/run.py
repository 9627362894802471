#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""
A mutation check of the security and correctness checks (`make mutants`):
each mutant in tests/mutants/mutants.py is a one-spot change to a check
(the check made to always pass, or its bound removed). The runner copies
the working tree into a scratch directory, builds it once (a test build,
-DSRDMA_TEST_HOOKS=ON), then for each mutant applies it, rebuilds, runs the
tests named beside it and prints KILLED (a test failed: the check is
covered) or SURVIVED (no test noticed). Mutants listed as equivalent are
not run; their reason is printed. The scratch tree is restored after each.

  python3 tests/mutants/run.py [--only ID,...] [--vm] [--keep] [--list]

--vm also runs the mutants whose tests need the Soft-RoCE VM (slow: one VM
boot each). Exit status: 0 if no mutant survived (and every mutant applied),
1 otherwise.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from mutants import MUTANTS  # noqa: E402


def sh(cmd, cwd, timeout, env=None, log=None):
    try:
        p = subprocess.run(cmd, cwd=cwd, shell=True, timeout=timeout,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=env)
        out = p.stdout.decode(errors="replace")
        if log:
            with open(log, "a") as f:
                f.write(f"$ {cmd}\n{out}\n[exit {p.returncode}]\n")
        return p.returncode, out
    except subprocess.TimeoutExpired:
        if log:
            with open(log, "a") as f:
                f.write(f"$ {cmd}\n[timed out after {timeout} s]\n")
        return 124, "timed out"


def copy_tree(dst):
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=SRC,
        stdout=subprocess.PIPE, check=True).stdout.decode().split("\n")
    for f in files:
        if not f or f.startswith("tests/vm/cache/"):
            continue
        s = os.path.join(SRC, f)
        if not os.path.isfile(s):
            continue
        d = os.path.join(dst, f)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        shutil.copy2(s, d)
    # the VM image cache is large and slow to rebuild: share it
    cache = os.path.join(SRC, "tests", "vm", "cache")
    link = os.path.join(dst, "tests", "vm", "cache")
    if os.path.isdir(cache) and not os.path.exists(link):
        os.symlink(cache, link)


def test_cmd(t, build):
    """A test is a ctest name (unit/x, integration/x) or a shell command."""
    if t.startswith("unit/") or t.startswith("integration/"):
        return f"cd {build} && ctest -R '^{t}$' --output-on-failure"
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    ap.add_argument("--vm", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--work", default=os.path.join(SRC, "build-mutants"))
    a = ap.parse_args()
    only = set(x for x in a.only.split(",") if x)

    if a.list:
        for m in MUTANTS:
            kind = "equivalent" if m.get("equivalent") else (
                "vm" if m.get("vm") else "native")
            print(f"{m['id']:14} {kind:10} {m['file']}: {m['what']}")
        return 0

    work = a.work
    tree = os.path.join(work, "src")
    build = os.path.join(work, "build")
    log = os.path.join(work, "mutants.log")
    if os.path.exists(tree):
        shutil.rmtree(tree)
    os.makedirs(tree)
    copy_tree(tree)
    open(log, "w").close()
    env = dict(os.environ, SRDMA_SRC=tree, SRDMA_BUILD=build)
    print(f"mutants: scratch tree {tree}; log {log}")
    rc, _ = sh(f"cmake -S {tree} -B {build} -DCMAKE_BUILD_TYPE=RelWithDebInfo "
               f"-DSRDMA_TEST_HOOKS=ON >/dev/null", work, 600, env, log)
    rc2, out = sh(f"cmake --build {build} -j{os.cpu_count()}", work, 1800,
                  env, log)
    if rc or rc2:
        print("mutants: the unmutated tree does not build; see the log")
        return 1

    results = []
    baseline_ok = {}
    t0 = time.time()
    for m in MUTANTS:
        if only and m["id"] not in only:
            continue
        if m.get("equivalent"):
            results.append((m, "EQUIVALENT", m["equivalent"]))
            print(f"{m['id']:14} EQUIVALENT  {m['equivalent']}")
            continue
        if m.get("vm") and not a.vm:
            results.append((m, "NOT RUN", "needs the VM (--vm)"))
            print(f"{m['id']:14} NOT RUN     needs the VM (--vm)")
            continue
        path = os.path.join(tree, m["file"])
        text = open(path).read()
        n = text.count(m["old"])
        if n != 1:
            results.append((m, "ERROR", f"the spot occurs {n} times"))
            print(f"{m['id']:14} ERROR       the spot occurs {n} times "
                  f"in {m['file']}")
            continue
        # The tests must pass on the unmutated tree first (once each).
        for t in m["tests"]:
            if t not in baseline_ok:
                r, _ = sh(test_cmd(t, build), tree, m.get("timeout", 900),
                          env, log)
                baseline_ok[t] = r == 0
        bad = [t for t in m["tests"] if not baseline_ok[t]]
        if bad:
            results.append((m, "ERROR", "fails unmutated: " + ", ".join(bad)))
            print(f"{m['id']:14} ERROR       fails unmutated: {', '.join(bad)}")
            continue
        start = time.time()
        open(path, "w").write(text.replace(m["old"], m["new"]))
        try:
            with open(log, "a") as f:
                f.write(f"\n===== {m['id']}: {m['what']}\n")
            r, out = sh(f"cmake --build {build} -j{os.cpu_count()}", work,
                        1800, env, log)
            if r != 0:
                verdict, why = "ERROR", "the mutant does not build"
            else:
                verdict, why = "SURVIVED", "no test failed"
                for t in m["tests"]:
                    r, _ = sh(test_cmd(t, build), tree,
                              m.get("timeout", 900), env, log)
                    if r != 0:
                        verdict, why = "KILLED", f"by {t}"
                        break
        finally:
            open(path, "w").write(text)
            # Back to the unmutated build before the next baseline.
            sh(f"cmake --build {build} -j{os.cpu_count()}", work, 1800,
               env, log)
        results.append((m, verdict, why))
        print(f"{m['id']:14} {verdict:11} {why} ({time.time() - start:.0f} s)"
              f"  -- {m['file']}: {m['what']}", flush=True)

    counts = {}
    for _, v, _ in results:
        counts[v] = counts.get(v, 0) + 1
    print("mutants: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
          + f" ({time.time() - t0:.0f} s)")
    if not a.keep:
        shutil.rmtree(tree, ignore_errors=True)
    return 1 if counts.get("SURVIVED") or counts.get("ERROR") else 0


if __name__ == "__main__":
    sys.exit(main())
