"""The lock files cover every dependency pyproject.toml declares, pinned and hashed, for the Pythons
we support (Debian 12's 3.11, Ubuntu 24.04's 3.12); the image and setup install from them."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO

# Linux on x86_64, as the image and the supported hosts run it
PYTHONS = {
    "3.11": {"python_version": "3.11", "python_full_version": "3.11.2", "sys_platform": "linux",
             "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
             "implementation_name": "cpython", "platform_python_implementation": "CPython"},
    "3.12": {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
             "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
             "implementation_name": "cpython", "platform_python_implementation": "CPython"},
}


@dataclass(frozen=True)
class Pin:
    version: str
    marker: Marker | None
    hashes: int


def _read_lock(name: str) -> dict[str, Pin]:
    text = (REPO / "requirements" / name).read_text("utf-8")
    pins: dict[str, Pin] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = re.match(r"([A-Za-z0-9._-]+)==([^\s;\\]+)\s*(?:;\s*([^\\\n]+?))?\s*\\?\n", block)
        if not match:
            continue
        marker = Marker(match.group(3)) if match.group(3) else None
        pins[canonicalize_name(match.group(1))] = Pin(match.group(2), marker, block.count("--hash=sha256:"))
    return pins


def _declared(*extras: str) -> list[Requirement]:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))
    lines = list(pyproject["project"]["dependencies"])
    for extra in extras:
        lines += pyproject["project"]["optional-dependencies"][extra]
    lines += pyproject["build-system"]["requires"]   # built with --no-build-isolation
    return [Requirement(line) for line in lines]


@pytest.mark.parametrize(("lock", "extras"), [("runtime.txt", ("ops",)), ("dev.txt", ("ops", "dev"))])
@pytest.mark.parametrize("python", sorted(PYTHONS))
def test_the_lock_pins_every_declared_dependency(lock: str, extras: tuple[str, ...], python: str) -> None:
    pins = _read_lock(lock)
    assert len(pins) > 20, f"{lock} was not parsed"
    environment = PYTHONS[python]
    for requirement in _declared(*extras):
        pin = pins.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{lock} lacks {requirement.name} (bash scripts/lock.sh)"
        assert requirement.specifier.contains(pin.version, prereleases=True), \
            f"{lock}: {requirement.name}=={pin.version} is outside {requirement} (bash scripts/lock.sh)"
        assert pin.marker is None or pin.marker.evaluate(environment), \
            f"{lock}: {requirement.name} is not installed on Python {python} ({pin.marker})"
        for extra in requirement.extras:   # celery[redis] -> its extra's packages are locked too
            assert extra != "redis" or "redis" in pins, f"{lock} lacks {requirement.name}[{extra}]"
    assert all(pin.hashes for pin in pins.values()), f"{lock}: every pin carries its sha256"


def test_dev_installs_what_the_image_runs() -> None:
    runtime, dev = _read_lock("runtime.txt"), _read_lock("dev.txt")
    differ = {name: (pin.version, dev[name].version) for name, pin in runtime.items()
              if name in dev and dev[name].version != pin.version}
    assert not differ and set(runtime) <= set(dev), f"the tests would run other versions: {differ}"


def test_the_image_and_setup_install_from_the_locks() -> None:
    dockerfile = (REPO / "Dockerfile").read_text("utf-8")
    assert re.search(r"^FROM debian:12\.\d+-slim(@sha256:[0-9a-f]{64})?$", dockerfile, re.M), \
        "the base image is an exact Debian point release"
    assert "pip install --require-hashes --only-binary=:all: -r requirements/runtime.txt" in dockerfile
    assert "pip install --no-deps --no-build-isolation ." in dockerfile
    setup = (REPO / "scripts" / "setup.sh").read_text("utf-8")
    assert "lock=requirements/runtime.txt" in setup and "lock=requirements/dev.txt" in setup
    assert 'pip install -q --require-hashes -r "$lock"' in setup
    assert "pip install -q --no-deps --no-build-isolation -e ." in setup
    header = (REPO / "requirements" / "runtime.txt").read_text("utf-8").splitlines()[:2]
    assert header[1].strip("# ") == "bash scripts/lock.sh"
    lock_script = (REPO / "scripts" / "lock.sh").read_text("utf-8")
    assert "--universal --python-version 3.11" in lock_script and "--generate-hashes" in lock_script
