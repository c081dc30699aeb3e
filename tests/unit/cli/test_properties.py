"""Property: whatever YAML document or template string a project file holds, `config show`
and `pipeline validate` exit 0 or 2 with at most one `error:` line, never a traceback and
never the last-resort handler."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ci_toolkit.core.settings import setting_keys
from tests.helpers import run_cli

KEYS = [*setting_keys(), "steps", "promote", "build", "run", "push", "depends", "dockerfile", "dockerfile-inline",
        "platforms", "tags", "image", "cmd", "services", "path", "target", "build-args", "labels"]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["linux/amd64", "busybox", "127.0.0.1:5000/a", "FROM busybox\n", "{{ BUILD_TAG }}", "a:b:c"]),
)
KEY = st.one_of(st.sampled_from(KEYS), st.text(max_size=12))
DOCS = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(KEY, children, max_size=5)),
    max_leaves=25,
)
PIECES = st.sampled_from([
    "{{", "}}", "{%", "%}", "{#", "#}", " if ", " for x in ", "endif", "endfor", " env.HOME ", " BUILD_TAG ",
    " steps.a.image ", " steps ", "|upper", "|nosuch", " 1/0 ", " () ", " [] ", "'", '"', ":", "\n", "  ", "- ",
    "builder: ", "steps:", "  a:", "    build:", "      dockerfile-inline: ", "FROM x", "__class__", "range(9)",
])  # fmt: skip
TEMPLATES = st.lists(st.one_of(PIECES, st.text(max_size=5)), max_size=25).map("".join)


def _check(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        (cwd / "ci-toolkit.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
        for argv in (["config", "show"], ["pipeline", "validate"]):
            result = run_cli(argv, env={"HOME": tmp}, cwd=cwd)
            assert "Traceback" not in result.err, result.err
            assert not any(ln.startswith("error: internal error") for ln in result.error_lines), result.err
            assert result.code in (0, 2), result.err
            assert len(result.error_lines) <= 1, result.err


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCS.map(_dump))
def test_generated_yaml_documents(text: str) -> None:
    _check(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEMPLATES)
def test_generated_template_strings(text: str) -> None:
    _check(text)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["steps", "promote", "builder"]), DOCS, min_size=1).map(_dump))
def test_generated_pipeline_sections(text: str) -> None:
    _check(text)
