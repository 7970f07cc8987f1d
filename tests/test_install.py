"""What users get from `pip install .` or a wheel: the presets, the license and the type markers
inside it, found with no checkout beside it, and a command that states its version, also as
`python -m msgp`."""
from __future__ import annotations

import json
import os
import re
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
# The pages and the run records come along so that a setup which picked them up would show.
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "LICENSE", "cli.py", "msgp", "backdrop", "docs", "results")
# What `python -m msgp` must not run: it puts the current directory first on sys.path.
DECOY = "raise SystemExit('the cli.py of the current directory ran')\n"


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


@pytest.mark.slow
def test_the_wheel_ships_the_presets_and_the_command(wheel):
    info = f"msgp-{msgp.__version__}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        metadata = archive.read(f"{info}/METADATA").decode()
        # dist-info/LICENSE or, from metadata 2.4 on, dist-info/licenses/LICENSE
        licenses = [archive.read(name) for name in names if name.startswith(f"{info}/") and name.endswith("/LICENSE")]
    assert {"msgp/presets/paper-2scale.json", "msgp/presets/paper-3scale.json", "cli.py", "msgp/__main__.py",
            "msgp/py.typed", "backdrop/py.typed"} <= names
    assert "msgp = cli:main" in entry_points
    # What README says the wheel installs at the top level.
    assert {name.split("/")[0] for name in names} == {"msgp", "backdrop", "cli.py", info}
    assert not [name for name in names if name.endswith(("result.json", "results.csv", ".md", ".png"))]
    assert licenses == [(ROOT / "LICENSE").read_bytes()]
    for line in ("License-File: LICENSE", "Classifier: License :: OSI Approved :: MIT License",
                 "Classifier: Topic :: Scientific/Engineering", "Classifier: Programming Language :: Python :: 3.10",
                 "Project-URL: Backdrop paper, https://arxiv.org/abs/1806.01337"):
        assert line in metadata.splitlines(), line


@pytest.mark.slow
def test_presets_load_from_the_installed_package_alone(wheel, tmp_path):
    """The wheel unpacked (a pure-Python install) and imported from a directory with no data/ and
    no checkout on the path."""
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "cli.py").write_text(DECOY)
    script = ("import json, msgp, msgp.spec as s; spec = s.load_preset('paper-2scale', n=4); "
              "print(json.dumps([msgp.__file__, s.preset_names(), spec.n, spec.size]))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    where, names, n, size = json.loads(done.stdout)
    assert Path(where).is_relative_to(site)  # not the checkout, not another installed copy
    assert names == ["paper-2scale", "paper-3scale"] and (n, size) == (4, 1024)
    done = subprocess.run([sys.executable, "-m", "msgp", "--version"], cwd=work, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"msgp, version {msgp.__version__}\n"


def test_python_m_msgp_is_the_command_beside_the_package_not_a_cli_py_of_the_current_directory(tmp_path):
    """The same output and exit status as the console script, run from a directory whose own
    cli.py would otherwise be imported. The console script is what pip writes for ``cli:main``,
    run here from the checkout without an install."""
    (tmp_path / "cli.py").write_text(DECOY)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = "import sys; from cli import main; sys.argv[0] = 'msgp'; sys.exit(main())"
    for args, status in ((["generate", "--help"], 0), (["generate", "--n", "ten"], 2)):
        done, expected = (subprocess.run([sys.executable, *command, *args], cwd=cwd, env=env, capture_output=True,
                                         text=True)
                          for command, cwd in ((["-m", "msgp"], tmp_path), (["-c", script], ROOT)))
        assert (done.returncode, done.stdout, done.stderr) == (status, expected.stdout, expected.stderr), args
        assert expected.returncode == status and "msgp" in expected.stdout + expected.stderr


def test_the_citation_names_this_version_and_the_paper():
    citation = (ROOT / "CITATION.cff").read_text()
    assert re.search(r"^cff-version: 1\.2\.0$", citation, re.M)
    assert re.search(r"^version: (\S+)$", citation, re.M).group(1) == msgp.__version__
    assert "arXiv:1806.01337" in citation and "doi: 10.5281/zenodo.1252464" in citation


def test_version_and_preset_names_from_the_command():
    runner = CliRunner()
    result = runner.invoke(cli.main, ["--version"])
    assert result.exit_code == 0 and result.output == f"msgp, version {msgp.__version__}\n"
    result = runner.invoke(cli.main, ["generate", "--preset", "paper-9scale"])
    assert result.exit_code == 2
    assert "unknown preset 'paper-9scale'; choose one of paper-2scale, paper-3scale or give" in result.output
