"""The pretrained EfficientNet-Lite0 (and Lite2, the second opinion): weights load strictly, the shipped photos get the labels a person
gives them, layers are reachable by short names, and other weights load safely or fail clearly."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convlens.images import load_more_photos, load_photos
from convlens.model import (LITE0_STAGES, EfficientNetLite, EfficientNetLite0, ReLU6, SamePadConv2d,
                            default_weights_path, get_layer, imagenet_classes, lite_stages, load_model,
                            scaled_channels)

# Set by looking at the photos (see datasets/photos.csv), not by running the model.
TOP1_EXPECTED = {
    "coffee": {"espresso"},
    "china": {"palace", "monastery"},
    "flower": {"daisy"},
    "rocket": {"missile", "projectile", "space shuttle"},
    "chelsea": {"tabby", "tiger cat", "Egyptian cat"},
    "camera": {"tripod", "reflex camera"},
    "motorcycle": {"moped", "motor scooter"},
}


def test_state_dict_matches_the_architecture_key_for_key():
    state = torch.load(default_weights_path(), map_location="cpu", weights_only=True)
    net = EfficientNetLite0()
    assert set(state) == set(net.state_dict())
    assert all(state[k].shape == v.shape for k, v in net.state_dict().items())
    assert not any(isinstance(m, nn.Sigmoid) for m in net.modules()), "Lite0 has no squeeze-excite"
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 49 and all(bn.eps == 1e-3 for bn in bns)
    assert sum(isinstance(m, ReLU6) for m in net.modules()) == 2 + 15 * 2 + 1  # stem, blocks, head


def test_lite2_loads_strictly_with_the_scaled_stages():
    state = torch.load(default_weights_path("efficientnet_lite2"), map_location="cpu", weights_only=True)
    net = EfficientNetLite(arch="efficientnet_lite2")
    assert set(state) == set(net.state_dict())
    assert all(state[k].shape == v.shape for k, v in net.state_dict().items())
    # Lite2 (width 1.1, depth 1.2; first and last stages fixed): 1 + 3 + 3 + 4 + 4 + 5 + 1 blocks
    assert len(net._blocks) == 21 and net._conv_head.in_channels == 352
    assert lite_stages(1.0, 1.0) == list(LITE0_STAGES)  # Lite0 unchanged
    assert [scaled_channels(c, 1.1) for c in (16, 24, 40, 80, 112, 192, 320)] == [16, 24, 48, 88, 120, 208, 352]


def test_lite2_agrees_with_lite0_on_the_shipped_photos(model):
    """Lite0's top-1 class is in Lite2's top 5 on at least 9 of the 10 shipped photos (the same 260 px crops,
    Lite2's training size)."""
    lite2 = load_model("cpu", arch="efficientnet_lite2")
    photos = torch.cat([load_photos(size=260)[0], load_more_photos(size=260)[0]])
    with torch.no_grad():
        top1 = model(photos).argmax(dim=1)
        top5 = lite2(photos).topk(5, dim=1).indices
    agree = (top5 == top1[:, None]).any(dim=1)
    assert len(agree) == 10 and agree.sum() >= 9, agree.tolist()


def test_shipped_photos_are_classified_as_a_person_would(model):
    names = imagenet_classes()
    images, labels, photos = load_photos(list(TOP1_EXPECTED))
    with torch.no_grad():
        top1 = model(images).argmax(1)
    got = {p.name: names[i] for p, i in zip(photos, top1.tolist())}
    wrong = {n: g for n, g in got.items() if g not in TOP1_EXPECTED[n]}
    assert not wrong, f"unexpected top-1 labels: {wrong}"


def test_every_photo_label_is_in_the_top5(model):
    images, labels, photos = load_photos()
    with torch.no_grad():
        top5 = model(images).topk(5).indices
    for i, photo in enumerate(photos):
        assert photo.label in top5[i].tolist(), photo.name


def test_model_is_frozen_in_eval_mode_and_deterministic(model):
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    x = torch.rand(2, 3, 224, 224)
    assert torch.equal(model(x), model(x))  # dropout off


def test_model_takes_pixels_in_unit_range_and_other_sizes(model):
    x = torch.rand(1, 3, 160, 200)
    assert model(x).shape == (1, 1000)
    assert model.features(x).shape == (1, 1280, 5, 7)
    manual = model._conv_stem((x - 0.5) / 0.5)
    hooked = {}
    handle = model._conv_stem.register_forward_hook(lambda m, i, o: hooked.setdefault("out", o))
    model(x)
    handle.remove()
    assert torch.allclose(hooked["out"], manual)


def test_same_padding_follows_tensorflow():
    conv = SamePadConv2d(1, 1, 3, stride=2, bias=False)
    nn.init.ones_(conv.weight)
    for size in (7, 8, 224, 225):
        x = torch.ones(1, 1, size, size)
        out = conv(x)
        assert out.shape[-1] == math.ceil(size / 2)
        total = max((math.ceil(size / 2) - 1) * 2 + 3 - size, 0)
        expected = F.conv2d(F.pad(x, [total // 2, total - total // 2] * 2), conv.weight, stride=2)
        assert torch.equal(out, expected)


def test_relu6_is_seen_by_captum_guided_backprop(model):
    from captum.attr import GuidedBackprop, Saliency

    x = torch.rand(1, 3, 96, 96)
    guided = GuidedBackprop(model).attribute(x, target=1)
    plain = Saliency(model).attribute(x, target=1, abs=False)
    assert not torch.allclose(guided, plain), "Captum did not modify the ReLU6 gradients"
    assert torch.allclose(ReLU6()(torch.tensor([-1.0, 3.0, 9.0])), torch.tensor([0.0, 3.0, 6.0]))


def test_layers_by_short_name(model):
    assert get_layer(model, "head") is model._head_act
    assert get_layer(model, "block15") is model._blocks[15]
    assert get_layer(model, "_blocks.3._project_conv") is model._blocks[3]._project_conv
    with pytest.raises(KeyError, match="short names: stem"):
        get_layer(model, "conv5_3")


def test_class_names_are_offline_and_complete():
    names = imagenet_classes()
    assert len(names) == 1000 and names[281] == "tabby" and names[985] == "daisy"


def test_other_torchvision_weights_from_disk(tmp_path):
    import torchvision

    net = torchvision.models.resnet18(weights=None, num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save(net.state_dict(), path)
    other = load_model("cpu", arch="resnet18", weights=path)
    x = torch.rand(1, 3, 64, 64)
    net.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(other(x), net((x - mean) / std), atol=1e-5)
    assert get_layer(other, "head") is other.net.layer4
    assert not any(p.requires_grad for p in other.parameters())


def test_bad_weight_files_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_model("cpu", weights=tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read weights"):
        load_model("cpu", weights=garbage)
    wrong = tmp_path / "wrong.pth"
    torch.save({"_fc.weight": torch.zeros(10, 1280)}, wrong)
    with pytest.raises(ValueError, match="do not fit EfficientNetLite0"):
        load_model("cpu", weights=wrong)
    with pytest.raises(ValueError, match="needs a weights file"):
        load_model("cpu", arch="resnet18")


class _Unsafe:
    pass


def test_weights_are_loaded_without_unpickling_code(tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save({"obj": _Unsafe()}, path)
    with pytest.raises(ValueError, match="cannot read weights"):
        load_model("cpu", weights=path)
