"""Layered settings: defaults < global files < project file < .env files < environment <
command line. The project file is a Jinja2 template rendered in the sandbox (core/templates)
before it is parsed as YAML. Everything is resolved once, in ``load``, from a passed-in environment."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

from ci_toolkit.core import buildrunner, ci
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.settings import SETTING_FIELDS, Settings, env_name, is_secret, is_trusted_only, kind_of
from ci_toolkit.core.units import parse_pairs

TYPE_CHECKING = False  # not typing's: importing typing costs every command's start-up (CONTRIBUTING)
if TYPE_CHECKING:
    from typing import Any

SOURCES = ("default", "global file", "project file", ".env", "environment", "command line")
PROJECT_SECTIONS = ("steps", "promote")
DEFAULT_PROJECT_FILE = "ci-toolkit.yaml"
SYSTEM_GLOBAL_FILE = Path("/etc/ci-toolkit/config.yaml")


@dataclass(frozen=True, kw_only=True)
class Loaded:
    """The settings after the cascade, with where each value came from."""

    settings: Settings
    sources: Mapping[str, str]
    env: Mapping[str, str]
    ci: ci.CIContext
    project: Mapping[str, Any]
    project_path: Path | None
    template_context: Mapping[str, Any]
    project_format: str = "ci-toolkit"
    """``buildrunner`` when the project file is a buildrunner.yaml (see ``core.buildrunner``)."""


def load(
    env: Mapping[str, str],
    *,
    cwd: Path,
    config_file: str | None = None,
    env_files: Sequence[str] = (),
    overrides: Sequence[str] = (),
    global_files: Sequence[Path] | None = None,
    on_secret: Callable[[str], None] = lambda _secret: None,
) -> Loaded:
    """``on_secret`` receives the raw value of every secret setting from every layer as soon
    as it is read, before it is checked, so that no message (a config error included) can
    show it unmasked."""
    dotenv_values = _read_env_files(cwd, env_files)
    job_env = {**dotenv_values, **env}
    for source in (dotenv_values, env):
        _secrets_in({key: source[env_name(key)] for key in SETTING_FIELDS if env_name(key) in source}, on_secret)
    _secrets_in(dict(item.partition("=")[::2] for item in overrides), on_secret)
    layers: list[tuple[str, Mapping[str, Any]]] = [("default", _defaults(job_env))]
    for path in _global_files(env, global_files):
        layers.append(("global file", _settings_only(_secrets_in(_read_yaml_file(path), on_secret), path)))
    higher: list[tuple[str, Mapping[str, Any]]] = [
        (".env", _from_env(dotenv_values)),
        ("environment", _from_env(env)),
        ("command line", _parse_overrides(overrides)),
    ]
    ci_ctx = ci.detect(job_env, cwd)
    project_path = _project_path(cwd, config_file)
    project: dict[str, Any] = {}
    context: dict[str, Any] = {}
    project_format = "ci-toolkit"
    if project_path is not None and buildrunner.is_buildrunner_file(project_path):
        project, context = _buildrunner_project(layers, higher, ci_ctx, job_env, project_path, cwd)
        project_format = "buildrunner"
    elif project_path is not None:
        registry = _resolve(layers + higher)[0]["docker-registry"]
        context = template_context(ci_ctx, job_env, registry)
        project = _secrets_in(_render_project(project_path, context), on_secret)
        if "docker-registry" in project and not any("docker-registry" in layer for _, layer in higher):
            # The file itself sets DOCKER_REGISTRY: render again so templates see that value.
            context = template_context(ci_ctx, job_env, str(project["docker-registry"]))
            project = _secrets_in(_render_project(project_path, context), on_secret)
        layers.append(("project file", _settings_only(project, project_path)))
    values, sources = _resolve(layers + higher)
    _check_trust(sources, values, dotenv_values, env)
    if not context:
        context = template_context(ci_ctx, job_env, values["docker-registry"])
    settings = Settings(**{f.name: values[f.name.replace("_", "-")] for f in fields(Settings)})
    return Loaded(
        settings=settings,
        sources=sources,
        env=job_env,
        ci=ci_ctx,
        project=project
        if project_format == "buildrunner"
        else {k: v for k, v in project.items() if k in PROJECT_SECTIONS},
        project_path=project_path,
        template_context=context,
        project_format=project_format,
    )


def _buildrunner_project(
    layers: list[tuple[str, Mapping[str, Any]]],
    higher: list[tuple[str, Mapping[str, Any]]],
    ci_ctx: ci.CIContext,
    job_env: Mapping[str, str],
    project_path: Path,
    cwd: Path,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A buildrunner.yaml: its global files become one more global layer (the keys we have
    settings for; appended to ``layers``), the file itself holds no settings, and its
    template variables are aliases of ours."""
    import time

    extras: dict[str, Any] = {}
    for path in buildrunner.global_files(job_env, cwd):
        settings_layer, found = buildrunner.split_globals(_read_yaml_file(path), path)
        layers.append(("global file", {k: _coerce(k, v, str(path)) for k, v in settings_layer.items()}))
        extras.update(found)
    registry = _resolve(layers + higher)[0]["docker-registry"]
    context = template_context(ci_ctx, job_env, registry)
    epoch = job_env.get("SOURCE_DATE_EPOCH", "")
    build_time = int(epoch) if epoch.isdigit() else int(time.time())
    context.update(
        buildrunner.template_aliases(context, config_file=project_path, source_dir=cwd, build_time=build_time)
    )
    project = _render_project(project_path, context)
    project[buildrunner.GLOBAL_KEY] = extras
    return project, context


_UNTRUSTED = ("project file", ".env")


def _check_trust(
    sources: Mapping[str, str], values: Mapping[str, Any], dotenv: Mapping[str, str], env: Mapping[str, str]
) -> None:
    """Files in the checkout come with the code under review: they may not widen what the
    toolkit does on the host. Trusted-only settings and the extra args variable (buildx flags
    that can write the host, see build.extra_args.host_access) come from the CI configuration."""
    for key, source in sources.items():
        if source in _UNTRUSTED and is_trusted_only(key):
            raise ToolkitError.bad_input(
                f"setting {key!r} cannot come from the {source}: it comes with the code under review; "
                f"set {env_name(key)} in the CI configuration or pass --set {key}=..."
            )
    var = str(values.get("extra-args-env") or "")
    if var and var in dotenv and var not in env:
        raise ToolkitError.bad_input(
            f".env sets {var}: extra args are trusted CI configuration (they can make buildx write the host); "
            "set it in the CI's variables instead"
        )


def _secrets_in(data: dict[str, Any], on_secret: Callable[[str], None]) -> dict[str, Any]:
    """Hand every scalar under a secret key to ``on_secret`` (a wrongly shaped value, a list or
    a mapping, is still a secret); returns ``data`` unchanged."""
    pending = [value for key, value in data.items() if key in SETTING_FIELDS and is_secret(key)]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending += [*value.keys(), *value.values()]
        elif isinstance(value, (list, tuple)):
            pending += list(value)
        elif value is not None and not isinstance(value, bool):
            on_secret(str(value))
    return data


def template_context(ci_ctx: ci.CIContext, env: Mapping[str, str], registry: str) -> dict[str, Any]:
    return {
        "DOCKER_REGISTRY": registry,
        "BUILD_NUMBER": ci_ctx.build_number or "0",
        "BUILD_ID": ci_ctx.run_id or ci_ctx.build_number or "0",
        "BUILD_TAG": ci_ctx.build_tag,
        "GIT_SHA": ci_ctx.sha,
        "GIT_BRANCH": ci_ctx.branch,
        "CI_PLATFORM": ci_ctx.provider,
        "env": dict(env),
    }


def _render_project(path: Path, context: Mapping[str, Any]) -> dict[str, Any]:
    from ci_toolkit.core.templates import render_template  # here: only a project file is rendered

    text = _read_text(path)
    # `steps.<name>.image` is only known once that step ran: leave a marker the pipeline
    # replaces, step by step (see STEP_REF).
    rendered = render_template(text, {"steps": DeferredSteps(), **context}, str(path), yaml_keys=True)
    return _parse_yaml(rendered, path)


# What `{{ steps.<name>.<attr> }}` renders to in the project file; the name is hex-encoded so
# any name survives YAML quoting. The pipeline validates the name and substitutes the value.
STEP_REF = re.compile(r"@@ci-toolkit-step:([0-9a-f]*):(image|digest|ref)@@")
STEP_ATTRS = ("image", "digest", "ref")


class DeferredSteps:
    def __getattr__(self, name: str) -> _DeferredStep:
        if name.startswith("__"):
            raise AttributeError(name)
        return _DeferredStep(name)

    def __getitem__(self, name: str) -> _DeferredStep:
        return _DeferredStep(str(name))


class _DeferredStep:
    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> str:
        if attr.startswith("__"):
            raise AttributeError(attr)
        if attr not in STEP_ATTRS:
            import jinja2

            raise jinja2.UndefinedError(f"steps.{self._name}.{attr} (a step has {', '.join(STEP_ATTRS)})")
        return f"@@ci-toolkit-step:{self._name.encode().hex()}:{attr}@@"

    def __getitem__(self, attr: str) -> str:
        return str(getattr(self, str(attr)))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ToolkitError.bad_input(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ToolkitError.bad_input(f"cannot read {path}: not UTF-8 text") from exc


def _read_yaml_file(path: Path) -> dict[str, Any]:
    return _parse_yaml(_read_text(path), path)


def _parse_yaml(text: str, path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ToolkitError.bad_input(f"{path}{line}: invalid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise ToolkitError.bad_input(f"{path}: invalid YAML: {exc}") from exc
    except RecursionError as exc:
        raise ToolkitError.bad_input(f"{path}: invalid YAML: nested too deeply") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ToolkitError.bad_input(f"{path}: expected a mapping of settings at the top level")
    return data


def _project_path(cwd: Path, config_file: str | None) -> Path | None:
    if config_file is not None:
        path = cwd / config_file
        if not path.is_file():
            raise ToolkitError.bad_input(f"config file not found: {config_file}")
        return path
    for name in (DEFAULT_PROJECT_FILE, buildrunner.PROJECT_FILE):
        if (cwd / name).is_file():
            return cwd / name
    return None


def _global_files(env: Mapping[str, str], given: Sequence[Path] | None) -> list[Path]:
    override = env.get("CI_TOOLKIT_GLOBAL_CONFIG")
    if override:
        path = Path(override)
        if not path.is_file():
            raise ToolkitError.bad_input(f"CI_TOOLKIT_GLOBAL_CONFIG points at a missing file: {override}")
        return [path]
    if given is not None:
        return [p for p in given if p.is_file()]
    home = env.get("HOME")
    candidates = [SYSTEM_GLOBAL_FILE] + ([Path(home) / ".ci-toolkit.yaml"] if home else [])
    return [p for p in candidates if p.is_file()]


def _read_env_files(cwd: Path, env_files: Sequence[str]) -> dict[str, str]:
    paths = [cwd / f for f in env_files]
    if not env_files and (cwd / ".env").is_file():
        paths = [cwd / ".env"]
    values: dict[str, str] = {}
    for path in paths:
        values.update(_parse_env_file(path))
    return values


def _parse_env_file(path: Path) -> dict[str, str]:
    import io

    from dotenv.parser import parse_stream

    text = _read_text(path)
    values: dict[str, str] = {}
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            line = binding.original.line
            # The line itself is not shown: it may hold a secret, and nothing is masked yet.
            name = binding.original.string.partition("=")[0].strip()[:64]
            raise ToolkitError.bad_input(f"{path}:{line}: malformed .env line (for {name!r}; value not shown)")
        if binding.key is not None:
            values[binding.key] = binding.value or ""
    return values


def _defaults(env: Mapping[str, str]) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for key, f in SETTING_FIELDS.items():
        defaults[key] = f.default_factory() if f.default_factory is not MISSING else f.default
    defaults["cache-root"] = str(default_cache_root(env))
    return defaults


def default_cache_root(env: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME/ci-toolkit/buildx``; a relative XDG_CACHE_HOME is ignored, as the XDG
    spec says, and HOME (else the user's home) stands in."""
    xdg = env.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg.startswith("/") else Path(env.get("HOME") or Path.home()) / ".cache"
    return base / "ci-toolkit" / "buildx"


def _settings_only(data: Mapping[str, Any], path: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    allowed = set(SETTING_FIELDS) | set(PROJECT_SECTIONS)
    for key, value in data.items():
        if not isinstance(key, str) or key not in allowed:
            raise ToolkitError.bad_input(f"{path}: unknown key {key!r}{_suggest(str(key), allowed)}")
        if key in SETTING_FIELDS:
            result[key] = _coerce(key, value, f"{path}")
    return result


def _suggest(key: str, choices: set[str]) -> str:
    import difflib  # only on bad input

    close = difflib.get_close_matches(key, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key in SETTING_FIELDS:
        name = env_name(key)
        if name in env:
            result[key] = _coerce(key, env[name], name)
    return result


def _parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ToolkitError.bad_input(f"--set expects KEY=VALUE, got {item!r}")
        if key not in SETTING_FIELDS:
            raise ToolkitError.bad_input(f"--set: unknown setting {key!r}{_suggest(key, set(SETTING_FIELDS))}")
        result[key] = _coerce(key, value, "--set")
    return result


def _coerce(key: str, value: Any, where: str) -> Any:
    kind = kind_of(key)
    coerced = _COERCERS[kind](value)
    if coerced is None:
        raise ToolkitError.bad_input(f"{where}: setting {key!r} expects {_KIND_TEXT[kind]}, got {_shown(key, value)}")
    choices = SETTING_FIELDS[key].metadata["choices"]
    if choices and coerced not in choices:
        got = _shown(key, coerced)
        raise ToolkitError.bad_input(f"{where}: setting {key!r} must be one of {', '.join(choices)}, got {got}")
    return coerced


def _shown(key: str, value: Any) -> str:
    """A value for an error message; a secret's only by its type."""
    return f"a {type(value).__name__} (secret, not shown)" if is_secret(key) else repr(value)


def _as_str(value: Any) -> str | None:
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off", ""}:
            return False
    return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _as_list(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
        return [str(v) for v in value]
    return None


def _as_map(value: Any) -> dict[str, str] | None:
    if isinstance(value, str):
        try:
            return parse_pairs([value], "")
        except ToolkitError:
            return None
    if isinstance(value, dict) and all(isinstance(k, str) and _as_str(v) is not None for k, v in value.items()):
        return {k: str(v) for k, v in value.items()}
    return None


def _as_map_list(value: Any) -> dict[str, list[str]] | None:
    if isinstance(value, str):
        import yaml

        try:
            value = yaml.safe_load(value) if value.strip() else {}
        except yaml.YAMLError:
            return None
    if not isinstance(value, dict):
        return None
    result: dict[str, list[str]] = {}
    for k, v in value.items():
        items = _as_list(v)
        if not isinstance(k, str) or items is None:
            return None
        result[k] = items
    return result


_COERCERS: dict[str, Any] = {
    "str": _as_str,
    "bool": _as_bool,
    "int": _as_int,
    "list": _as_list,
    "map": _as_map,
    "map-list": _as_map_list,
}
_KIND_TEXT = {
    "str": "a string",
    "bool": "true or false",
    "int": "an integer",
    "list": "a list of strings",
    "map": "a mapping of strings (key=value,...)",
    "map-list": "a mapping of lists of strings",
}


def _resolve(layers: Sequence[tuple[str, Mapping[str, Any]]]) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for source, layer in layers:
        for key, value in layer.items():
            values[key] = value
            sources[key] = source
    return values, sources


def masked_value(key: str, value: Any) -> Any:
    if is_secret(key) and value:
        return "***"
    return value
