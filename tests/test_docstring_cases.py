"""Every promise an exercise's docstring makes is exercised by a public case, and every sentence that sounds
like such a promise is mapped to one: the docstring is the contract, and a promise no case tests is one a
submission can break and still pass.

PROMISES maps a kind of sentence (a regex on the docstring) to what a case must have to exercise it. A
failure names the sentence and what is missing; either add a case (the exercise's record in tools/exercises/, then
``kit.py references``) or drop the sentence."""
import ast
import re
from pathlib import Path

import pytest
import torch

from checks.judge import references
from checks.child import specs

ROOT = Path(__file__).resolve().parents[1]


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)


def _images(case) -> list[torch.Tensor]:
    return [t for t in _tensors(case["inputs"]) if t.is_floating_point() and t.dim() >= 3]


def _float64(case) -> bool:
    return any(t.dtype == torch.float64 for t in _images(case))


def _not_square(case) -> bool:
    return any(t.shape[-1] != t.shape[-2] for t in _images(case))


def _single_image(case) -> bool:
    return any(t.dim() == 3 for t in _images(case) if t.shape[0] == 3)


def _one_content_image_for_several(case) -> bool:
    current, target = case["inputs"].get("current"), case["inputs"].get("target")
    return current is not None and target is not None and target.shape[0] == 1 < current.shape[0]


def _no_style_layers(case) -> bool:
    return case["inputs"].get("feats") == {} and not case["inputs"].get("targets")


def _zero_map(case) -> bool:
    output = case["output"]
    output = output.get("output") if isinstance(output, dict) else output
    return isinstance(output, torch.Tensor) and output.dim() == 3 and bool((output.flatten(1) == 0).all(1).any())


def _channels_last(case) -> bool:
    return case.get("layout") == "channels_last"


def _won_lost_won(case) -> bool:
    return "won, lost and won again" in case["label"]


# (name, the sentences it covers, what a public case needs to exercise it)
PROMISES = [
    ("follows the input's dtype", re.compile(r"device and dtype|images' device|same device"), _float64),
    ("any H and W", re.compile(r"\((?:N, )?(?:(?:3|C), )?H, W\)|<= H, W\b"), _not_square),
    ("one image without a batch axis", re.compile(r"or \(3, H, W\)"), _single_image),
    ("one content image for several", re.compile(r"or \(1, C, H, W\)"), _one_content_image_for_several),
    ("no style layers", re.compile(r"[Ww]ith no style layers"), _no_style_layers),
    ("a zero map", re.compile(r"zero map|zero everywhere|stays zero"), _zero_map),
    ("won, lost and won again", re.compile(r"lost again|won again|loses? the target"), _won_lost_won),
    ("any memory layout", re.compile(r"memory layout|channels-last"), _channels_last),
]
# Words that make a sentence a promise about inputs: each such sentence must fall under some PROMISES entry.
PROMISE_WORDS = re.compile(r"dtype|device|\bH, W\)|or \((?:1|3)\b|no style layers|zero map|stays zero|"
                           r"won again|lost again|memory layout|channels-last")


def docstring(check: str) -> str:
    tree = ast.parse((ROOT / "helpers" / f"{specs.SPECS[check].topic}.py").read_text(encoding="utf-8"))
    return ast.get_docstring(next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == check))


def sentences(text: str) -> list[str]:
    return [" ".join(s.split()) for s in re.split(r"(?<=[.;:])\s+(?=[A-Z(`])|\n\s*\n", text) if s.strip()]


def public_cases(check: str) -> list[dict]:
    topic = specs.SPECS[check].topic
    return [c for c in references.load(references.REFERENCES_DIR / f"{topic}.pt")["cases"] if c["check"] == check]


def contract_map(check: str) -> dict[str, list[str]]:
    """{promise: labels of the public cases that exercise it} for each promise the docstring makes."""
    text = " ".join(sentences(docstring(check)))
    cases = public_cases(check)
    return {name: [c["label"] or "(first case)" for c in cases if needs(c)]
            for name, pattern, needs in PROMISES if pattern.search(text)}


@pytest.mark.parametrize("check", list(specs.SPECS))
def test_every_promise_in_the_docstring_has_a_public_case(check):
    unexercised = [name for name, labels in contract_map(check).items() if not labels]
    assert not unexercised, f"{check}'s docstring promises {unexercised}, but no public case exercises it"


@pytest.mark.parametrize("check", list(specs.SPECS))
def test_every_sentence_that_promises_is_mapped(check):
    unmapped = [s for s in sentences(docstring(check))
                if PROMISE_WORDS.search(s) and not any(p.search(s) for _, p, _ in PROMISES)]
    assert not unmapped, f"sentences of {check}'s docstring that no entry of PROMISES maps to cases: {unmapped}"


def test_the_map_reports_a_promise_without_its_case(monkeypatch):
    """The instrument itself: with the cases that exercise a promise removed, the promise is reported."""
    import sys

    here = sys.modules[__name__]
    assert contract_map("grad_cam")["a zero map"] == ["a map that is zero everywhere (normalize=True)"]
    every = here.public_cases
    monkeypatch.setattr(here, "public_cases", lambda check: [c for c in every(check) if not _zero_map(c)])
    assert contract_map("grad_cam")["a zero map"] == []
    with pytest.raises(AssertionError, match="a zero map"):
        test_every_promise_in_the_docstring_has_a_public_case("grad_cam")


def test_a_new_promise_sentence_must_be_mapped(monkeypatch):
    import sys

    here = sys.modules[__name__]
    written = here.docstring("tv_loss")
    monkeypatch.setattr(here, "docstring", lambda check: written + "\n\nAny dtype works, and so does any device.")
    with pytest.raises(AssertionError, match="Any dtype works"):
        test_every_sentence_that_promises_is_mapped("tv_loss")
