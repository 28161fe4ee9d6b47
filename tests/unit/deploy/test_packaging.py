"""The distribution installs one import package, ``ains``: the repository's product folders (api/, core/, models/,
...) land under it, and nothing lands in site-packages under a generic top-level name another package may own."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SETUPTOOLS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
DATA_ONLY = {"ains.api.ui.static", "ains.api.ui.static.vendor", "ains.api.ui.templates"}


def _package_folders() -> dict[str, Path]:
    """Every folder with an __init__.py under the mapped folders, by its installed package name."""
    found: dict[str, Path] = {}
    for package, folder in SETUPTOOLS["package-dir"].items():
        for init in sorted((REPO / folder).rglob("__init__.py")):
            relative = init.parent.relative_to(REPO / folder).parts
            found[".".join((package, *relative))] = init.parent
    return found


def test_every_package_folder_is_listed_for_setuptools() -> None:
    listed = set(SETUPTOOLS["packages"])
    folders = _package_folders()
    assert "ains.core.routing" in folders and "ains.api.routes" in folders
    assert set(folders) - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert listed - set(folders) == DATA_ONLY, "listed in pyproject.toml but no folder with an __init__.py"


def test_the_wheel_holds_only_the_ains_package_with_its_data(tmp_path: Path) -> None:
    # Built from a copy: setuptools writes build/ and *.egg-info/ beside the sources.
    source = tmp_path / "source"
    for name in ["pyproject.toml", "README.md"]:
        source.mkdir(exist_ok=True)
        shutil.copy(REPO / name, source / name)
    for folder in SETUPTOOLS["package-dir"].values():
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("ains-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    dist_info = "-".join(wheel.name.split("-")[:2]) + ".dist-info"
    assert {name.split("/")[0] for name in names} == {"ains", dist_info}
    for package, folder in _package_folders().items():
        for module in folder.glob("*.py"):
            assert f"{package.replace('.', '/')}/{module.name}" in names
    assert "ains/core/platform/migrations/script.py.mako" in names
    assert "ains/api/ui/templates/base.html" in names
    assert any(name.startswith("ains/api/ui/static/vendor/htmx-") for name in names)
    assert "ains = ains.workers.cli:main" in zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
