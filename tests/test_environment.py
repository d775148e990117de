"""requirements.txt and environment.yml name the same packages at the same versions, and the running
environment has exactly those versions installed."""
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

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
    wrong = {}
    for name, pinned in _pins(ROOT / "requirements.txt").items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "missing"
        if installed.split("+")[0] != pinned:
            wrong[name] = (pinned, installed)
    assert not wrong, f"pinned vs installed: {wrong}"
