"""buildrunner's files, read as they are: which project file is one, its global configuration
files (``/etc/buildrunner/buildrunner.yaml``, ``~/.buildrunner.yaml``, ``./.buildrunner.yaml``)
mapped onto our settings, and its template variables as aliases of ours.

The steps themselves are mapped in ``pipeline.buildrunner``; this module only knows what the
settings cascade needs, so ``config`` can load a ``buildrunner.yaml`` without the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from ci_toolkit.core.errors import ToolkitError

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from typing import Any

PROJECT_FILE = "buildrunner.yaml"
GLOBAL_KEY = "buildrunner-global"
"""Where the global keys the pipeline needs (env, local-files, ...) travel in the project."""
STEP_NAME_MARK = "@@ci-toolkit-step-name@@"
STEP_ID_MARK = "@@ci-toolkit-step-id@@"

# Global configuration key -> our setting.
_SETTINGS = {"docker-registry": "docker-registry", "build-registry": "build-registry", "caches-root": "cache-root"}
# Global keys the pipeline reads.
_PIPELINE = ("env", "local-files", "platform-builders", "ssh-keys")
# Global keys that only matter to features that are refused where a step uses them.
_INERT = {
    "build-servers": "only used by remote: steps",
    "github": "only used by fetch:// URLs",
    "temp-dir": "the toolkit uses the system temporary directory",
}
_REFUSED = {
    "security-scan": "run a scanner as a step (e.g. a run: step with trivy) or in the CI after the push",
    "disable-multi-platform": "pass --platform linux/amd64 to `pipeline run` instead",
    "docker-build-cache": "the toolkit keeps a bounded local build cache per step already (cache-backend setting)",
}


def is_buildrunner_file(path: Path) -> bool:
    name = path.name.lower()
    return "buildrunner" in name and name.endswith((".yaml", ".yml"))


def global_files(env: Mapping[str, str], cwd: Path) -> list[Path]:
    """buildrunner's own lookup order; a later file's section replaces an earlier one's."""
    home = env.get("HOME")
    candidates = [Path("/etc/buildrunner/buildrunner.yaml")]
    candidates += [Path(home) / ".buildrunner.yaml"] if home else []
    candidates.append(cwd / ".buildrunner.yaml")
    return [p for p in candidates if p.is_file()]


def split_globals(data: Mapping[str, Any], path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(settings layer, keys for the pipeline) of one global file; a key we do not provide is
    an error that says so, never silently ignored."""
    settings: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for key, value in data.items():
        if key in _SETTINGS:
            if key == "build-registry" and value == "local":
                continue  # buildrunner's temporary registry: ours is the step images' own handling
            settings[_SETTINGS[key]] = str(Path(str(value)).expanduser()) if key == "caches-root" else value
        elif key in _PIPELINE:
            extras[key] = value
        elif key in _REFUSED:
            raise ToolkitError.bad_input(
                f"{path}: {key}: a buildrunner feature ci-toolkit does not provide; {_REFUSED[key]}"
            )
        elif key not in _INERT:
            raise ToolkitError.bad_input(f"{path}: {key}: not a buildrunner global configuration key ci-toolkit knows")
    return settings, extras


def template_aliases(
    context: Mapping[str, Any], *, config_file: Path, source_dir: Path, build_time: int
) -> dict[str, Any]:
    """buildrunner's template variables, each an alias of ours. ``BUILDRUNNER_BUILD_ID`` and
    ``BUILDRUNNER_BUILD_DOCKER_TAG`` are the build tag every push gets, so a later step can
    say ``FROM repo:{{ BUILDRUNNER_BUILD_DOCKER_TAG }}``; the step name and id render as
    markers the pipeline replaces step by step. Relative paths are buildrunner's: from the
    source directory (where it runs), not from the file's directory."""
    sha = str(context.get("GIT_SHA", ""))
    return {
        "BUILDRUNNER_BUILD_NUMBER": context["BUILD_NUMBER"],
        "BUILDRUNNER_BUILD_ID": context["BUILD_TAG"],
        "BUILDRUNNER_BUILD_DOCKER_TAG": context["BUILD_TAG"],
        "BUILDRUNNER_BUILD_TIME": build_time,
        "BUILDRUNNER_STEP_NAME": STEP_NAME_MARK,
        "BUILDRUNNER_STEP_ID": STEP_ID_MARK,
        "BUILDRUNNER_ARCH": _machine(),
        "VCSINFO_NAME": source_dir.name,
        "VCSINFO_BRANCH": context.get("GIT_BRANCH", ""),
        "VCSINFO_ID": sha,
        "VCSINFO_SHORT_ID": sha[:7],
        "VCSINFO_NUMBER": context["BUILD_NUMBER"],
        "CONFIG_FILE": str(config_file),
        "CONFIG_DIR": str(config_file.parent),
        "checksum": _checksum(source_dir),
    }


def _checksum(base: Path) -> Callable[..., str]:
    """buildrunner's ``checksum("a", "b")``: one SHA-1 over the named files' contents."""

    def checksum(*names: str) -> str:
        import hashlib

        digest = hashlib.sha1(usedforsecurity=False)
        for name in names:
            try:
                digest.update((base / name).read_bytes())
            except OSError as exc:
                raise ToolkitError.bad_input(f"checksum({name!r}): cannot read {base / name}: {exc.strerror}") from exc
        return digest.hexdigest()

    return checksum


def _machine() -> str:
    import platform  # lazily: every command loads the configuration, few read buildrunner files

    return platform.machine()
