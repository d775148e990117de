"""The checks framework: one line per verdict, and each kind of mistake is named."""
import torch

from checks.core import Verdict, compare, report, run, shape_hint


def _maxabs(model, images):
    return images.abs().amax(1)


def test_pass_line_has_no_measured_numbers():
    x = torch.rand(2, 3, 8, 8)
    v = compare("demo", x.amax(1) * (1 + 1e-6), x.amax(1))
    assert v.passed and v.line == "PASS demo: shape (2, 8, 8), values match the reference"


def test_fail_lines_name_the_problem():
    e = torch.rand(2, 8, 8) + 0.1
    assert "returned None" in compare("c", None, e).line
    assert "returned list" in compare("c", [1], e).line
    assert "the channel dimension was not reduced" in compare("c", torch.rand(2, 3, 8, 8), e).line
    assert "dtype float64, expected float32" in compare("c", e.double(), e).line
    nan = e.clone()
    nan[1, 2, 3] = float("nan")
    assert "1 NaN value(s), first at [1, 2, 3]" in compare("c", nan, e).line
    off = e.clone()
    off[0, 4, 5] += 5
    line = compare("c", off, e, hints=[("something added", lambda a, b: (a > b).any())]).line
    assert line.startswith("FAIL c: worst element [0, 4, 5]") and "likely cause: something added" in line


def test_shape_hints():
    assert "batch dimension is missing" in shape_hint((8, 8), (1, 8, 8))
    assert "wrong order" in shape_hint((8, 2), (2, 8))
    assert shape_hint((5,), (7,)) == ""


def test_run_catches_every_kind_of_student_error(model):
    x = torch.rand(1, 3, 32, 32)
    expected = _maxabs(None, x)

    def not_done(model, images):
        raise NotImplementedError("later")

    def crashes(model, images):
        return images.view(-1, 7)

    def mutates(model, images):
        images.zero_()
        return images.amax(1)

    def leaks(model, images):
        model._fc.weight.requires_grad_(True)
        return images.amax(1)

    def hooks(model, images):
        model._fc.register_forward_hook(lambda *a: None)
        return images.amax(1)

    def attached(model, images):
        return images.clone().requires_grad_(True).amax(1)

    lines = {f.__name__: run("c", f, (model, x.clone()), expected, model=model, arg_names=("model", "images")).line
             for f in (_maxabs, not_done, crashes, mutates, leaks, hooks, attached)}
    for m in model.modules():
        m._forward_hooks.clear()
    model._fc.weight.requires_grad_(False)
    assert lines["_maxabs"].startswith("PASS")
    assert "not implemented yet" in lines["not_done"] and "(not_done)" in lines["not_done"]
    assert lines["crashes"].startswith("FAIL c: raised RuntimeError")
    assert "images was modified in place" in lines["mutates"]
    assert "requires_grad flags were changed" in lines["leaks"]
    assert "hooks were left registered" in lines["hooks"]
    assert "still requires grad" in lines["attached"]
    assert all("\n" not in line for line in lines.values())


def test_report_prints_exactly_one_line(capsys):
    v = report(Verdict("c", False, "broken"))
    assert capsys.readouterr().out == "FAIL c: broken\n" and not v
