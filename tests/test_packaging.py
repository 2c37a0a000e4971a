"""The wheel carries every module and every config (fer_exp/conf, linked as conf/ at the top)
without hand-kept lists in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from tests.conftest import REPO


def test_wheel_ships_every_module_and_config(tmp_path):
    # a clean copy: a checkout's build/ and *.egg-info would hide a missing pattern
    source = tmp_path / "src"
    shutil.copytree(
        REPO,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", "build", "dist", "*.egg-info", "__pycache__", "outputs", "multirun", "site", ".venv", "mlflow.db"
        ),
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("fer_exp-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    package = REPO / "fer_exp"
    expected = {
        p.relative_to(REPO).as_posix()
        for p in package.rglob("*")
        if p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts
    }
    assert any(name.startswith("fer_exp/conf/model/") for name in expected)  # the configs are in the tree
    assert expected - shipped == set()
    # the Optuna sweeper's Hydra plugin, in Hydra's namespace package (no hydra_plugins/__init__.py)
    assert "hydra_plugins/fer_exp_optuna/sweeper.py" in shipped
    assert "hydra_plugins/__init__.py" not in shipped


def test_conf_at_the_top_is_the_package_configs():
    assert (REPO / "conf").resolve() == (REPO / "fer_exp" / "conf").resolve()
