"""A project file comes from whoever can open a pull request, and it renders on the runner host
with the job's secrets in the environment. Each payload below tries to run a command that
creates a canary file, through a different door out of the template; every one must be refused
(exit 2, one error line naming the file, the line and the expression) by every command, since
every command renders the project file, and the canary must never appear."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_toolkit.core.ci import detect
from ci_toolkit.core.config import template_context
from tests.helpers import run_cli

GLOBALS = ("cycler", "joiner", "namespace", "lipsum", "range", "dict")
CONTEXT = (*template_context(detect({}, Path("/")), {}, "docker.io"), "steps", "self")
TOUCH = "['touch', '{canary}']"
POPEN = "|selectattr('__name__', 'equalto', 'Popen')|first"


def _walks() -> list[str]:
    """From every name a template can see, the classic walk: class -> object -> subclasses ->
    subprocess.Popen, and the function-globals walk to the os module."""
    walks = [f"{{{{ ({name}.__class__.__mro__|last).__subclasses__(){POPEN}({TOUCH}) }}}}" for name in CONTEXT]
    walks += [f"{{{{ {name}.__init__.__globals__.os.system('touch {{canary}}') }}}}" for name in GLOBALS]
    return walks


PAYLOADS = [
    *_walks(),
    # The report's reproduction, and its variants through the other globals.
    "{{ cycler.__init__.__globals__.os.popen('touch {canary}').read() }}",
    "{{ lipsum.__globals__['os'].popen('touch {canary}').read() }}",
    "{{ lipsum.__globals__.__builtins__.__import__('os').system('touch {canary}') }}",
    "{{ range.__self__.__import__('os').system('touch {canary}') }}",
    "{{ dict.mro()[-1].__subclasses__()" + POPEN + "(" + TOUCH + ") }}",
    "{{ namespace(a=1).__class__.__init__.__globals__.os.system('touch {canary}') }}",
    "{{ ''.__class__.__mro__[1].__subclasses__()" + POPEN + "(" + TOUCH + ") }}",
    "{{ (1).__class__.__base__.__subclasses__()" + POPEN + "(" + TOUCH + ") }}",
    "{{ steps.app.__init__.__globals__.os.system('touch {canary}') }}",
    "{{ steps['__class__'].__init__.__globals__.os.system('touch {canary}') }}",
    "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.system('touch {canary}') }}",
    # Filters: attr, map, selectattr, and the mutating methods the immutable sandbox refuses.
    "{{ cycler|attr('__init__')|attr('__globals__')|attr('__getitem__')('os')|attr('system')('touch {canary}') }}",
    "{{ [cycler]|map(attribute='__init__')|list }}",
    "{{ [cycler]|map(attribute='__init__.__globals__.os')|map(attribute='system')|list }}",
    "{{ (lipsum|attr('__globals__')).os.popen('touch {canary}') }}",
    "{{ env.update({'PATH': '/nonexistent'}) }}{{ env.__class__.__init__.__globals__ }}",
    "{{ env.setdefault('x', 'y') }}",
    # str.format and % reach attributes through their own mini-languages.
    "{{ '{0.__init__.__globals__[os].system}'.format(cycler)('touch {canary}') }}",
    "{{ '{x.__init__.__globals__}'.format_map({'x': joiner}) }}",
    "{{ '%s'|format(cycler.__init__.__globals__.os.system('touch {canary}')) }}",
    "{{ '%s' % lipsum.__globals__.os.system('touch {canary}') }}",
    # Statements: set/for/if around a walk, and the loaders a template could read files with.
    "{% set g = cycler.__init__.__globals__ %}{{ g.os.system('touch {canary}') }}",
    "{% for c in ().__class__.__base__.__subclasses__() %}{% if c.__name__ == 'Popen' %}"
    "{{ c(" + TOUCH + ") }}{% endif %}{% endfor %}",
    "{% include '/etc/passwd' %}",
    "{% import 'os' as os %}{{ os.system('touch {canary}') }}",
    # Names Flask-style payloads expect, and a template that tries to stall the runner.
    "{{ config.__class__.__init__.__globals__['os'].popen('touch {canary}').read() }}",
    "{{ request.application.__globals__.__builtins__.__import__('os').system('touch {canary}') }}",
    "{{ 'x' * 10 ** 12 }}",
    "{{ range(10 ** 9)|list }}",
]

COMMANDS = [
    ["config", "show"],
    ["doctor"],
    ["version"],
    ["mirror", "render", "--format", "daemon-json"],
    ["mirror", "rewrite", "busybox"],
    ["mirror", "registry"],
    ["mirror", "check", "busybox"],
    ["setup-builder"],
    ["run", "busybox", "true"],
    ["promote", "--tag", "x", "127.0.0.1:5000/a@sha256:" + "0" * 64],
    ["build", "."],
    ["cache", "ls"],
    ["cache", "prune"],
    ["expand-args", "--", "--push"],
    ["pipeline", "validate"],
    ["pipeline", "plan"],
    ["pipeline", "run"],
    ["pipeline", "merge", "--digest-dir", "d"],
    ["sweep"],
    ["meta", "--image", "r/a"],
    ["merge", "127.0.0.1:5000/a", "--digest", "sha256:" + "0" * 64],
]


def test_every_command_is_in_the_list() -> None:
    from ci_toolkit.cli import COMMAND_MODULES

    assert {name.replace("_", "-") for name in COMMAND_MODULES} == {argv[0] for argv in COMMANDS}


def test_the_corpus_is_large_and_covers_every_name() -> None:
    assert len(PAYLOADS) >= 20
    for name in (*GLOBALS, *CONTEXT, "attr", "map", "format", "%"):
        assert any(name in p for p in PAYLOADS), name


def _project(tmp_path: Path, payload: str) -> Path:
    canary = tmp_path / "CANARY"
    text = payload.replace("{canary}", str(canary))
    (tmp_path / "ci-toolkit.yaml").write_text(f'# line 1\njob-id: "{text}"\nsteps: {{}}\n')
    return canary


@pytest.mark.parametrize("payload", PAYLOADS)
def test_config_show_refuses_the_payload(tmp_path: Path, payload: str) -> None:
    canary = _project(tmp_path, payload)
    result = run_cli(["config", "show"], env={"REG_PW": "hunter2secret"}, cwd=tmp_path)
    assert result.code == 2, result
    assert len(result.error_lines) == 1, result.err
    line = result.error_lines[0]
    assert "ci-toolkit.yaml:2: job-id: " in line, line
    assert "{{" in line or "{%" in line, line
    assert "Traceback" not in result.err
    assert result.out == ""
    assert not canary.exists()


@pytest.mark.parametrize("argv", COMMANDS, ids=lambda a: " ".join(a[:2]))
@pytest.mark.parametrize("payload", PAYLOADS)
def test_every_command_refuses_the_payload(tmp_path: Path, argv: list[str], payload: str) -> None:
    canary = _project(tmp_path, payload)
    result = run_cli(argv, cwd=tmp_path)
    assert result.code == 2, result
    assert len(result.error_lines) == 1 and "ci-toolkit.yaml:2" in result.error_lines[0], result.err
    assert not canary.exists()


def test_a_payload_inside_a_step_names_the_step_key(tmp_path: Path) -> None:
    canary = tmp_path / "CANARY"
    (tmp_path / "ci-toolkit.yaml").write_text(
        "steps:\n  app:\n    build:\n"
        f"      dockerfile: \"{{{{ joiner.__init__.__globals__.os.system('touch {canary}') }}}}\"\n"
    )
    result = run_cli(["pipeline", "plan"], cwd=tmp_path)
    assert result.code == 2
    assert result.error_lines[0].startswith("error: ")
    assert "ci-toolkit.yaml:4: steps.app.build.dockerfile: template refused {{ joiner.__init__" in result.err
    assert not canary.exists()


@pytest.mark.parametrize(
    "template",
    ["{{ env.HOME|upper }}", "{{ 'a' * 3 }}", "{{ 2 ** 10 }}", "{{ namespace(a=1).a }}", "{{ range(3)|join(',') }}"],
)
def test_ordinary_templates_still_render(tmp_path: Path, template: str) -> None:
    (tmp_path / "ci-toolkit.yaml").write_text(f'job-id: "{template}"\n')
    result = run_cli(["config", "show", "--json"], cwd=tmp_path)
    assert result.code == 0, result.err


@pytest.mark.parametrize("payload", PAYLOADS[:12])
def test_a_buildrunner_file_renders_in_the_same_sandbox(tmp_path: Path, payload: str) -> None:
    canary = tmp_path / "CANARY"
    text = payload.replace("{canary}", str(canary))
    (tmp_path / "buildrunner.yaml").write_text(f'# line 1\nsteps:\n  app:\n    run:\n      cmd: "{text}"\n')
    result = run_cli(["pipeline", "plan"], cwd=tmp_path)
    assert result.code == 2, result
    assert len(result.error_lines) == 1 and "buildrunner.yaml:5" in result.error_lines[0], result.err
    assert not canary.exists()


def test_text_without_template_syntax_is_returned_as_it_is_without_loading_jinja(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from ci_toolkit.core.templates import render_template

    text = "steps:\n  app: {build: {path: .}}\n"
    monkeypatch.setitem(sys.modules, "jinja2", None)  # any import of it fails
    assert render_template(text, {}, "x") == text
    monkeypatch.undo()
    assert render_template("a: {{ X }}\r\n", {"X": 1}, "x") == "a: 1\n"
