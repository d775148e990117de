"""tools/blind_test.py: the draw is recorded, sheets hide which method is which, and a seed gives the same
images again (fixed thread count; portable numerics across CPUs), saved beside the sheets for the scorer."""
import json
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

from convlens import priors
from tools import blind_test


@pytest.fixture
def tiny_candidates(monkeypatch):
    tiny = {"tiny_a": dict(size=32, steps=2, transparent=True), "tiny_b": dict(size=40, steps=2)}
    monkeypatch.setattr(priors, "CANDIDATES", {**priors.CANDIDATES, **tiny})
    return list(tiny)


def test_two_candidates_give_sheets_tensors_and_a_key(tmp_path, tiny_candidates):
    threads = torch.get_num_threads()
    try:
        for run in ("first", "again"):
            assert blind_test.main(["--seed", "3", "--candidates", ",".join(tiny_candidates), "--native",
                                    "--out", str(tmp_path / run)]) == 0
    finally:
        torch.set_num_threads(threads)
    out = tmp_path / "first"
    key = json.loads((out / "answer_key.json").read_text())
    saved = torch.load(out / "tensors.pt", weights_only=True)
    again = torch.load(tmp_path / "again" / "tensors.pt", weights_only=True)
    assert saved["threads"] == key["threads"] == blind_test.SHEET_THREADS and saved["seed"] == 3
    assert sorted(saved["methods"].values()) == sorted(tiny_candidates)
    for sheet, method in saved["methods"].items():
        size = priors.CANDIDATES[method]["size"]
        assert key["sheets"][sheet]["method"] == method and saved["images"][sheet].shape == (8, 3, size, size)
        assert torch.equal(saved["images"][sheet], again["images"][sheet])  # the seed gives the same images
        assert Image.open(out / sheet).size[0] > 4 * size
    viewer_files = (out / "INSTRUCTIONS.txt").read_text() + (out / "names.txt").read_text()
    assert not any(m in viewer_files for m in tiny_candidates)
    drawn = json.loads((out / "draw.json").read_text())["drawn"]
    index = {name: i for i, name, _ in blind_test.POOL}
    assert saved["classes"] == [index[name] for name in drawn]


def test_unknown_candidates_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        blind_test.main(["--seed", "1", "--candidates", "today,nonsense", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        blind_test.main(["--seed", "1", "--candidates", "today,today", "--out", str(tmp_path)])


def test_without_native_the_images_are_made_in_a_portable_child(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(blind_test, "portable", lambda: False)
    monkeypatch.setattr(blind_test.subprocess, "call", lambda args, env: started.append((args, env)) or 0)
    assert blind_test.main(["--seed", "2", "--out", str(tmp_path)]) == 0
    ((args, env),) = started
    assert args[1:3] == ["-m", "tools.blind_test"] and args[3:] == ["--seed", "2", "--out", str(tmp_path)]
    assert all(env[k] == v for k, v in blind_test.PORTABLE_ENV.items())
    assert str(blind_test.ROOT) in env["PYTHONPATH"].split(os.pathsep)  # the child finds the kit from any folder
    assert not (tmp_path / "draw.json").exists()  # the child draws, not this process


MAKE_TINY = """
import hashlib, sys
sys.path.insert(0, {root!r})
from convlens import priors
from tools import blind_test
priors.CANDIDATES["tiny"] = dict(size=40, steps=4, transparent=True)
assert blind_test.portable(), blind_test.numerics()
images = blind_test.make_images([1, 945], 3, ["tiny"])["tiny"]
print(hashlib.sha256(images.numpy().tobytes()).hexdigest())
"""


@pytest.mark.slow
def test_portable_images_do_not_depend_on_the_cpus_instruction_sets():
    """MKL told to use only SSE4.2 or AVX2 (as on an older or another CPU) gives the same bytes under
    PORTABLE_ENV; PyTorch's own kernels are the plain ones there whatever the CPU."""
    root = str(blind_test.ROOT)
    digests = []
    for isa in ("SSE4_2", "AVX2"):
        env = {**os.environ, **blind_test.PORTABLE_ENV, "MKL_ENABLE_INSTRUCTIONS": isa}
        run = subprocess.run([sys.executable, "-c", MAKE_TINY.format(root=root)], env=env, capture_output=True,
                             text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        digests.append(run.stdout.strip())
    assert digests[0] == digests[1] and len(digests[0]) == 64
