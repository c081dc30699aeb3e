"""The README's reference is generated from the parser and the settings schema, and matches
them; the quick starts use only inputs and jobs that exist."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import yaml

from ci_toolkit import reference
from ci_toolkit.cli import build_parser
from ci_toolkit.core.settings import SETTING_FIELDS, env_name

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def _block(text: str, name: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    assert text.count(start) == 1 and text.count(end) == 1, f"README needs one {name} block"
    return text[text.index(start) + len(start) : text.index(end)]


def _leaf_commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [words]
    return [leaf for name, sub in subs[0].choices.items() for leaf in _leaf_commands(sub, (*words, name))]


def test_readme_reference_is_current() -> None:
    text = README.read_text()
    assert _block(text, "reference") == "\n" + reference.render(), "run scripts/gen-reference"


def test_reference_names_every_command_option_and_setting() -> None:
    rendered = reference.render()
    parser = build_parser()
    for words in _leaf_commands(parser):
        assert f"#### `ci-toolkit {' '.join(words)}`" in rendered
    for action in parser._actions:
        for flag in action.option_strings:
            if flag not in ("-h", "--help"):
                assert f"`{flag}" in rendered or f", {flag}" in rendered, flag
    for key in SETTING_FIELDS:
        assert f"| `{key}` | `{env_name(key)}` |" in rendered


def test_reference_lists_a_new_option_and_escapes_table_cells() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    extra = sub.add_parser("zz-extra", help="an extra command")
    extra.add_argument("--pick", choices=("x", "y"), default="x", help="choose")
    extra.add_argument("--many", action="append", default=[], metavar="V")
    extra.add_argument("--sep", help="a|b")
    extra.add_argument("thing", nargs="?", help="the thing")
    rendered = reference.render(parser)
    assert "#### `ci-toolkit zz-extra`" in rendered
    assert "ci-toolkit zz-extra [--pick PICK] [--many V ...] [--sep SEP] [THING]" in rendered
    assert "| `--pick PICK` | choose; one of `x`, `y`; default: `x` |" in rendered
    assert "| `--many V` | repeatable |" in rendered
    assert "| `--sep SEP` | a\\|b |" in rendered


def test_update_block_replaces_only_the_block() -> None:
    text = "intro\n<!-- reference:start -->\nold\n<!-- reference:end -->\noutro\n"
    assert (
        reference.update_block(text, "new\n") == "intro\n<!-- reference:start -->\nnew\n<!-- reference:end -->\noutro\n"
    )
    with pytest.raises(ValueError):
        reference.update_block("no markers", "x")


def test_check_mode_reports_a_stale_readme_and_changes_nothing(tmp_path: Path) -> None:
    stale = tmp_path / "README.md"
    stale.write_text("# x\n<!-- reference:start -->\nold\n<!-- reference:end -->\n")
    before = stale.read_text()
    assert reference.main(["--readme", str(stale), "--check"]) == 1
    assert stale.read_text() == before
    assert reference.main(["--readme", str(stale)]) == 0
    assert reference.main(["--readme", str(stale), "--check"]) == 0
    missing = tmp_path / "OTHER.md"
    missing.write_text("no block\n")
    assert reference.main(["--readme", str(missing)]) == 2


def _yaml_blocks(markdown: str) -> list[object]:
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", markdown, re.S)]


def test_quick_starts_use_existing_action_inputs_and_component_inputs() -> None:
    quick = _block(README.read_text(), "quickstart")
    inputs = set(yaml.safe_load((REPO / "action.yml").read_text())["inputs"])
    github, gitlab = _yaml_blocks(quick)
    assert isinstance(github, dict) and isinstance(gitlab, dict)
    action_steps = [s for job in github["jobs"].values() for s in job["steps"] if "ci-toolkit@" in s.get("uses", "")]
    assert len(action_steps) == 3
    for step in action_steps:
        assert set(step["with"]) <= inputs
    includes = [i["component"] for i in gitlab["include"]]
    assert includes
    for include in includes:
        name, _, version = include.rsplit("/", 1)[1].partition("@")
        spec = next(yaml.safe_load_all((REPO / "templates" / name / "template.yml").read_text()))["spec"]
        assert version == spec["inputs"]["version"]["default"], include
        given = next(i.get("inputs", {}) for i in gitlab["include"] if i["component"] == include)
        assert set(given) <= set(spec["inputs"]), include
    documented = quick.split("Inputs:", 1)[1].split("Outputs:", 1)[0]
    for name in inputs:
        assert f"`{name}`" in documented, f"the quick start does not list the input {name!r}"
