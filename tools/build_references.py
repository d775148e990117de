"""Build the reference files from the reference solutions: ``python3 kit.py references [topic ...]``.

Instructor-only (the student kit has neither this file nor the records it reads). Each exercise's record
(tools/exercises/<function>.toml) holds its cases and known mistakes:

* every ``[[case]]``, public or hidden: public cases go to ``checks/references/<topic>.pt`` (shipped to
  students), hidden ones to ``grader/hidden/<topic>.pt`` (graded by the grader only, never shipped);
* every ``[[mistake]]``, an edit of the solution. Its outputs are stored beside the reference output of every
  case where they differ, so a FAIL line can name the mistake that the student's outputs match without the
  checks holding any formula.

It first writes checks/child/specs.json from the records' ``[check]`` tables.

Built on the CPU, float32, one thread, fixed seeds and deterministic algorithms, so the files are
reproducible on any number of cores (a sum split over threads rounds differently). Run it only in the
solution tree: the student build's helpers are stubs.
"""
from __future__ import annotations

import argparse
import ast
import functools
import importlib
import random
import re
import sys
import tomllib
import types
from collections import Counter
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

from checks.child import specs; from checks.judge import references  # noqa: E402
from checks.child.compute import compute_case  # noqa: E402
from checks.child.core import DEFAULT_TOL, FOLLOW_UP, CaseResult, relative_error  # noqa: E402
from checks.judge import judge_case  # noqa: E402
from tools import exercises, inputs  # noqa: E402

HIDDEN_DIR = ROOT / "grader" / "hidden"
SEED = 0


class MistakeError(ValueError):
    """A mistake's edit no longer fits the solution: update its record (tools/exercises/)."""


def load_table(path: Path, key: str) -> list[dict]:
    return tomllib.loads(path.read_text(encoding="utf-8")).get(key, [])


# ------------------------------------------------------------------------------------------------ inputs

def build_inputs(params: dict) -> dict:
    """A case without its outputs, from its parameters, by the function of tools/inputs.py its record names."""
    name = specs.SPECS[params["check"]].inputs
    builder = getattr(inputs, name, None)
    if name.startswith("_") or not callable(builder):
        raise ValueError(f"tools/exercises/{params['check']}.toml: inputs = {name!r} is no function of tools/inputs.py")
    return builder(params)



# ------------------------------------------------------------------------------------------------ mistakes

def _span(text: str, function: str) -> tuple[int, int]:
    """Where the top-level function ``function`` is defined in ``text`` (start and end offsets)."""
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            lines = text.splitlines(keepends=True)
            first = node.lineno - 1 - len(node.decorator_list)
            start = sum(len(line) for line in lines[:first])
            return start, start + sum(len(line) for line in lines[first:node.end_lineno])
    raise MistakeError(f"helpers defines no function {function}")


def mutated_source(topic: str, edits: list[dict], name: str, text: str | None = None,
                   function: str | None = None) -> str:
    """The solution's helpers/<topic>.py (or ``text``) with ``edits`` applied; whole-line comments go first:
    the exercises' guidance may quote the code an edit targets. With ``function`` (an exercise's mistake or
    variant), each ``replace`` must occur exactly once in that function, so that another exercise of the same
    file may hold the same text; without it, exactly once in the file."""
    if text is None:
        path = ROOT / "helpers" / f"{topic}.py"
        text = "".join(line for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
                       if not line.lstrip().startswith("#"))
    for edit in edits:
        if "replace" not in edit:
            raise MistakeError(f"{name}: unknown edit {edit}")
        start, end = _span(text, function) if function else (0, len(text))
        part = text[start:end]
        count = part.count(edit["replace"])
        if count != 1:
            where = f"{function} in helpers/{topic}.py" if function else f"helpers/{topic}.py"
            raise MistakeError(f"{name}: {edit['replace']!r} occurs {count} times in {where}")
        text = text[:start] + part.replace(edit["replace"], edit["with"]) + text[end:]
    return text


def mutated_module(topic: str, edits: list[dict], name: str, function: str | None = None) -> types.ModuleType:
    """The solution module ``helpers.<topic>`` with ``edits`` applied (see :func:`mutated_source`), loaded under
    another name."""
    path = ROOT / "helpers" / f"{topic}.py"
    module = types.ModuleType(f"helpers.{topic}")
    module.__file__ = str(path)
    exec(compile(mutated_source(topic, edits, name, function=function), str(path), "exec"), module.__dict__)
    return module


# ------------------------------------------------------------------------------------------------ build

def build_topic(topic: str, cases: list[dict], mistakes: list[dict],
                mutants: bool = True) -> tuple[list[dict], list[dict]]:
    """(public cases, hidden cases) of one topic, each with its output and the outputs of its known mistakes
    (and, with ``mutants``, the sketches of its generated mutants)."""
    solution = importlib.import_module(f"helpers.{topic}")
    public, hidden = [], []
    device = torch.device("cpu")
    for params in cases:
        spec = specs.SPECS[params["check"]]
        if spec.topic != topic:
            continue
        case = build_inputs(params)
        if "dtype" in params:  # every floating-point input in that dtype (a model follows its images)
            case["inputs"] = _in_dtype(case["inputs"], getattr(torch, params["dtype"]))
            case["dtype"] = params["dtype"]
        if "layout" in params:  # how the inputs reach the function (checks.child.compute.laid_out)
            case["layout"] = params["layout"]
        case["check"] = spec.name
        if "grad" in params:  # a differentiable check's case where the output does not depend on the inputs
            case["grad"] = params["grad"]
        torch.manual_seed(SEED)
        result = compute_case(spec, solution, case, device)
        if not result.ok:
            raise RuntimeError(f"the solution fails its own case {spec.name} {params}: {result.problem}")
        case["output"] = result.outputs
        if spec.terms:
            case["terms"] = _terms(spec, solution, case, device)
        case["mistakes"] = []
        for number, mistake in enumerate(m for m in mistakes if m["check"] == spec.name):
            module = mutated_module(topic, mistake["edit"], f"{spec.name} mistake {number}", spec.name)
            torch.manual_seed(SEED)
            wrong = compute_case(spec, module, case, device)
            if not wrong.ok or _same(spec, wrong.outputs, case["output"], case):
                continue
            kept = spec.outputs + FOLLOW_UP  # what naming it compares (not the gradient parts)
            case["mistakes"].append({"cause": mistake["cause"],
                                     "output": {k: v for k, v in wrong.outputs.items() if k in kept}})
        case["mutants"] = _mutant_sketches(spec, case, device) if mutants and spec.measure is None else []
        (hidden if params.get("hidden") else public).append(case)
    return public, hidden


@functools.lru_cache(maxsize=None)
def _mutant_modules(topic: str, function: str) -> list:
    from tools.mutants import mutant_module, mutants

    return [(words, mutant_module(topic, text, f"{function} mutant {i}"))
            for i, (words, text) in enumerate(mutants(topic, function))]


def mutant_words(topic: str) -> dict[str, list[str]]:
    """{check: the words of each of its generated mutants} of one topic, as the build ran them: kept in the
    hidden file's meta, so that a fast test sees a file built before the operators changed."""
    from tools.mutants import mutants

    return {name: [words for words, _ in mutants(topic, name)] if spec.measure is None else []
            for name, spec in specs.SPECS.items() if spec.topic == topic}


def _mutant_sketches(spec: specs.Spec, case: dict, device) -> list[dict]:
    """[{"words", "sketch": {part: sketch}}] of the generated mutants (tools/mutants.py) whose outputs differ
    from the reference's on this case: sketches, not outputs, to keep the files small."""
    from checks.judge.sketch import sketch

    found = []
    for words, module in _mutant_modules(spec.topic, spec.name):
        torch.manual_seed(SEED)
        try:
            result = compute_case(spec, module, case, device)
        except Exception:  # noqa: BLE001 - a mutant that breaks the kit's harness tells nothing
            continue
        if not result.ok or _same(spec, result.outputs, case["output"], case):
            continue
        if all(part in result.outputs for part in spec.outputs):
            found.append({"words": words, "sketch": {part: sketch(result.outputs[part]) for part in spec.outputs}})
    return found


def _in_dtype(value, dtype: torch.dtype):
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, dict):
        return {k: _in_dtype(v, dtype) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_in_dtype(v, dtype) for v in value)
    return value


def _terms(spec: specs.Spec, solution, case: dict, device) -> list[dict]:
    """The solution's output for each element of the parallel list arguments alone (a sum's terms)."""
    def resolved(value):
        return case["inputs"][value[1:]] if isinstance(value, str) and value.startswith("@") else value

    lists = {i: list(resolved(case["args"][i])) for i in spec.terms}
    terms = []
    for k in range(len(next(iter(lists.values())))):
        args = [[lists[i][k]] if i in lists else a for i, a in enumerate(case["args"])]
        torch.manual_seed(SEED)
        result = compute_case(spec, solution, {**case, "args": args}, device)
        terms.append({"label": str(lists[spec.terms[0]][k]), "output": result.outputs["output"]})
    return terms


def _same(spec: specs.Spec, outputs: dict, reference: dict, case: dict | None = None) -> bool:
    if spec.measure is not None:  # a loop judged by its outcomes: the same when the judge passes it
        return judge_case(spec, {**case, "mistakes": []}, CaseResult(outputs)).passed
    return all(part in outputs and tuple(outputs[part].shape) == tuple(reference[part].shape)
               and relative_error(outputs[part], reference[part]) <= spec.tol.get(part, DEFAULT_TOL)
               for part in spec.outputs)


def draw_hidden(cases: list[dict], term_seed: int) -> list[dict]:
    """The cases with every hidden one drawn afresh from ``term_seed``: its photos (from the shipped ones),
    its seeds, its target classes and its jitter; its kind (check, sizes, settings) stays. A case that leaks
    out of one term's grading then says nothing about the next term's. Each case draws from its own generator
    (the term, its check, its place among that check's cases), so adding an exercise changes no other draw."""
    from convlens.images import read_photo_table

    pool = [p.name for p in read_photo_table()]
    drawn, seen = [], Counter()
    for params in cases:
        params = dict(params)
        rng = random.Random(f"convlens term {term_seed} {params['check']} {seen[params['check']]}")
        seen[params["check"]] += 1
        if params.get("hidden"):
            for key in ("photos", "style_photos"):
                if key in params:
                    params[key] = rng.sample(pool, len(params[key]))
            if "seed" in params:
                old, params["seed"] = params["seed"], rng.randrange(100, 100_000)
                params["label"] = re.sub(rf"\bseed={old}\b", f"seed={params['seed']}", params.get("label", ""))
            if "targets" in params:  # the small fixture networks have 10 classes, the pretrained one 1000
                classes = 10 if params.get("model") == "smooth" else 1000
                params["targets"] = rng.sample(range(classes), len(params["targets"]))
            if "jitter" in params:
                params["jitter"] = [rng.randint(-6, 6), rng.randint(-6, 6)]
        drawn.append(params)
    return drawn


def build(topic: str, term_seed: int | None = None, chosen: list[int] | None = None,
          answers_only: bool = False) -> tuple[list[dict], list[dict]]:
    """(public cases, hidden cases) of one topic, built; with ``chosen``, only those cases (positions in
    ``tools.exercises.cases()``), as the rebuild test draws them; with ``answers_only``, the solution's outputs
    without its known and generated mistakes."""
    torch.use_deterministic_algorithms(True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cases = exercises.cases()
    if term_seed is not None:
        cases = draw_hidden(cases, term_seed)
    if chosen is not None:
        cases = [cases[i] for i in chosen]
    try:
        return build_topic(topic, cases, [] if answers_only else exercises.mistakes(), mutants=not answers_only)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("topics", nargs="*", default=list(specs.TOPICS), help=f"default: all of {list(specs.TOPICS)}")
    parser.add_argument("--term-seed", type=int, metavar="N",
                        help="draw the hidden cases afresh from N (default: grading.term_seed in grader/points.toml, "
                             "if set) and rebuild only them; the shipped public cases stay as they are")
    args = parser.parse_args(argv)
    unknown = [t for t in args.topics if t not in specs.TOPICS]
    if unknown:
        parser.error(f"unknown topic(s) {unknown}; known: {list(specs.TOPICS)}")
    term_seed = args.term_seed
    if term_seed is None:
        from grader.points import load_points

        term_seed = load_points().term_seed
    if exercises.write_specs():
        print("checks/child/specs.json rewritten from tools/exercises/")
        specs.SPECS.clear()
        specs.SPECS.update(specs.load_specs())
    if exercises.write_readme_rows():
        print("README.md: the notebooks' lists of exercises rewritten from tools/exercises/")
    meta = {"seed": SEED, "device": "cpu", "dtype": "float32", "threads": 1, "model": "efficientnet_lite0"}
    for topic in args.topics:
        public, hidden = build(topic, term_seed)
        if term_seed is None:
            references.save(references.REFERENCES_DIR / f"{topic}.pt", public, {**meta, "topic": topic})
        references.save(HIDDEN_DIR / f"{topic}.pt", hidden,
                        {**meta, "topic": topic, "hidden": True, "term_seed": term_seed,
                         "mutants": mutant_words(topic)})
        stored = sum(len(c["mistakes"]) for c in public + hidden)
        print(f"{topic}: {len(public)} public and {len(hidden)} hidden case(s), {stored} stored mistake output(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
