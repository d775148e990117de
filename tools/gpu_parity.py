"""GPU parity: ``python3 -m tools.gpu_parity`` runs every check, public and hidden cases, with the reference
solutions on CUDA and on the CPU, and prints per check both verdicts and the largest measured error against
its tolerance. Run it on a machine with a CUDA GPU (a few minutes); without one it says so and stops.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

from checks.judge import references; from checks.child import specs  # noqa: E402
from checks.child.compute import compute_case  # noqa: E402
from checks.child.core import DEFAULT_TOL, relative_error  # noqa: E402
from checks.judge import run_check  # noqa: E402
from tools.build_references import HIDDEN_DIR  # noqa: E402


def run_on(device: torch.device, spec: specs.Spec, module, cases: list[dict]) -> tuple[str, float, list[dict]]:
    """(verdict line, worst error relative to the tolerance, results) of one check on ``device``."""
    results = []

    def compute(case):
        results.append(compute_case(spec, module, case, device))
        return results[-1]

    verdict = run_check(spec, cases, compute)
    worst = 0.0
    for case, result in zip(cases, results):
        for part in spec.outputs:
            if part in result.outputs and part in case.get("output", {}):
                error = relative_error(result.outputs[part], case["output"][part])
                worst = max(worst, error / spec.tol.get(part, DEFAULT_TOL))
    return verdict.line, worst, results


def main() -> int:
    if not torch.cuda.is_available():
        print("gpu_parity: no CUDA device here; run this on a machine with a GPU")
        return 0
    import importlib

    print(f"CUDA: {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
    start, mismatches = time.perf_counter(), 0
    print(f"{'check':<26}{'CPU':<6}{'CUDA':<6}{'worst error / tolerance (CPU, CUDA)':>40}{'CUDA vs CPU':>14}")
    for name, spec in specs.SPECS.items():
        module = importlib.import_module(f"helpers.{spec.topic}")
        cases = references.public_cases(name, spec.topic) + references.public_cases(name, spec.topic, HIDDEN_DIR)
        cpu_line, cpu_worst, cpu_results = run_on(torch.device("cpu"), spec, module, cases)
        gpu_line, gpu_worst, gpu_results = run_on(torch.device("cuda"), spec, module, cases)
        between = max((relative_error(g.outputs[k], c.outputs[k]) for c, g in zip(cpu_results, gpu_results)
                       for k in c.outputs if k in g.outputs), default=0.0)
        same = cpu_line == gpu_line
        mismatches += not same
        print(f"{name:<26}{cpu_line[:4]:<6}{gpu_line[:4]:<6}{cpu_worst:>25.2e}, {gpu_worst:.2e}{between:>14.1e}"
              + ("" if same else f"\n    CPU:  {cpu_line}\n    CUDA: {gpu_line}"))
    print(f"{len(specs.SPECS) - mismatches} of {len(specs.SPECS)} checks give the same verdict on CPU and CUDA "
          f"({time.perf_counter() - start:.0f} s)")
    return 0 if mismatches == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
