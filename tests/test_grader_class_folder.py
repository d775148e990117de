"""One submission, one failure domain: a malformed zip, a strange name or a link gives that submission a
problem line and no traceback, and the files graded are the ones read at load (links refused)."""
from __future__ import annotations

import csv
import os
import zipfile
from pathlib import Path

import pytest

from checks.child.specs import TOPICS
from checks.child.core import Verdict
from grader import submission as submissions
from grader.points import Question
from grader.report import spreadsheet_safe, write_roster
from grader.results import CheckResult, Graded

ROOT = Path(__file__).resolve().parents[1]
TOPIC_LIST = list(TOPICS)
GOOD = b"def saliency_map(*a):\n    return 1\n"


def _zip(path: Path, members: dict[str, bytes], utf8_flag_names=()) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    if utf8_flag_names:  # rewrite raw names: flagged UTF-8 (bit 11) but not valid UTF-8
        raw = path.read_bytes()
        for name in utf8_flag_names:
            raw = raw.replace(name.encode(), name.encode()[:-3] + b"\xff\xfe.")
        path.write_bytes(raw)
    return path


def _malformed_class(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    cases = {}
    # a member flagged UTF-8 whose name is not UTF-8
    bad = _zip(folder / "badutf8.zip", {"helpers/saliency.py": GOOD, "helpers/gradcam.py": GOOD})
    raw = bytearray(bad.read_bytes())
    for marker in (b"helpers/gradcam.py",):
        at = raw.find(marker)
        while at >= 0:
            raw[at + 8:at + 10] = b"\xff\xfe"
            at = raw.find(marker, at + 1)
    for offset in range(len(raw) - 4):  # set the UTF-8 flag in every header
        if raw[offset:offset + 4] in (b"PK\x03\x04",):
            raw[offset + 7] |= 0x08  # bit 11 of the flags: the name is UTF-8
        if raw[offset:offset + 4] == b"PK\x01\x02":
            raw[offset + 9] |= 0x08
    bad.write_bytes(bytes(raw))
    cases["badutf8"] = bad
    # helpers/saliency.py as a file and as a folder
    cases["file_and_folder"] = _zip(folder / "file_and_folder.zip",
                                    {"helpers/saliency.py": GOOD, "helpers/saliency.py/saliency.py": GOOD})
    # a folder name of 300 characters
    cases["long"] = _zip(folder / "long.zip", {"x" * 300 + "/helpers/saliency.py": GOOD})
    # names a spreadsheet or the grader's own files would misread
    for raw_name in ("roster.csv", "=1+2", "@SUM(1+9)"):
        sub = folder / raw_name / "helpers"
        sub.mkdir(parents=True)
        (sub / "saliency.py").write_bytes(GOOD)
        cases[raw_name] = folder / raw_name
    undecodable = os.fsencode(folder) + b"/caf\xe9"
    os.makedirs(undecodable + b"/helpers")
    with open(undecodable + b"/helpers/saliency.py", "wb") as f:
        f.write(GOOD)
    cases["undecodable"] = Path(os.fsdecode(undecodable))
    # a link to the kit: reported, never graded as the kit's solutions
    (folder / "kit_link").symlink_to(ROOT)
    cases["kit_link"] = folder / "kit_link"
    # a submission whose helpers/ file is a link to the solutions
    linked = folder / "linked" / "helpers"
    linked.mkdir(parents=True)
    (linked / "saliency.py").symlink_to(ROOT / "helpers" / "saliency.py")
    cases["linked"] = folder / "linked"
    return cases


def test_every_malformed_submission_loads_with_a_problem_and_a_safe_name(tmp_path):
    cases = _malformed_class(tmp_path / "class")
    found = submissions.expand([tmp_path / "class"], TOPIC_LIST)
    assert sorted(found) == sorted(cases.values())  # the link is listed (to be reported), not skipped
    names = set()
    for label, path in cases.items():
        sub = submissions.load(path, TOPIC_LIST, tmp_path / "unzip" / str(len(names)))
        assert sub.name.isascii() and len(sub.name) <= submissions.MAX_NAME and not sub.name.startswith((".", "=", "@"))
        assert sub.name.lower() != "roster.csv", label
        names.add(sub.name)
        if label in ("badutf8", "file_and_folder", "long", "kit_link", "linked"):
            assert sub.problems, label
        if label in ("kit_link", "linked"):
            assert sub.files["saliency"] is None, f"{label}: a link was followed"
    assert len(names) == len(cases)


def test_topic_files_are_copied_at_load(tmp_path):
    """Replacing a file after it was loaded changes nothing: the grader keeps its own copy."""
    sub_dir = tmp_path / "alice" / "helpers"
    sub_dir.mkdir(parents=True)
    (sub_dir / "saliency.py").write_bytes(GOOD)
    sub = submissions.load(tmp_path / "alice", TOPIC_LIST, tmp_path / "unzip")
    (sub_dir / "saliency.py").unlink()
    (sub_dir / "saliency.py").symlink_to(ROOT / "helpers" / "saliency.py")
    assert sub.files["saliency"].read_bytes() == GOOD
    assert (tmp_path / "unzip") in sub.files["saliency"].parents


@pytest.mark.parametrize("cell, shown", [("=1+2", "'=1+2"), ("@SUM(1+9)", "'@SUM(1+9)"), ("+cmd", "'+cmd"),
                                          ("-2", "-2"), ("3.5", "3.5"), ("alice", "alice")])
def test_roster_cells_never_start_a_formula(cell, shown):
    assert spreadsheet_safe(cell) == shown


def test_the_roster_escapes_what_it_writes(tmp_path):
    question = Question(topic="saliency", check="saliency_map", points=2.0)
    graded = Graded("x", "=1+2", [question], [CheckResult("saliency", Verdict("saliency_map", False, "wrong"))],
                    warnings=["name cleaned from '=HYPERLINK(1)'", "=cmd|' /C calc'!A0"])
    roster = write_roster([graded], tmp_path / "roster.csv")
    with open(roster, newline="", encoding="utf-8") as f:
        (row,) = list(csv.DictReader(f))
    assert not any(str(v).startswith(("=", "@", "+")) for v in row.values()), row
