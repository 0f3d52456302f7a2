"""The package's own map of itself: every module is named where a reader looks for it."""

import re
from pathlib import Path

import pytest

import ddpm_lite

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(
    p.stem for p in (ROOT / "ddpm_lite").glob("*.py") if p.stem != "__init__"
)


@pytest.mark.parametrize("module", MODULES)
def test_the_package_docstring_names_every_module(module):
    assert f"`{module}`" in ddpm_lite.__doc__


@pytest.mark.parametrize("module", MODULES)
def test_the_readme_table_describes_every_module(module):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(rf"^\| `{re.escape(module)}` \|", readme, re.M), module
