"""requirements.txt and environment.yml name the same packages at the same versions, and the kit's own
environment (.venv/) has exactly those versions installed (elsewhere that test says why it skips)."""
import re
from pathlib import Path

import pytest
from conftest import outside_pinned_environment, pin_differences

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^\s*-?\s*([A-Za-z0-9_.\-]+)==([^\s#]+)")


def _pins(path: Path, pip_section_only: bool = False) -> dict[str, str]:
    pins, in_pip = {}, not pip_section_only
    for line in path.read_text().splitlines():
        if pip_section_only and line.strip() == "- pip:":
            in_pip = True
            continue
        match = PIN.match(line)
        if in_pip and match:
            pins[match[1].lower().replace("_", "-")] = match[2]
    return pins


def test_requirements_and_environment_yml_agree():
    requirements = _pins(ROOT / "requirements.txt")
    conda = _pins(ROOT / "environment.yml", pip_section_only=True)
    assert requirements, "no pins found in requirements.txt"
    assert requirements == conda


def test_environment_yml_uses_python_311():
    assert re.search(r"^\s*-\s*python=3\.11\s*$", (ROOT / "environment.yml").read_text(), re.M)


def test_every_requirement_is_pinned_exactly():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            assert PIN.match(line), f"not an exact pin: {line}"


def test_installed_versions_match_the_pins():
    why = outside_pinned_environment()
    if why:
        pytest.skip(f"{why}; installed versions differ from the pins: {pin_differences() or 'none'}")
    assert not pin_differences(), f"pinned vs installed: {pin_differences()}"


def test_environment_files_say_the_oldest_python():
    """kit.py refuses an older interpreter; the README and environment.yml name the same oldest version."""
    import kit

    oldest = ".".join(map(str, kit.OLDEST_PYTHON))
    assert f"Python {oldest} or newer" in (ROOT / "README.md").read_text()
    assert re.search(rf"^\s*-\s*python={re.escape(oldest)}\s*$", (ROOT / "environment.yml").read_text(), re.M)
