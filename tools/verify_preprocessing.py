"""Evidence for the model's input normalization and padding: ``python -m tools.verify_preprocessing``.

The state dict does not say how its inputs were scaled, so we test the candidates two ways:

1. BatchNorm statistics. Each BatchNorm layer stores the mean of its input over the training set. With the
   right preprocessing, the per-channel means measured on real photos should sit close to those stored
   running means. We print the RMS gap (in units of the running standard deviation), at the first layer
   and averaged over all 49 BatchNorm layers.
2. Predictions. The mean log-probability that the model gives to the labels a person chose for the shipped
   photos (datasets/photos.csv, "accepted" column).

Candidates: mean = std = 0.5 (inputs in [-1, 1]) vs the ImageNet mean/std; TensorFlow "SAME" padding vs
symmetric padding of k // 2. The smaller BN gap and the higher log-probability win on both counts.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F


from convlens import model as M  # noqa: E402
from convlens.images import load_photos  # noqa: E402


def symmetric_padding(net: torch.nn.Module) -> None:
    """Replace TF-SAME padding with plain k // 2 padding on every SamePadConv2d (in place)."""
    for conv in net.modules():
        if isinstance(conv, M.SamePadConv2d):
            pad = conv.kernel_size[0] // 2
            conv.forward = lambda x, conv=conv, pad=pad: torch.nn.Conv2d.forward(conv, F.pad(x, [pad] * 4))


def measure(net, images, photos) -> tuple[float, float, float]:
    """(BN gap at the first layer, mean BN gap, mean log p(accepted labels))."""
    seen = []
    hooks = [bn.register_forward_hook(lambda mod, inp, out: seen.append((mod, inp[0])))
             for bn in net.modules() if isinstance(bn, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        log_probs = net(images).log_softmax(1)
    for h in hooks:
        h.remove()
    gaps = [((x.mean((0, 2, 3)) - bn.running_mean).pow(2).mean().sqrt() / bn.running_var.mean().sqrt()).item()
            for bn, x in seen]
    log_p = sum(log_probs[i, list(p.accepted)].logsumexp(0).item() for i, p in enumerate(photos)) / len(photos)
    return gaps[0], sum(gaps) / len(gaps), log_p


def main() -> None:
    images, _, photos = load_photos(size=224)
    print(f"{'padding':<10}{'mean/std':<10}{'BN gap, layer 1':>17}{'BN gap, all':>13}{'log p(label)':>14}")
    for padding in ("tf-same", "symmetric"):
        for label, (mean, std) in {"0.5/0.5": (M.LITE0_MEAN, M.LITE0_STD),
                                   "imagenet": (M.IMAGENET_MEAN, M.IMAGENET_STD)}.items():
            net = M.load_model("cpu")
            net.input_mean = torch.tensor(mean).view(1, 3, 1, 1)
            net.input_std = torch.tensor(std).view(1, 3, 1, 1)
            if padding == "symmetric":
                symmetric_padding(net)
            first, overall, log_p = measure(net, images, photos)
            print(f"{padding:<10}{label:<10}{first:>17.3f}{overall:>13.3f}{log_p:>14.3f}")


if __name__ == "__main__":
    main()
