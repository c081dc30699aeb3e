"""Bad input: exit 2, exactly one `error:` line naming the problem, no traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import run_cli

CASES: list[tuple[str, dict[str, str], list[str], str]] = [
    # (id, files, argv, expected fragment of the error line)
    ("malformed-yaml", {"ci-toolkit.yaml": "builder: [unclosed\n"}, ["config", "show"], "invalid YAML"),
    ("yaml-not-mapping", {"ci-toolkit.yaml": "- a\n- b\n"}, ["config", "show"], "expected a mapping"),
    ("unknown-key", {"ci-toolkit.yaml": "bulider: x\n"}, ["config", "show"], "did you mean 'builder'"),
    ("wrong-type-bool", {"ci-toolkit.yaml": "mirror-required: maybe\n"}, ["config", "show"], "true or false"),
    ("wrong-type-str", {"ci-toolkit.yaml": "builder: [a, b]\n"}, ["config", "show"], "'builder' expects a string"),
    ("wrong-type-list", {"ci-toolkit.yaml": "insecure-registries: {a: 1}\n"}, ["config", "show"], "list of strings"),
    ("wrong-type-map", {"ci-toolkit.yaml": "container-labels: [a]\n"}, ["config", "show"], "mapping of strings"),
    ("bad-choice", {"ci-toolkit.yaml": "cache-backend: s3\n"}, ["config", "show"], "must be one of"),
    ("undefined-template", {"ci-toolkit.yaml": "builder: '{{ MISSING }}'\n"}, ["config", "show"], "MISSING"),
    ("template-syntax", {"ci-toolkit.yaml": "builder: '{% if %}'\n"}, ["config", "show"], "template syntax error"),
    ("missing-config-file", {}, ["--config", "nope.yaml", "config", "show"], "config file not found: nope.yaml"),
    ("unreadable-file", {"ci-toolkit.yaml": "\udcff"}, ["config", "show"], "cannot read"),
    ("malformed-env-line", {".env": "GOOD=1\nthis is not valid\n"}, ["config", "show"], "malformed .env line"),
    ("missing-env-file", {}, ["--env-file", "missing.env", "config", "show"], "cannot read"),
    ("env-var-wrong-type", {}, ["config", "show"], "CI_TOOLKIT_MIRROR_REQUIRED"),
    ("set-without-equals", {}, ["--set", "builder", "config", "show"], "--set expects KEY=VALUE"),
    ("set-unknown-key", {}, ["--set", "bulder=x", "config", "show"], "did you mean 'builder'"),
    ("set-bad-value", {}, ["--set", "pull-policy=sometimes", "config", "show"], "must be one of"),
    ("unknown-command", {}, ["frobnicate"], "invalid choice"),
    ("unknown-flag", {}, ["config", "show", "--bogus"], "unrecognized arguments"),
    ("missing-subcommand", {}, ["config"], "required"),
    ("global-config-missing", {}, ["config", "show"], "CI_TOOLKIT_GLOBAL_CONFIG"),
]

ENV_FOR = {
    "env-var-wrong-type": {"CI_TOOLKIT_MIRROR_REQUIRED": "perhaps"},
    "global-config-missing": {"CI_TOOLKIT_GLOBAL_CONFIG": "/nonexistent/ci-toolkit.yaml"},
}


@pytest.mark.parametrize(("case", "files", "argv", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_error_line(
    tmp_path: Path, case: str, files: dict[str, str], argv: list[str], fragment: str
) -> None:
    for name, text in files.items():
        if case == "unreadable-file":
            (tmp_path / name).write_bytes(b"\xff\xfe\x00bad")
            os.chmod(tmp_path / name, 0o644)
        else:
            (tmp_path / name).write_text(text)
    result = run_cli(argv, env=ENV_FOR.get(case, {}), cwd=tmp_path)
    assert result.code == 2, result.err
    assert len(result.error_lines) == 1, result.err
    assert fragment in result.error_lines[0]
    assert "Traceback" not in result.err
    assert result.out == ""
