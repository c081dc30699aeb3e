"""run.artifacts: what each glob matches is copied or archived into <results>/<step>/ and
listed with its properties."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.pipeline.artifacts import collect


def _tree(root: Path) -> Path:
    (root / "build" / "dir").mkdir(parents=True)
    (root / "build" / "a.txt").write_text("a")
    (root / "build" / "dir" / "b.txt").write_text("b")
    return root


def test_files_directories_and_properties(tmp_path: Path) -> None:
    work = _tree(tmp_path / "work")
    results = tmp_path / "results"
    found = collect(
        {
            "build/*.txt": {"type": "test-results", "x": 1},
            "/source/build/dir": None,
            "build/dir/b.txt": {"rename": "c.txt"},
        },
        work,
        "/source",
        results,
        "s",
    )
    assert found == {
        "s/a.txt": {"type": "test-results", "x": 1},
        "s/dir.tar.gz": {"type": "tar"},
        "s/c.txt": {"type": "file"},
    }
    assert (results / "s" / "a.txt").read_text() == "a" and (results / "s" / "c.txt").read_text() == "b"
    with tarfile.open(results / "s" / "dir.tar.gz") as archive:
        assert archive.getnames() == ["dir", "dir/b.txt"]


def test_uncompressed_directory_is_copied(tmp_path: Path) -> None:
    work = _tree(tmp_path / "work")
    found = collect({"build/dir": {"format": "uncompressed"}}, work, "/source", tmp_path / "r", "s")
    assert found == {"s/dir": {"type": "directory"}}
    assert (tmp_path / "r" / "s" / "dir" / "b.txt").read_text() == "b"


def test_nothing_matched_fails_and_outside_the_mount_is_bad_input(tmp_path: Path) -> None:
    work = _tree(tmp_path / "work")
    with pytest.raises(ToolkitError) as info:
        collect({"nope/*": None}, work, "/source", tmp_path / "r", "s")
    assert info.value.exit_code == 1
    with pytest.raises(ToolkitError) as info:
        collect({"/etc/passwd": None}, work, "/source", tmp_path / "r", "s")
    assert info.value.exit_code == 2
