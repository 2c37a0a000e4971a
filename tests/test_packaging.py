"""The wheel carries conf/ as fer_exp/conf: every config group folder must be packaged."""

from __future__ import annotations

import tomllib

from tests.conftest import REPO


def test_every_config_group_is_packaged():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    groups = {p.relative_to(REPO / "conf").as_posix().replace("/", ".")
              for p in (REPO / "conf").rglob("*") if p.is_dir() and any(p.glob("*.yaml"))}
    expected = {f"fer_exp.conf.{g}" for g in groups}
    assert expected <= set(setuptools["packages"])
    assert expected <= set(setuptools["package-data"])
