"""A realistic class of 35, graded the way an instructor grades it (hidden cases only), gets the scores a
careful TA gives: every function with a bug loses its points, every correct function keeps them, however it
is written.

The class: ten honest students (the solutions, and the eight correct variants of the exercises' records, written
differently), and 25 with bugs a TA finds by reading and running the code: the first tries students made,
bugs that only show in what a call leaves behind (a hook, the model's mode, an input changed in place), the
bugs the hidden cases once missed (no ``finally``, ``normalize=False`` ignored, half or double the L2 term),
and loops that are wrong in what they achieve. Each bug is an edit of the solution."""
from __future__ import annotations

from pathlib import Path

import pytest

from checks.child.specs import SPECS, TOPICS
from grader.grade import grade
from grader.points import load_points
from tools import exercises
from tools.build_references import mutated_source

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.corpus]

# function: (what is wrong, old text, new text)
BUGS = {
    "grad_cam, no finally": ("grad_cam", "    finally:\n        handle.remove()\n    weights",
                             "    except BaseException:\n        raise\n    handle.remove()\n    weights"),
    "grad_cam, one max for the batch": ("grad_cam", "peak = cam.amax(dim=(1, 2), keepdim=True)", "peak = cam.max()"),
    "grad_cam, no requires_grad": ("grad_cam", "images = images.detach().clone().requires_grad_(True)\n    saved",
                                   "images = images.detach().clone()\n    saved"),
    "gram ignores normalize": ("gram_matrix", "    if normalize:\n        gram = gram / (c * h * w)",
                               "    gram = gram / (c * h * w)"),
    "half the L2 term": ("class_visualization_step", "objective = scores - l2_reg * shifted.pow(2).sum()",
                         "objective = scores - 0.5 * l2_reg * shifted.pow(2).sum()"),
    "double the L2 term": ("class_visualization_step", "objective = scores - l2_reg * shifted.pow(2).sum()",
                           "objective = scores - 2 * l2_reg * shifted.pow(2).sum()"),
    "an N x N block of scores": ("fooling_step", "scores = model(images).gather(1, targets.view(-1, 1)).sum()\n"
                                 "    (grad,) = torch.autograd.grad(scores, images)\n    norms",
                                 "scores = model(images)[:, targets].sum()\n"
                                 "    (grad,) = torch.autograd.grad(scores, images)\n    norms"),
    "return inside the loop": ("style_loss", "        total = term if total is None else total + term\n",
                               "        total = term if total is None else total + term\n        return total\n"),
    "abs instead of the square": ("tv_loss", "vertical = (img[:, :, 1:, :] - img[:, :, :-1, :]).pow(2).sum()",
                                  "vertical = (img[:, :, 1:, :] - img[:, :, :-1, :]).abs().sum()"),
    "scheduler before the optimizer": ("style_transfer", "                    opt.step(closure)\n"
                                       "                    decay.step()", "                    decay.step()\n"
                                       "                    opt.step(closure)"),
    "no clamp in the closure": ("style_transfer", "        with torch.no_grad():\n            image.clamp_(0, 1)\n"
                                "        opt.zero_grad(set_to_none=True)", "        opt.zero_grad(set_to_none=True)"),
    "no zero_grad": ("style_transfer", "        opt.zero_grad(set_to_none=True)\n", ""),
    "hooks never removed": ("guided_backprop", "    finally:\n        for handle in handles:\n"
                            "            handle.remove()\n", "    finally:\n        pass\n"),
    "model left in training mode": ("saliency_map", "    x = images.detach().clone().requires_grad_(True)\n"
                                    "    logits = model(x)\n", "    model.train()\n"
                                    "    x = images.detach().clone().requires_grad_(True)\n    logits = model(x)\n"),
    "images changed in place": ("saliency_map", "    x = images.detach().clone().requires_grad_(True)\n"
                                "    logits = model(x)\n", "    images.mul_(0.9)\n"
                                "    x = images.detach().clone().requires_grad_(True)\n    logits = model(x)\n"),
    "no projection": ("pgd_attack", "attacked = torch.min(torch.max(stepped, original - epsilon), "
                      "original + epsilon).clamp(0, 1)", "attacked = stepped.clamp(0, 1)"),
    "the raw gradient": ("pgd_attack", "stepped = attacked + step_size * grad.sign()",
                         "stepped = attacked + step_size * grad"),
}
STORED = ["occlusion_map", "integrated_gradients", "guided_grad_cam", "make_fooling_image", "content_loss",
          "saliency_map", "guided_backprop", "fooling_step", "gram_matrix", "tv_loss", "style_loss", "pgd_attack"]
# 25 students with bugs: one each, and some with two in different files
PAIRS = [("gram ignores normalize", "hooks never removed"), ("half the L2 term", "return inside the loop"),
         ("no zero_grad", "grad_cam, no finally"), ("the raw gradient", "model left in training mode")]


def _edits() -> dict[str, tuple[str, list[dict]]]:
    found = {name: (check, [{"replace": old, "with": new}]) for name, (check, old, new) in BUGS.items()}
    mistakes = exercises.mistakes()
    for check in STORED:
        mistake = next(m for m in mistakes if m["check"] == check)
        found[f"stored: {mistake['cause'][:40]}"] = (check, mistake["edit"])
    return found


def _class(folder: Path) -> list[tuple[Path, set]]:
    edits = _edits()
    students: list[tuple[str, dict[str, list], set]] = [(f"honest_{i}", {}, set()) for i in range(2)]
    for i, variant in enumerate(exercises.variants()):
        students.append((f"variant_{i}", {variant["check"]: variant["edit"]}, set()))
    paired = {name for pair in PAIRS for name in pair}
    for i, (name, (check, edit)) in enumerate(e for e in edits.items() if e[0] not in paired):
        students.append((f"bug_{i:02d}", {check: edit}, {check}))
    for i, pair in enumerate(PAIRS):
        students.append((f"two_bugs_{i}", {edits[n][0]: edits[n][1] for n in pair}, {edits[n][0] for n in pair}))
    made = []
    for name, changes, buggy in students:
        sources = {}
        for check, edit in changes.items():
            topic = SPECS[check].topic
            sources[topic] = mutated_source(topic, edit, name, sources.get(topic), check)
        (folder / name / "helpers").mkdir(parents=True)
        for topic in TOPICS:
            text = sources.get(topic) or (ROOT / "helpers" / f"{topic}.py").read_text(encoding="utf-8")
            (folder / name / "helpers" / f"{topic}.py").write_text(text, encoding="utf-8")
        made.append((folder / name, buggy))
    return made


def test_a_class_of_35_gets_the_scores_a_careful_ta_gives(tmp_path):
    students = _class(tmp_path / "class")
    assert len(students) == 35
    points = {q.check: q.points for q in load_points(ROOT / "grader" / "points.toml").questions}
    graded = {g.name: g for g in grade([tmp_path / "class"], jobs=2, log=lambda *a: None)}
    wrong = {}
    for folder, buggy in students:
        result = graded[folder.name]
        expected = sum(p for check, p in points.items() if check not in buggy)
        failed = {r.check for r in result.results if not r.passed}
        if result.score != expected or failed != buggy:
            wrong[folder.name] = (result.score, expected, sorted(failed), sorted(buggy))
    assert not wrong, f"scores that differ from the TA's (got, expected, failed, buggy): {wrong}"
