"""buildrunner.yaml -> our pipeline document, so an existing buildrunner file runs unchanged.

``translate`` walks buildrunner's keys (README "build", "run", "services", "Tagging/Pushing"
and docs/global-configuration.rst of adobe/buildrunner) and writes the same step in our
``steps:`` format (``schema.json``), which ``model.load`` then validates and orders like any
other. A key we do not provide is one error line that names it, says it is a buildrunner
feature ci-toolkit does not provide, and gives the alternative where there is one.

Public entry: ``load``. The docs/from-buildrunner.md table lists every key.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ci_toolkit.core.buildrunner import GLOBAL_KEY, STEP_ID_MARK, STEP_NAME_MARK
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.pipeline.model import KeyPath, Pipeline, fail
from ci_toolkit.pipeline.model import load as load_native

SOURCE_MOUNT = "/source"

_TOP = {"steps", "version", "use-legacy-builder", GLOBAL_KEY}
_STEP = {"build", "run", "commit", "push", "depends"}
_BUILD = {
    "path": "path",
    "dockerfile": "dockerfile",
    "target": "target",
    "platforms": "platforms",
    "platform": "platforms",
    "buildargs": "build-args",
    "no-cache": "no-cache",
    "pull": "pull",
    "cache_from": "cache-from",
    "secrets": "secrets",
    "inject": "inject",
    "import": "import",
}
# run and service keys that keep their meaning under our name.
_CONTAINER = {
    "image": "image",
    "cmd": "cmd",
    "shell": "shell",
    "cwd": "cwd",
    "user": "user",
    "hostname": "hostname",
    "dns": "dns",
    "dns_search": "dns-search",
    "dns-search": "dns-search",
    "extra_hosts": "extra-hosts",
    "env": "env",
    "files": "files",
    "volumes_from": "volumes-from",
    "ports": "ports",
    "platform": "platform",
    "mem-limit": "mem-limit",
    "cpu-shares": "cpu-shares",
    "cpu-period": "cpu-period",
    "cpu-quota": "cpu-quota",
    "pull": "pull-policy",
}
_RUN_ONLY = {"cmds", "artifacts", "caches", "post-build", "xfail", "services"}
_SERVICE_ONLY = {"build", "wait_for"}

_NOT_PROVIDED = {
    "remote": "run the command in a run: step, or in a CI job on that host",
    "pypi-push": "upload in a run: step (e.g. cmds: [pip install twine, twine upload dist/*])",
    "redirect": "keep the buildrunner.yaml in the repository (or fetch it before calling ci-toolkit)",
    "provisioners": "call the script from cmds: (e.g. cmds: [sh path/to/script.sh])",
    "systemd": "the toolkit does not run init systems in step containers; test such images outside the pipeline",
    "cap_add": "added capabilities are not given to step containers on shared runners",
    "privileged": "privileged containers are not run by the toolkit on shared runners",
    "containers": "start such containers with the toolkit's labels so `ci-toolkit sweep` removes them",
    "ssh-keys": "pass a deploy token through env: or a build secret (build.secrets: id=...,env=VAR) instead",
    "inject-ssh-agent": "no ssh agent is forwarded (run.ssh-keys is not provided either); use a token in env:",
    "cache_to": "the toolkit exports each step's build cache to its own bounded local store (cache-backend setting)",
    "security-scan": "run a scanner as a run: step or in the CI after the push",
}


def not_provided(file: str, path: KeyPath, key: str) -> ToolkitError:
    hint = _NOT_PROVIDED.get(key, "")
    return fail(
        file, path, f"{key} is a buildrunner feature ci-toolkit does not provide" + (f"; {hint}" if hint else "")
    )


def load(
    project: Mapping[str, Any],
    *,
    file: str,
    project_dir: Path,
    build_tag: str,
    context: Mapping[str, Any],
    allow_outside: bool = False,
) -> Pipeline:
    """Translate, then validate and order as our own format."""
    document = translate(project, file=file, context=context)
    try:
        pipeline = load_native(
            document, file=file, project_dir=project_dir, build_tag=build_tag, allow_outside=allow_outside
        )
    except ToolkitError as exc:
        raise ToolkitError(_buildrunner_names(exc.message), exc.exit_code) from exc
    extras: Mapping[str, Any] = project.get(GLOBAL_KEY) or {}
    return Pipeline(
        file=pipeline.file,
        project_dir=pipeline.project_dir,
        steps=pipeline.steps,
        promote=pipeline.promote,
        local_files=dict(extras.get("local-files") or {}),
        flavor="buildrunner",
        results_file="buildrunner.results/artifacts.json",
    )


_OURS_TO_THEIRS = {
    ".build-args": ".buildargs",
    ".cache-from": ".cache_from",
    ".dns-search": ".dns_search",
    ".extra-hosts": ".extra_hosts",
    ".volumes-from": ".volumes_from",
    ".wait-for": ".wait_for",
    ".pull-policy": ".pull",
    ".add-build-tag": ".add_build_tag",
}


def _buildrunner_names(message: str) -> str:
    for ours, theirs in _OURS_TO_THEIRS.items():
        message = message.replace(ours, theirs)
    return message


def translate(project: Mapping[str, Any], *, file: str, context: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in project.items():
        if key not in _TOP:
            raise _unknown(file, (key,), key, "a top-level key")
        if key == "use-legacy-builder" and value:
            raise fail(
                file,
                (key,),
                "use-legacy-builder is a buildrunner feature ci-toolkit does not provide; "
                "every build runs on buildx (BuildKit): remove the key",
            )
    steps = project.get("steps")
    if not isinstance(steps, dict) or not steps:
        raise fail(file, ("steps",), "expected a mapping of step names to steps")
    extras: Mapping[str, Any] = project.get(GLOBAL_KEY) or {}
    env = _run_env(context, extras)
    builders: Mapping[str, str] = extras.get("platform-builders") or {}
    out = {}
    for name, spec in steps.items():
        step = _step(str(name), spec, file, env, builders)
        out[str(name)] = _replace_marks(step, str(name), str(context.get("BUILD_TAG", "")))
    return {"steps": out}


def _unknown(file: str, path: KeyPath, key: str, what: str) -> ToolkitError:
    if key in _NOT_PROVIDED:
        return not_provided(file, path, key)
    return fail(file, path, f"{key!r} is not {what} of buildrunner's format (see docs/from-buildrunner.md)")


def _run_env(context: Mapping[str, Any], extras: Mapping[str, Any]) -> dict[str, str]:
    """What buildrunner sets in every run container, plus the global ``env:``."""
    names = (
        "BUILDRUNNER_BUILD_NUMBER",
        "BUILDRUNNER_BUILD_ID",
        "BUILDRUNNER_BUILD_DOCKER_TAG",
        "BUILDRUNNER_BUILD_TIME",
        "BUILDRUNNER_ARCH",
        "VCSINFO_NAME",
        "VCSINFO_BRANCH",
        "VCSINFO_ID",
        "VCSINFO_SHORT_ID",
        "VCSINFO_NUMBER",
    )
    env = {name: str(context[name]) for name in names if name in context}
    env.update(BUILDRUNNER_STEP_NAME=STEP_NAME_MARK, BUILDRUNNER_STEP_ID=STEP_ID_MARK)
    env.update({str(k): str(v) for k, v in (extras.get("env") or {}).items()})
    return env


def _replace_marks(value: Any, step: str, build_tag: str) -> Any:
    """``BUILDRUNNER_STEP_NAME``/``_ID``: known per step only, rendered as markers."""
    if isinstance(value, str):
        step_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"ci-toolkit:{build_tag}:{step}"))
        return value.replace(STEP_NAME_MARK, step).replace(STEP_ID_MARK, step_id)
    if isinstance(value, dict):
        return {k: _replace_marks(v, step, build_tag) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_marks(v, step, build_tag) for v in value]
    return value


def _step(name: str, spec: Any, file: str, env: Mapping[str, str], builders: Mapping[str, str]) -> dict[str, Any]:
    base: KeyPath = ("steps", name)
    if not isinstance(spec, dict):
        raise fail(file, base, "expected a mapping with build, run, commit or push")
    out: dict[str, Any] = {}
    for key, value in spec.items():
        path = (*base, key)
        if key not in _STEP:
            raise _unknown(file, path, key, "a step key")
        if key == "build":
            out["build"] = _build(value, path, file, builders)
        elif key == "run":
            out["run"] = _run(value, path, file, env)
        elif key in ("commit", "push"):
            out[key] = _push(value, path, file)
        else:
            out[key] = value
    if "run" in out and "image" not in out["run"] and "build" not in out:
        raise fail(file, (*base, "run", "image"), "a run needs an 'image' (or a build in the same step)")
    return out


def _build(value: Any, path: KeyPath, file: str, builders: Mapping[str, str]) -> dict[str, Any]:
    if isinstance(value, str):
        return {"path": value}
    if not isinstance(value, dict):
        raise fail(file, path, "expected a context directory or a mapping")
    if "platform" in value and "platforms" in value:
        raise fail(file, (*path, "platform"), "give platform or platforms, not both")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key not in _BUILD:
            raise _unknown(file, (*path, key), key, "a build key")
        if key == "platform":
            item = [item]
        elif key == "cache_from":
            item = [_cache_source(v, (*path, key), file) for v in (item if isinstance(item, list) else [item])]
        out[_BUILD[key]] = item
    builder = _builder(out.get("platforms", ()), builders, path, file)
    if builder:
        out["builder"] = builder
    if "import" in out:
        return {"import": out["import"]}  # buildrunner: "all other options are ignored"
    return out


def _cache_source(value: Any, path: KeyPath, file: str) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, str):
        return value
    raise fail(file, path, "expected an image, a type=... string or a mapping")


def _builder(platforms: Any, builders: Mapping[str, str], path: KeyPath, file: str) -> str:
    """platform-builders: one buildx build runs on one builder, so every platform of a step
    must map to the same one (a builder with a node per platform, `docker buildx create
    --append`, covers several)."""
    if not builders or not isinstance(platforms, list):
        return ""
    chosen = {str(builders[p]) for p in platforms if p in builders}
    if len(chosen) > 1:
        raise fail(
            file,
            (*path, "platforms"),
            f"platform-builders maps these platforms to different builders ({', '.join(sorted(chosen))}); "
            "one build runs on one builder: append a node per platform to one builder (docker buildx create --append)",
        )
    return chosen.pop() if chosen else ""


def _push(value: Any, path: KeyPath, file: str) -> Any:
    """push/commit: a repository, a list of repositories or mappings, or a mapping."""
    if isinstance(value, list):
        return [_push_entry(v, (*path, i), file) for i, v in enumerate(value)]
    return _push_entry(value, path, file)


def _push_entry(value: Any, path: KeyPath, file: str) -> Any:
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == "add_build_tag":
            out["add-build-tag"] = item
        elif key in ("repository", "tags"):
            out[key] = item
        else:
            raise _unknown(file, (*path, key), key, "a push/commit key")
    return out


def _container(value: Mapping[str, Any], path: KeyPath, file: str, extra: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in _CONTAINER:
            out[_CONTAINER[key]] = item
        elif key not in extra:
            raise _unknown(file, (*path, key), key, "a run key" if "cmds" in extra else "a service key")
    if "pull" in value:
        out["pull-policy"] = "always" if value["pull"] else "if-not-present"
    if isinstance(out.get("dns-search"), str):
        out["dns-search"] = [out["dns-search"]]
    if "ports" in out and isinstance(out["ports"], dict):
        out["ports"] = {str(k): v for k, v in out["ports"].items()}
    return out


def _run(value: Any, path: KeyPath, file: str, env: Mapping[str, str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(file, path, "expected a mapping")
    out = _container(value, path, file, _RUN_ONLY)
    cmds = [value["cmd"]] if "cmd" in value else []
    cmds += list(value.get("cmds") or [])
    out.pop("cmd", None)
    if cmds:
        out["cmds"] = cmds
    out["env"] = {**env, **(value.get("env") or {})}
    out["mount"] = SOURCE_MOUNT
    out.setdefault("cwd", SOURCE_MOUNT)
    for key in ("artifacts", "xfail"):
        if key in value:
            out[key] = value[key]
    if "caches" in value:
        out["caches"] = _caches(value["caches"], (*path, "caches"), file)
    if "post-build" in value:
        post = value["post-build"]
        out["post-build"] = {"path": post} if isinstance(post, str) else _build(post, (*path, "post-build"), file, {})
    if "services" in value:
        out["services"] = _services(value["services"], (*path, "services"), file, env)
    return out


def _caches(value: Any, path: KeyPath, file: str) -> dict[str, list[str]]:
    """Both of buildrunner's forms: ``/docker/path: [key, prefix...]`` (recommended) and the
    older ``key: /docker/path``."""
    if not isinstance(value, dict):
        raise fail(file, path, "expected a mapping of container paths to cache keys")
    out: dict[str, list[str]] = {}
    for key, item in value.items():
        if isinstance(item, list):
            out[str(key)] = [str(k) for k in item]
        elif isinstance(item, str) and item.startswith("/"):
            out[item] = [str(key)]
        else:
            raise fail(file, (*path, str(key)), "expected a list of cache keys, or an absolute container path")
    return out


def _services(value: Any, path: KeyPath, file: str, env: Mapping[str, str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(file, path, "expected a mapping of service names to services")
    out: dict[str, Any] = {}
    for name, spec in value.items():
        where = (*path, str(name))
        if not isinstance(spec, dict):
            raise fail(file, where, "expected a mapping with image or build")
        if ("image" in spec) == ("build" in spec):
            raise fail(file, where, "a service needs exactly one of image and build")
        service = _container(spec, where, file, _SERVICE_ONLY)
        if "build" in spec:
            service["build"] = _build(spec["build"], (*where, "build"), file, {})
        if "wait_for" in spec:
            service["wait-for"] = spec["wait_for"]
        service["env"] = {**env, **(spec.get("env") or {})}
        out[str(name)] = service
    return out
