"""What users get from `pip install .` or a wheel: the presets inside the package, found with no
checkout beside it, and a command that states its version."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
import msgp

ROOT = Path(__file__).resolve().parent.parent
# What a build reads. Built from a copy: setuptools leaves build/ and *.egg-info/ in the source
# tree, and a stale build/lib would put files into the wheel that the checkout no longer ships.
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "cli.py", "msgp", "backdrop")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    # No build isolation: the setuptools of the test extra builds it, offline, in about 2 s.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "-w", str(out), str(source)], check=True, capture_output=True, text=True)
    built, = out.glob("msgp-*.whl")
    return built


def test_the_wheel_ships_the_presets_and_the_command(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = archive.read(f"msgp-{msgp.__version__}.dist-info/entry_points.txt").decode()
    assert {"msgp/presets/paper-2scale.json", "msgp/presets/paper-3scale.json", "cli.py"} <= names
    assert "msgp = cli:main" in entry_points


def test_presets_load_from_the_installed_package_alone(wheel, tmp_path):
    """The wheel unpacked (a pure-Python install) and imported from a directory with no data/ and
    no checkout on the path."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    work = tmp_path / "elsewhere"
    work.mkdir()
    script = ("import json, msgp, msgp.spec as s; spec = s.load_preset('paper-2scale', n=4); "
              "print(json.dumps([msgp.__file__, s.preset_names(), spec.n, spec.size]))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    where, names, n, size = json.loads(done.stdout)
    assert Path(where).is_relative_to(site)  # not the checkout, not another installed copy
    assert names == ["paper-2scale", "paper-3scale"] and (n, size) == (4, 1024)
    done = subprocess.run([sys.executable, "-m", "cli", "--version"], cwd=work, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"msgp, version {msgp.__version__}\n"


def test_version_and_preset_names_from_the_command():
    runner = CliRunner()
    result = runner.invoke(cli.main, ["--version"])
    assert result.exit_code == 0 and result.output == f"msgp, version {msgp.__version__}\n"
    result = runner.invoke(cli.main, ["generate", "--preset", "paper-9scale"])
    assert result.exit_code == 2
    assert "unknown preset 'paper-9scale'; choose one of paper-2scale, paper-3scale or give" in result.output
