"""Cache keys -> directory names, key derivation, and the cache plan per backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ci_toolkit.cache.backends import plan_cache, registry_tag
from ci_toolkit.cache.keys import derive_key, key_dirname, validate_key
from ci_toolkit.core.errors import EXIT_INPUT, ToolkitError


def test_plain_names_are_kept() -> None:
    assert key_dirname("ci_native_asan") == "ci_native_asan"
    assert key_dirname("app-1.2") == "app-1.2"


@pytest.mark.parametrize("key", ["127.0.0.1:5000/app|test|linux/amd64", "current", "gen-x", "a" * 300, ".hidden"])
def test_other_keys_get_a_safe_hashed_name(key: str) -> None:
    name = key_dirname(key)
    assert "/" not in name and "\0" not in name and name not in (".", "..")
    assert "~" in name and len(name) <= 81


@settings(max_examples=500, deadline=None)
@given(st.text(min_size=1, max_size=300), st.text(min_size=1, max_size=300))
def test_different_keys_never_share_a_directory(a: str, b: str) -> None:
    for key in (a, b):
        name = key_dirname(key)
        assert "/" not in name and "\0" not in name and name not in (".", "..") and 0 < len(name) <= 100
    if a != b:
        assert key_dirname(a) != key_dirname(b)


@pytest.mark.parametrize(
    "key", ["", "../x", "a/../b", "/etc", "/", "..", ".", "a\0b", "tab\there", "x" * 10_000, "~root"]
)
def test_bad_keys_are_refused(key: str) -> None:
    with pytest.raises(ToolkitError) as info:
        validate_key(key)
    assert info.value.exit_code == EXIT_INPUT


def test_key_precedence() -> None:
    common = {"tags": ["127.0.0.1:5000/app:1", "x:2"], "target": "test", "platforms": ["linux/arm64", "linux/amd64"]}
    assert derive_key(explicit="k", env={"CONTAINER_NAME": "c"}, context_name="ctx", **common) == "k"  # type: ignore[arg-type]
    assert derive_key(explicit="", env={"CONTAINER_NAME": "c"}, context_name="ctx", **common) == "c"  # type: ignore[arg-type]
    derived = derive_key(explicit="", env={}, context_name="ctx", **common)  # type: ignore[arg-type]
    assert derived == "127.0.0.1:5000/app|test|linux/amd64,linux/arm64"
    assert derive_key(explicit="", env={}, tags=[], target="", platforms=[], context_name="ctx") == "context-ctx"


def test_container_name_is_validated() -> None:
    with pytest.raises(ToolkitError, match="CONTAINER_NAME"):
        derive_key(explicit="", env={"CONTAINER_NAME": "../../etc"}, tags=[], target="", platforms=[], context_name="")


def test_seed_pair_is_managed() -> None:
    extra = [
        "--pull",
        "--cache-to",
        "type=local,dest=/cache/docker/asan,mode=max",
        "--cache-from=type=local,src=/cache/docker/asan/",
    ]
    plan = plan_cache(backend="none", key="k1", root=Path("/r"), ref="", extra_args=extra, cwd=Path("/w"))
    assert plan.backend == "local" and plan.entry == Path("/cache/docker/asan")
    assert plan.extra_args == ("--pull",)
    assert plan.to_options["mode"] == "max"
    assert plan.to_options["compression"] == "zstd"
    assert "managing /cache/docker/asan" in plan.notice


def test_compression_is_zstd_unless_the_user_chose() -> None:
    extra = ["--cache-to", "type=local,dest=/c,mode=max,compression=gzip", "--cache-from", "type=local,src=/c"]
    plan = plan_cache(backend="local", key="k1", root=Path("/r"), ref="", extra_args=extra, cwd=Path("/w"))
    assert plan.to_options["compression"] == "gzip"
    plan = plan_cache(
        backend="local", key="k1", root=Path("/r"), ref="", extra_args=[], cwd=Path("/w"), compression_level=9
    )
    assert plan.to_options == {
        "mode": "max",
        "compression": "zstd",
        "force-compression": "true",
        "compression-level": "9",
    }
    plan = plan_cache(
        backend="local", key="k1", root=Path("/r"), ref="", extra_args=[], cwd=Path("/w"), compression="gzip"
    )
    assert plan.to_options == {"mode": "max", "compression": "gzip", "force-compression": "true"}


def test_level_zero_is_the_measured_default_for_zstd_only() -> None:
    """B5 chose zstd 3 (benchmarks/bench_warm.py); gzip keeps BuildKit's own default."""

    def options(compression: str, level: int) -> dict[str, str]:
        plan = plan_cache(backend="local", key="k1", root=Path("/r"), ref="", extra_args=[], cwd=Path("/w"),
                          compression=compression, compression_level=level)  # fmt: skip
        return dict(plan.to_options)

    assert options("zstd", 0)["compression-level"] == "3"
    assert options("zstd", 9)["compression-level"] == "9"
    assert "compression-level" not in options("gzip", 0)
    assert options("gzip", 1)["compression-level"] == "1"
    assert "compression-level" not in options("uncompressed", 0)


@pytest.mark.parametrize(("compression", "level"), [("brotli", 0), ("zstd", 23), ("gzip", -1), ("gzip", 10)])
def test_bad_compression_is_bad_input(compression: str, level: int) -> None:
    with pytest.raises(ToolkitError) as info:
        plan_cache(
            backend="local",
            key="k",
            root=Path("/r"),
            ref="",
            extra_args=[],
            cwd=Path("/w"),
            compression=compression,
            compression_level=level,
        )
    assert info.value.exit_code == EXIT_INPUT


@pytest.mark.parametrize(
    "extra",
    [
        ["--cache-to", "type=local,dest=/a", "--cache-from", "type=local,src=/b"],
        ["--cache-to", "type=registry,ref=r/x:c", "--cache-from", "type=registry,ref=r/x:c"],
        ["--cache-from", "type=local,src=/a"],
    ],
)
def test_other_cache_args_pass_through_and_turn_ours_off(extra: list[str]) -> None:
    plan = plan_cache(backend="local", key="k1", root=Path("/r"), ref="", extra_args=extra, cwd=Path("/w"))
    assert plan.extra_args == tuple(extra)
    assert plan.entry is None and not plan.cache_from and not plan.cache_to


def test_registry_backend() -> None:
    plan = plan_cache(
        backend="registry", key="a/b c", root=Path("/r"), ref="127.0.0.1:5000/cache", extra_args=[], cwd=Path("/w")
    )
    tag = registry_tag("a/b c")
    assert plan.cache_from == (f"type=registry,ref=127.0.0.1:5000/cache:{tag}",)
    assert plan.cache_to == (
        f"type=registry,ref=127.0.0.1:5000/cache:{tag},mode=max,image-manifest=true,oci-mediatypes=true"
        ",compression=zstd,force-compression=true,compression-level=3",
    )
    assert registry_tag("ci_native_asan") == "cache-ci_native_asan"


@pytest.mark.parametrize("ref", ["", "Repo/X", "r/x:tag", "r/x@sha256:ab"])
def test_registry_backend_needs_a_plain_repository(ref: str) -> None:
    with pytest.raises(ToolkitError) as info:
        plan_cache(backend="registry", key="k", root=Path("/r"), ref=ref, extra_args=[], cwd=Path("/w"))
    assert info.value.exit_code == EXIT_INPUT


def test_gha_and_none() -> None:
    gha = plan_cache(backend="gha", key="k1", root=Path("/r"), ref="", extra_args=[], cwd=Path("/w"))
    assert gha.cache_from == ("type=gha,scope=k1",) and gha.cache_to == (
        "type=gha,scope=k1,mode=max,compression=zstd,force-compression=true,compression-level=3",
    )
    none = plan_cache(backend="none", key="k1", root=Path("/r"), ref="", extra_args=[], cwd=Path("/w"))
    assert not none.cache_from and not none.cache_to and none.entry is None


@pytest.mark.parametrize(
    ("env", "warned"),
    [
        ({}, True),
        ({"ACTIONS_CACHE_URL": "u", "ACTIONS_RESULTS_URL": "u"}, True),  # no token: buildx drops the cache
        ({"ACTIONS_RUNTIME_TOKEN": "t"}, True),
        ({"ACTIONS_RUNTIME_TOKEN": "t", "ACTIONS_CACHE_URL": "u"}, False),  # the v1 service (BuildKit < 0.20)
        ({"ACTIONS_RUNTIME_TOKEN": "t", "ACTIONS_RESULTS_URL": "u"}, False),  # the v2 service
    ],
)
def test_gha_without_its_runtime_variables_says_buildx_uses_no_cache(env: dict[str, str], warned: bool) -> None:
    plan = plan_cache(backend="gha", key="k1", root=Path("/r"), ref="", extra_args=[], cwd=Path("/w"), env=env)
    assert ("buildx uses no cache" in plan.warning) is warned
    assert "ghaction-github-runtime" in plan.warning or not warned


def _raw_pair(dest: Path) -> list[str]:
    return ["--cache-to", f"type=local,dest={dest},mode=max", "--cache-from", f"type=local,src={dest}"]


@pytest.mark.parametrize("dest", ["/", "/etc", "/usr/local", "/var/lib", "HOME", "ROOT", "ROOT_PARENT", "/proc/1"])
def test_a_raw_pair_on_a_protected_directory_passes_through_unmanaged(tmp_path: Path, dest: str) -> None:
    home, root = tmp_path / "home", tmp_path / "home" / ".cache" / "ci-toolkit" / "buildx"
    root.mkdir(parents=True)
    path = {"HOME": home, "ROOT": root, "ROOT_PARENT": root.parent}.get(dest, Path(dest))
    extra = _raw_pair(path)
    plan = plan_cache(backend="local", key="k", root=root, ref="", extra_args=extra, cwd=tmp_path, home=home)
    assert plan.entry is None and plan.extra_args == tuple(extra) and plan.backend == "extra-args"
    assert "not managing" in plan.warning and "unchanged" in plan.warning


def test_a_raw_pair_on_a_directory_with_other_files_or_a_symlink_passes_through(tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "report.txt").write_text("mine")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    for dest, why in ((busy, "'report.txt'"), (link, "symlink")):
        plan = plan_cache(backend="local", key="k", root=tmp_path / "r", ref="", extra_args=_raw_pair(dest), cwd=dest)
        assert plan.entry is None and why in plan.warning


def test_a_raw_pair_is_managed_when_missing_empty_an_entry_or_a_raw_export(tmp_path: Path) -> None:
    empty, entry, export = tmp_path / "empty", tmp_path / "entry", tmp_path / "export"
    for path in (empty, entry, export):
        path.mkdir()
    for name in ("current", "lock", "key", "gen-1-a", "tmp-2-b"):
        (entry / name).touch()
    for name in ("index.json", "oci-layout", "blobs"):
        (export / name).touch()
    for dest in (tmp_path / "missing", empty, entry, export):
        plan = plan_cache(backend="none", key="k", root=tmp_path / "r", ref="", extra_args=_raw_pair(dest), cwd=dest)
        assert plan.entry == dest and not plan.warning
