"""The functions that make a case's inputs from its parameters: a record's ``inputs`` names one of them
(tools/exercises/). Each takes the case's parameters and returns the case without its outputs: the model it
runs on, the call's arguments (``"@name"`` stands for the tensor ``inputs[name]``), its keyword arguments,
the names a FAIL line uses for its tensor arguments, and the tensors. A function here describes what an
exercise takes, not which exercise it is; write a new one only for inputs of a new kind.
"""
from __future__ import annotations

import torch

from checks.child import fixtures

def _photo_batch(params: dict):
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


def _feature_maps(params: dict) -> dict:
    from convlens.model import extract_features, load_model

    images, _ = _photo_batch(params)
    with torch.no_grad():
        return {k: v.clone() for k, v in extract_features(load_model("cpu"), images, params["layers"]).items()}


# Keys of a photo case that describe the case, not the function's keyword arguments.
CASE_KEYS = {"check", "hidden", "label", "model", "photos", "size", "width", "labels", "composite", "follow_up",
             "dtype", "layout"}


def photos(params: dict) -> dict:
    """model, images, labels (and the method's settings as keywords): the attribution exercises."""
    images, labels = _photo_batch(params)
    kwargs = {k: v for k, v in params.items() if k not in CASE_KEYS}  # the rest are the method's settings
    return {"model": params.get("model", "pretrained"), "args": ["@model", "@images", "@labels"],
            "kwargs": kwargs, "arg_names": ["images", "labels"], "label": params.get("label", ""),
            "inputs": {"images": images, "labels": labels}, "follow_up": bool(params.get("follow_up"))}


def photos_targets(params: dict) -> dict:
    """model, images, targets, step size: one step toward a target class."""
    images, _ = _photo_batch(params)
    return {"model": "pretrained", "args": ["@model", "@images", "@targets", params["step_size"]],
            "arg_names": ["images", "targets"], "label": params.get("label", ""),
            "inputs": {"images": images, "targets": torch.tensor(params["targets"], dtype=torch.int64)},
            "follow_up": bool(params.get("follow_up"))}


def small_loop(params: dict) -> dict:
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


def ascent_step(params: dict) -> dict:
    generator = torch.Generator().manual_seed(params.get("seed", 0))
    if params.get("model") == "smooth":
        weights = _random_weights(fixtures.smooth_skeleton(), params["seed"])
        images = (0.5 + 0.15 * torch.randn(2, 3, 16, 16, generator=generator)).clamp(0, 1)
        inputs = {"images": images, "network": weights}
    else:
        photos, _ = _photo_batch(params)
        noise = (0.5 + 0.15 * torch.randn(1, *photos.shape[1:], generator=generator)).clamp(0, 1)
        inputs = {"images": torch.cat([photos[:1], noise])}
    inputs["targets"] = torch.tensor(params["targets"], dtype=torch.int64)
    return {"model": params.get("model", "pretrained"),
            "args": ["@model", "@images", "@targets", params["l2_reg"], params["learning_rate"]],
            "kwargs": {"jitter": tuple(params["jitter"])}, "arg_names": ["images", "targets"],
            "label": params.get("label", ""), "inputs": inputs}


def attack(params: dict) -> dict:
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


def image_weight(params: dict) -> dict:
    images, _ = _photo_batch(params)
    return {"model": None, "args": ["@images", params["weight"]], "arg_names": ["img"],
            "label": params.get("label", ""), "inputs": {"images": images}}


def feature_pair(params: dict) -> dict:
    current = _feature_maps(params)[params["layers"][0]]
    target = current.flip(0)[:1] if params.get("one_target") else current.flip(0)  # one content image for all
    return {"model": None, "args": [params["weight"], "@current", "@target"], "arg_names": ["current", "target"],
            "label": params.get("label", ""), "inputs": {"current": current, "target": target.clone()}}


def features(params: dict) -> dict:
    kwargs = {"normalize": params["normalize"]} if "normalize" in params else {}
    return {"model": None, "args": ["@features"], "kwargs": kwargs, "arg_names": ["features"],
            "label": params.get("label", ""), "inputs": {"features": _feature_maps(params)[params["layers"][0]]}}


def feature_dict(params: dict) -> dict:
    # Targets are any (1, C, C) tables; the stand-in Gram of a style image's features keeps the terms of a
    # realistic size.
    feats = _feature_maps(params)
    style = _feature_maps({**params, "photos": params["style_photos"]})
    targets = [fixtures.stand_in_gram_matrix(style[layer])[:1] for layer in params["layers"]]
    return {"model": None, "args": ["@feats", list(params["layers"]), "@targets", list(params["weights"])],
            "arg_names": [], "label": params.get("label", ""),
            "inputs": {"feats": feats, "targets": targets}}


def style_loop(params: dict) -> dict:
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
