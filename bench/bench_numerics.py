"""How much a loop's outcomes move with the machine's numerics, and whether a stored mistake keeps its pattern.

Runs every case of each check judged by outcomes (the reference solution and every stored mistake) under
several numerical settings, each in a fresh process: the CPU kernels torch picks (ATEN_CPU_CAPABILITY:
AVX-512 where the CPU has it, AVX2, the portable default), oneDNN on and off, one and two threads, the
network stored channels-last or not. Printed
per outcome: the largest change from the first setting, relative to the reference run's scale (a property's
allowance for properties: the spread a stored mistake must be matched across), and how many mistake runs change their failure pattern (which
outcomes fail, which way), which decides whether its cause is named on another machine
(checks/judge/ matches a stored mistake by that pattern first).

    python bench/bench_numerics.py
    python bench/bench_numerics.py --tier   # the whole fast tier under each setting of tests/test_numerics.py

With ``--tier`` it runs the whole fast tier (``kit.py test``'s tests) under each setting that the numerics test
runs a part of, the three at once, one test after another in each, and prints per setting the counts, the failed
tests and the wall time (tens of minutes: the plain kernels of oneDNN off are several times slower).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

from _common import ROOT, machine_line

SETTINGS = {"this CPU's kernels": {}, "AVX2 kernels": {"ATEN_CPU_CAPABILITY": "avx2"},
            "portable kernels": {"ATEN_CPU_CAPABILITY": "default"}, "oneDNN off": {"CONVLENS_ONEDNN": "0"},
            "two threads": {"OMP_NUM_THREADS": "2"}, "the network channels-last": {"CONVLENS_CHANNELS_LAST": "1"}}

RUN = r"""
import json, os, sys, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, os.getcwd())
import torch
from tests import numeric_settings
numeric_settings.apply()
from checks.child import outcomes, specs
from checks.judge import references
from checks.child.compute import compute_case
from tools import exercises
from tools.build_references import HIDDEN_DIR, mutated_module
import importlib
found = {}
for name, spec in specs.SPECS.items():
    if spec.measure is None:
        continue
    runs = {"reference": importlib.import_module(f"helpers.{spec.topic}")}
    for i, m in enumerate(m for m in exercises.mistakes() if m["check"] == name):
        runs[m["cause"]] = mutated_module(spec.topic, m["edit"], f"{name} {i}", name)
    cases = references.public_cases(name, spec.topic) + references.public_cases(name, spec.topic, HIDDEN_DIR)
    for k, case in enumerate(cases):
        reference = spec.measure(case["inputs"], case["output"])
        for run, module in runs.items():
            torch.manual_seed(0)
            result = compute_case(spec, module, references.without_answers(case), torch.device("cpu"))
            if not result.ok:
                continue
            mine = spec.measure(case["inputs"], result.outputs)
            scale = {o.name: float(reference[o.scale]) if o.scale else o.tol if o.rule == "at_most"
                     else max(float(reference[o.name].abs().max()), 1e-6) for o in spec.outcomes}
            found[f"{name}|{k}|{run}"] = {
                "values": {o.name: (mine[o.name].double() / scale[o.name]).flatten().tolist() for o in spec.outcomes},
                "pattern": repr(outcomes.failures(spec.outcomes, mine, reference))}
print(json.dumps(found))
"""


def measure(env: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", RUN], cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.splitlines()[-1])


def whole_tier() -> None:
    """The fast tier under each setting of the numerics test, as `kit.py test` collects it."""
    import re
    import tempfile
    import time

    from kit import FULL_TIER_ONLY
    from tests.test_numerics import SETTINGS as TIER_SETTINGS

    fast = " and ".join(f"not {m}" for m in FULL_TIER_ONLY)
    started, begun = {}, time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        for k, (label, env) in enumerate(TIER_SETTINGS.items()):
            command = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-W", "ignore", "-m", fast,
                       "--basetemp", os.path.join(scratch, str(k))]
            started[label] = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, text=True,
                                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for label, process in started.items():
            output, _ = process.communicate()
            summary = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed)", line)]
            failed = [line.split()[1] for line in output.splitlines() if line.startswith("FAILED ")]
            print(f"{label}: {summary[-1].strip('= ') if summary else 'no summary'}; exit {process.returncode}; "
                  f"done after {(time.perf_counter() - begun) / 60:.1f} min")
            for name in failed:
                print(f"    FAILED {name}")
    print(machine_line())


def main() -> None:
    warnings.simplefilter("ignore")
    if "--tier" in sys.argv[1:]:
        whole_tier()
        return
    print(machine_line())
    results = {label: measure(env) for label, env in SETTINGS.items()}
    base_label, base = next(iter(results.items()))
    for label, runs in list(results.items())[1:]:
        spread: dict[str, float] = {}
        moved = []
        for key, run in base.items():
            other = runs.get(key)
            if other is None:
                continue
            for outcome, values in run["values"].items():
                gaps = [abs(a - b) for a, b in zip(values, other["values"][outcome])]
                spread[outcome] = max(spread.get(outcome, 0.0), max(gaps, default=0.0))
            if not key.split("|")[2] == "reference" and run["pattern"] != other["pattern"]:
                moved.append(key)
        parts = ", ".join(f"{k} {v:.1e}" for k, v in spread.items())
        print(f"{label} vs {base_label}: largest change per outcome (of the reference's scale): {parts}; "
              f"mistake runs whose failure pattern changed: {len(moved)} of "
              f"{sum(1 for k in base if not k.endswith('|reference'))}")
        for key in moved[:5]:
            check, case, cause = key.split("|")
            print(f"    {check} case {case}: {cause[:90]}")


if __name__ == "__main__":
    main()
