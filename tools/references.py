"""Build the reference files from the reference solutions: ``python3 kit.py references [topic ...]``.

Instructor-only (the student kit has neither this file nor its two tables):

* ``tools/cases.toml``: every case of every check, public or hidden. To add a case, add a ``[[case]]``
  there and run this command: public cases go to ``checks/references/<topic>.pt`` (shipped to students),
  hidden ones to ``grader/hidden/<topic>.pt`` (graded by the grader only, never shipped);
* ``tools/mistakes.toml``: known mistakes, each an edit of the solution. Each one's outputs are stored
  beside the reference output of every case where they differ, so a FAIL line can name the mistake that the
  student's outputs match without the checks holding any formula.

Built on the CPU, float32, one thread, fixed seeds and deterministic algorithms, so the files are
reproducible on any number of cores (a sum split over threads rounds differently). Run it only in the
solution tree: the student build's helpers are stubs.
"""
from __future__ import annotations

import argparse
import functools
import importlib
import random
import re
import sys
import tomllib
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

from checks.child import fixtures, specs; from checks.judge import references  # noqa: E402
from checks.child.compute import compute_case  # noqa: E402
from checks.child.core import DEFAULT_TOL, FOLLOW_UP, CaseResult, relative_error  # noqa: E402
from checks.judge import judge_case  # noqa: E402

CASES_FILE = ROOT / "tools" / "cases.toml"
MISTAKES_FILE = ROOT / "tools" / "mistakes.toml"
HIDDEN_DIR = ROOT / "grader" / "hidden"
SEED = 0


class MistakeError(ValueError):
    """A mistake's edit no longer fits the solution: update tools/mistakes.toml."""


def load_table(path: Path, key: str) -> list[dict]:
    return tomllib.loads(path.read_text(encoding="utf-8")).get(key, [])


# ------------------------------------------------------------------------------------------------ inputs

def _photos(params: dict):
    from convlens.images import load_photos

    images, labels, _ = load_photos(params["photos"], size=params["size"])
    if "width" in params:  # a non-square case: the left part of each square photo
        images = images[..., : params["width"]].contiguous()
    if "labels" in params:
        labels = torch.tensor(params["labels"], dtype=torch.int64)
    if params.get("composite"):  # the second image: the first two photos side by side
        from convlens.images import side_by_side

        pair, _, _ = load_photos(params["composite"], size=params["size"])
        images = torch.cat([images, side_by_side(pair[0], pair[1], size=params["size"])[None]])
    return images, labels


def _random_weights(net: torch.nn.Module, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(value.shape, generator=generator)
            * (2.0 / value[0].numel() ** 0.5 if value.dim() > 1 else 0.1)
            for name, value in net.state_dict().items()}


def _features(params: dict) -> dict:
    from convlens.model import extract_features, load_model

    images, _ = _photos(params)
    with torch.no_grad():
        return {k: v.clone() for k, v in extract_features(load_model("cpu"), images, params["layers"]).items()}


# Keys of a photo case in cases.toml that describe the case, not the function's keyword arguments.
CASE_KEYS = {"check", "hidden", "label", "model", "photos", "size", "width", "labels", "composite", "follow_up",
             "dtype", "layout"}


def _photo_inputs(params: dict) -> dict:
    """model, images, labels (and the method's settings as keywords): the attribution exercises."""
    images, labels = _photos(params)
    kwargs = {k: v for k, v in params.items() if k not in CASE_KEYS}  # the rest are the method's settings
    return {"model": params.get("model", "pretrained"), "args": ["@model", "@images", "@labels"],
            "kwargs": kwargs, "arg_names": ["images", "labels"], "label": params.get("label", ""),
            "inputs": {"images": images, "labels": labels}, "follow_up": bool(params.get("follow_up"))}


def _photo_target_inputs(params: dict) -> dict:
    """model, images, targets, step size: one step toward a target class."""
    images, _ = _photos(params)
    return {"model": "pretrained", "args": ["@model", "@images", "@targets", params["step_size"]],
            "arg_names": ["images", "targets"], "label": params.get("label", ""),
            "inputs": {"images": images, "targets": torch.tensor(params["targets"], dtype=torch.int64)},
            "follow_up": bool(params.get("follow_up"))}


def build_inputs(params: dict) -> dict:
    """A case without its outputs, from its parameters in cases.toml, by its check's ``spec.inputs``."""
    return BUILDERS[specs.SPECS[params["check"]].inputs](params)


def _fooling_loop_inputs(params: dict) -> dict:
    wavering = params.get("wavering", False)
    net_weights = _random_weights(fixtures.wavy_skeleton() if wavering else fixtures.smooth_skeleton(), params["seed"])
    net = fixtures.wavy_network(net_weights) if wavering else fixtures.smooth_network(net_weights)
    generator = torch.Generator().manual_seed(params["seed"] + 1)
    width = params.get("width", 16)  # a non-square case (the smooth network only)
    images = 0.2 + 0.6 * torch.rand(params["count"], 3, 16, width, generator=generator)
    # Each class's stand-in step direction: that class's input gradient at mid-grey, of unit L2 length.
    grey = torch.full((10, 3, 16, width), 0.5, requires_grad=True)
    (grads,) = torch.autograd.grad(net(grey).diagonal().sum(), grey)
    directions = grads / grads.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    with torch.no_grad():
        predicted = net(images).argmax(dim=1)
    targets = (predicted + 1 + torch.arange(params["count"])) % 10
    if wavering:
        directions = _wavering_direction(net, images[0], int(targets[0]), params, directions)
    if params.get("last_already_fooled"):
        targets[-1] = predicted[-1]  # its count is 0: it only takes the extra steps
    inputs = {"images": images, "targets": targets, "network": net_weights, "directions": directions}
    args = ["@model", "@images", "@targets"]
    if params.get("single"):
        inputs["images"] = images[0]
        args = ["@model", "@images", int(targets[0])]
        del inputs["targets"]
    kwargs = {k: params[k] for k in ("step_size", "max_steps", "extra_steps")}
    # Room for any correct loop (one pass per image per step, checks included), not for an endless one.
    budget = 2 * params["count"] * (params["max_steps"] + params["extra_steps"] + 2) + 10
    return {"model": "wavy" if wavering else "smooth", "args": args, "kwargs": kwargs, "arg_names": ["images", "targets"],
            "label": params.get("label", ""), "inputs": inputs, "budget": budget,
            "budget_argument": "max_steps + extra_steps"}


def _wavering_direction(net, image, target: int, params: dict, directions: torch.Tensor) -> torch.Tensor:
    """A direction along which the first image wins its target, loses it and wins it again before it holds
    it for extra_steps + 1 checks in a row, so a loop that does not reset its count of successes is seen to.
    Every point of the path is far from a tie (so round-off on another device changes nothing). Searched over
    seeded random directions; the first that fits is taken."""
    generator = torch.Generator().manual_seed(params["seed"] + 2)
    run = "1" * (params["extra_steps"] + 1)
    for _ in range(5000):
        d = torch.randn(image.shape, generator=generator)
        d = d / d.norm()
        path = torch.stack([(image + k * params["step_size"] * d).clamp(0, 1)
                            for k in range(params["max_steps"] + params["extra_steps"] + 1)])
        with torch.no_grad():
            scores = net(path)
        top2 = scores.topk(2, dim=1).values
        if (top2[:, 0] - top2[:, 1]).min() < 1e-3:
            continue
        hits = "".join(str(int(h)) for h in (scores.argmax(dim=1) == target))
        if run in hits and "10" in hits[:hits.index(run)]:
            directions = directions.clone()
            directions[target] = d
            return directions
    raise RuntimeError("no wavering direction found; change the case's seed")


def _class_step_inputs(params: dict) -> dict:
    generator = torch.Generator().manual_seed(params.get("seed", 0))
    if params.get("model") == "smooth":
        weights = _random_weights(fixtures.smooth_skeleton(), params["seed"])
        images = (0.5 + 0.15 * torch.randn(2, 3, 16, 16, generator=generator)).clamp(0, 1)
        inputs = {"images": images, "network": weights}
    else:
        photos, _ = _photos(params)
        noise = (0.5 + 0.15 * torch.randn(1, *photos.shape[1:], generator=generator)).clamp(0, 1)
        inputs = {"images": torch.cat([photos[:1], noise])}
    inputs["targets"] = torch.tensor(params["targets"], dtype=torch.int64)
    return {"model": params.get("model", "pretrained"),
            "args": ["@model", "@images", "@targets", params["l2_reg"], params["learning_rate"]],
            "kwargs": {"jitter": tuple(params["jitter"])}, "arg_names": ["images", "targets"],
            "label": params.get("label", ""), "inputs": inputs}


def _attack_inputs(params: dict) -> dict:
    """model, images, labels, epsilon, step size, steps: an attack on a small smooth network."""
    weights = _random_weights(fixtures.smooth_skeleton(), params["seed"])
    generator = torch.Generator().manual_seed(params["seed"] + 1)
    images = torch.rand(params["count"], 3, 16, params.get("width", 16), generator=generator)
    if params.get("edges"):  # values at 0 and 1, where a step leaves [0, 1] unless clamped
        images[:, :, :4] = images[:, :, :4].round()
    with torch.no_grad():
        labels = fixtures.smooth_network(weights)(images).argmax(dim=1)
    return {"model": "smooth", "args": ["@model", "@images", "@labels", params["epsilon"], params["step_size"],
                                        params["steps"]],
            "arg_names": ["images", "labels"], "label": params.get("label", ""),
            "inputs": {"images": images, "labels": labels, "network": weights},
            "budget": 4 * params["count"] * (params["steps"] + 2) + 10, "budget_argument": f"steps={params['steps']}"}


def _image_weight_inputs(params: dict) -> dict:
    images, _ = _photos(params)
    return {"model": None, "args": ["@images", params["weight"]], "arg_names": ["img"],
            "label": params.get("label", ""), "inputs": {"images": images}}


def _feature_pair_inputs(params: dict) -> dict:
    current = _features(params)[params["layers"][0]]
    target = current.flip(0)[:1] if params.get("one_target") else current.flip(0)  # one content image for all
    return {"model": None, "args": [params["weight"], "@current", "@target"], "arg_names": ["current", "target"],
            "label": params.get("label", ""), "inputs": {"current": current, "target": target.clone()}}


def _features_inputs(params: dict) -> dict:
    kwargs = {"normalize": params["normalize"]} if "normalize" in params else {}
    return {"model": None, "args": ["@features"], "kwargs": kwargs, "arg_names": ["features"],
            "label": params.get("label", ""), "inputs": {"features": _features(params)[params["layers"][0]]}}


def _feature_dict_inputs(params: dict) -> dict:
    # Targets are any (1, C, C) tables; the stand-in Gram of a style image's features keeps the terms of a
    # realistic size.
    feats = _features(params)
    style = _features({**params, "photos": params["style_photos"]})
    targets = [fixtures.stand_in_gram_matrix(style[layer])[:1] for layer in params["layers"]]
    return {"model": None, "args": ["@feats", list(params["layers"]), "@targets", list(params["weights"])],
            "arg_names": [], "label": params.get("label", ""),
            "inputs": {"feats": feats, "targets": targets}}


def _loop_inputs(params: dict) -> dict:
    from convlens.images import load_photos, load_style

    size = params["size"]
    weights = _random_weights(fixtures.FeatureNetwork(), params["seed"])
    content, _, _ = load_photos(params["photos"], size=size)
    if "width" in params:  # a non-square case: the left part of each square photo
        content = content[..., : params["width"]].contiguous()
    style = load_style(params["style"], size)[None]
    settings = {"content_layer": "c3", "content_weight": params["content_weight"], "style_layers": ("c1", "c2"),
                "style_weights": tuple(params["style_weights"]), "tv_weight": params["tv_weight"]}
    inputs = {"content": content, "style": style, "network": weights, "settings": settings,
              "optimizer": params["optimizer"]}
    init = params.get("init", "content")
    if init == "tensor":
        generator = torch.Generator().manual_seed(params["seed"] + 7)
        inputs["start"] = torch.rand(content.shape, generator=generator)
        init = "@start"
    kwargs = {"steps": params["steps"], "init": init, "optimizer": params["optimizer"], "seed": params.get("seed", 0)}
    rerun = init == "noise"  # a noise start must come from the seed, not from the global random state
    for key in ("lr", "lr_decay"):
        if key in params:
            kwargs[key] = params[key]
    return {"model": "features", "args": ["@model", "@content", "@style", {"@settings": settings}], "kwargs": kwargs,
            "arg_names": ["content", "style"], "label": params.get("label", ""), "inputs": inputs, "rerun": rerun,
            "budget": 2 * params["steps"] + 10, "budget_argument": f"steps={params['steps']}"}


# A spec's ``inputs`` names its builder: what the function takes, not which exercise it is.
BUILDERS = {"photos": _photo_inputs, "photos_targets": _photo_target_inputs, "small_loop": _fooling_loop_inputs,
            "ascent_step": _class_step_inputs, "image_weight": _image_weight_inputs,
            "feature_pair": _feature_pair_inputs, "features": _features_inputs, "feature_dict": _feature_dict_inputs,
            "style_loop": _loop_inputs, "attack": _attack_inputs}


# ------------------------------------------------------------------------------------------------ mistakes

def mutated_source(topic: str, edits: list[dict], name: str, text: str | None = None) -> str:
    """The solution's helpers/<topic>.py (or ``text``) with ``edits`` applied; whole-line comments go first:
    the exercises' guidance may quote the code an edit targets."""
    if text is None:
        path = ROOT / "helpers" / f"{topic}.py"
        text = "".join(line for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
                       if not line.lstrip().startswith("#"))
    for edit in edits:
        if "replace" in edit:
            count = text.count(edit["replace"])
            if count != 1:
                raise MistakeError(f"{name}: {edit['replace']!r} occurs {count} times in helpers/{topic}.py")
            text = text.replace(edit["replace"], edit["with"])
        else:
            raise MistakeError(f"{name}: unknown edit {edit}")
    return text


def mutated_module(topic: str, edits: list[dict], name: str) -> types.ModuleType:
    """The solution module ``helpers.<topic>`` with ``edits`` applied, loaded under another name."""
    path = ROOT / "helpers" / f"{topic}.py"
    module = types.ModuleType(f"helpers.{topic}")
    module.__file__ = str(path)
    exec(compile(mutated_source(topic, edits, name), str(path), "exec"), module.__dict__)
    return module


# ------------------------------------------------------------------------------------------------ build

def build_topic(topic: str, cases: list[dict], mistakes: list[dict]) -> tuple[list[dict], list[dict]]:
    """(public cases, hidden cases) of one topic, each with its output and mistake variants."""
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
        case["variants"] = []
        for number, mistake in enumerate(m for m in mistakes if m["check"] == spec.name):
            module = mutated_module(topic, mistake["edit"], f"{spec.name} mistake {number}")
            torch.manual_seed(SEED)
            variant = compute_case(spec, module, case, device)
            if not variant.ok or _same(spec, variant.outputs, case["output"], case):
                continue
            kept = spec.outputs + FOLLOW_UP  # what naming it compares (not the gradient parts)
            case["variants"].append({"cause": mistake["cause"],
                                     "output": {k: v for k, v in variant.outputs.items() if k in kept}})
        case["mutants"] = _mutant_sketches(spec, case, device) if spec.measure is None else []
        (hidden if params.get("hidden") else public).append(case)
    return public, hidden


@functools.lru_cache(maxsize=None)
def _mutant_modules(topic: str, function: str) -> list:
    from tools.mutants import mutant_module, mutants

    return [(words, mutant_module(topic, text, f"{function} mutant {i}"))
            for i, (words, text) in enumerate(mutants(topic, function))]


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
        return judge_case(spec, {**case, "variants": []}, CaseResult(outputs)).passed
    return all(part in outputs and tuple(outputs[part].shape) == tuple(reference[part].shape)
               and relative_error(outputs[part], reference[part]) <= spec.tol.get(part, DEFAULT_TOL)
               for part in spec.outputs)


def draw_hidden(cases: list[dict], term_seed: int) -> list[dict]:
    """The cases with every hidden one drawn afresh from ``term_seed``: its photos (from the shipped ones),
    its seeds, its target classes and its jitter; its kind (check, sizes, settings) stays. A case that leaks
    out of one term's grading then says nothing about the next term's."""
    from convlens.images import read_photo_table

    pool = [p.name for p in read_photo_table()]
    rng = random.Random(f"convlens term {term_seed}")
    drawn = []
    for params in cases:
        params = dict(params)
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


def build(topic: str, term_seed: int | None = None) -> tuple[list[dict], list[dict]]:
    torch.use_deterministic_algorithms(True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cases = load_table(CASES_FILE, "case")
    if term_seed is not None:
        cases = draw_hidden(cases, term_seed)
    try:
        return build_topic(topic, cases, load_table(MISTAKES_FILE, "mistake"))
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
    meta = {"seed": SEED, "device": "cpu", "dtype": "float32", "threads": 1, "model": "efficientnet_lite0"}
    for topic in args.topics:
        public, hidden = build(topic, term_seed)
        if term_seed is None:
            references.save(references.REFERENCES_DIR / f"{topic}.pt", public, {**meta, "topic": topic})
        references.save(HIDDEN_DIR / f"{topic}.pt", hidden,
                        {**meta, "topic": topic, "hidden": True, "term_seed": term_seed})
        variants = sum(len(c["variants"]) for c in public + hidden)
        print(f"{topic}: {len(public)} public and {len(hidden)} hidden case(s), {variants} stored mistake output(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
