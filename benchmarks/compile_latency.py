"""Compile latency: cold, cached (a new process) and in-process seconds to the first step.

For each case script in ``benchmarks/latency/`` (the main job's kernel variants; a user's own
``@njit`` band model, disorder spectrum and channel) this runs

* **cold**: a new process with an empty kernel cache (``PACKETS_CACHE_DIR`` = a fresh temporary
  directory): everything is compiled;
* **cached**: a second new process with that same cache directory: what a physicist waits for when
  rerunning a script after editing a parameter value;
* **in-process**: the case's ``main()`` run a second time inside the cached process (kernels already
  in memory),

and prints the seconds from process start to the end of the first step of each (``python -c`` start
time passed to the case, so interpreter start-up and imports are included), plus the results of the
cold and cached runs, which must agree bit for bit.

Usage::

    python benchmarks/compile_latency.py            # both cases
    python benchmarks/compile_latency.py main_job   # one case

Timing is machine- and load-dependent: run it on an otherwise idle machine.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CASES = ("main_job", "user_model_channel")


def run_case(name, cache):
    """Run one case script in a new process with the given cache directory; returns its JSON record."""
    env = dict(os.environ, PACKETS_CACHE_DIR=cache)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    script = os.path.join(HERE, "latency", f"{name}.py")
    t0 = time.time()
    proc = subprocess.run([sys.executable, script, repr(t0)], env=env, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
    rec = json.loads(proc.stdout.strip().splitlines()[-1])
    rec["wall"] = time.time() - t0
    return rec


def main(cases=CASES):
    rows = []
    for name in cases:
        with tempfile.TemporaryDirectory(prefix="packets-latency-") as cache:
            cold = run_case(name, cache)
            warm = run_case(name, cache)
        same = cold["jx"] == warm["jx"]
        rows.append((name, cold["to_first_step"], warm["to_first_step"], warm["in_process"], same))
        print(f"{name}: cold {cold['to_first_step']:.1f} s, cached {warm['to_first_step']:.1f} s, "
              f"in-process {warm['in_process']:.2f} s; cold and cached results identical: {same}", flush=True)
    print()
    print("| variant | cold compile (s) | cached, new process (s) | in-process (s) |")
    print("| --- | --- | --- | --- |")
    for name, c, w, i, _ in rows:
        print(f"| {name} | {c:.1f} | {w:.1f} | {i:.2f} |")
    return rows


if __name__ == "__main__":
    main(tuple(sys.argv[1:]) or CASES)
