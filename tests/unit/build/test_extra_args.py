"""CI_IMAGE_BUILD_EXTRA_ARGS: tokenizing, expansion, and refusal of anything a shell would run."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ci_toolkit.build.extra_args import expand, host_access
from ci_toolkit.core.errors import EXIT_INPUT, ToolkitError

ENV = {"CONTAINER_NAME": "ci_native_asan", "EMPTY": "", "SPACED": "a b  c", "DOLLAR": "$HOME"}


def test_seed_value_expands_container_name() -> None:
    text = (
        "--cache-to type=local,dest=/cache/docker/${CONTAINER_NAME},mode=max "
        "--cache-from type=local,src=/cache/docker/$CONTAINER_NAME"
    )
    assert expand(text, ENV) == [
        "--cache-to",
        "type=local,dest=/cache/docker/ci_native_asan,mode=max",
        "--cache-from",
        "type=local,src=/cache/docker/ci_native_asan",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("  \n\t ", []),
        ("a 'b c' \"d e\"", ["a", "b c", "d e"]),
        ("'$CONTAINER_NAME'", ["$CONTAINER_NAME"]),
        ('"$CONTAINER_NAME"', ["ci_native_asan"]),
        ("$SPACED", ["a b  c"]),  # an expansion never splits an argument
        ("x$SPACED", ["xa b  c"]),
        ("$EMPTY", []),  # an unquoted empty expansion is no argument, as in a shell
        ('"$EMPTY"', [""]),
        ("''", [""]),
        ("$$ \\$ '$'", ["$", "$", "$"]),
        ("$DOLLAR", ["$HOME"]),  # values are not expanded again
        ("${NOPE:-dflt} ${NOPE-d2} ${EMPTY:-e} ${EMPTY-f}x", ["dflt", "d2", "e", "x"]),
        ("${NOPE:-${CONTAINER_NAME}}", ["ci_native_asan"]),
        ("a\\ b c\\\\d", ["a b", "c\\d"]),
        ('"a\\"b" "c\\d"', ['a"b', "c\\d"]),
        ("--label=a=b", ["--label=a=b"]),
        ("$ a$", ["$", "a$"]),
        ("a\\\nb", ["ab"]),
    ],
)
def test_expansion(text: str, expected: list[str]) -> None:
    assert expand(text, ENV) == expected


MALFORMED = [
    ("'unbalanced", "unbalanced single quote"),
    ('"unbalanced', "unbalanced double quote"),
    ("$(rm -rf /)", "never executed"),
    ('"$(rm -rf /)"', "never executed"),
    ("`rm -rf /`", "backticks"),
    ('"`id`"', "backticks"),
    ("a; rm -rf /", "operator ';'"),
    ("a | b", "operator '|'"),
    ("a && b", "operator '&'"),
    ("a > /tmp/x", "operator '>'"),
    ("a < /etc/passwd", "operator '<'"),
    ("(a)", "operator '('"),
    ("$UNDEFINED_VAR", "undefined variable UNDEFINED_VAR"),
    ("${UNDEFINED_VAR}", "undefined variable UNDEFINED_VAR"),
    ("${", "must be followed by a variable name"),
    ("${CONTAINER_NAME", "unterminated"),
    ("${A:-x", "unterminated"),
    ("${A:=x}", "unsupported expansion"),
    ("${#A}", "variable name"),
    ("$1", "not supported"),
    ("a\\", "trailing backslash"),
    ("a\0b", "NUL"),
    ("x" * 10_000, "at most"),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_malformed_is_input_error(text: str, message: str) -> None:
    with pytest.raises(ToolkitError) as info:
        expand(text, ENV, source="CI_IMAGE_BUILD_EXTRA_ARGS")
    assert info.value.exit_code == EXIT_INPUT
    assert message in info.value.message
    assert info.value.message.startswith("CI_IMAGE_BUILD_EXTRA_ARGS:")
    assert "\n" not in info.value.message


@settings(max_examples=600, deadline=None)
@given(st.lists(st.sampled_from([*"ab $'\"\\`{}:-;|&()<>_\n\t#=,/", "${", "$(", "\0"]), max_size=40).map("".join))
def test_any_input_gives_strings_or_input_error(text: str) -> None:
    try:
        result = expand(text, {"a": "x y", "b": ""})
    except ToolkitError as exc:
        assert exc.exit_code == EXIT_INPUT
        return
    assert isinstance(result, list)
    assert all(isinstance(tok, str) for tok in result)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_unicode_input_gives_strings_or_input_error(text: str) -> None:
    try:
        result = expand(text, {})
    except ToolkitError as exc:
        assert exc.exit_code == EXIT_INPUT
        return
    assert all(isinstance(tok, str) for tok in result)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\0"), max_size=20), max_size=6))
def test_single_quoted_words_round_trip(words: list[str]) -> None:
    """Quoting each word the shell's way gives the words back: the tokenizer is POSIX."""
    import shlex

    assert expand(" ".join(shlex.quote(w) for w in words), {}) == words


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (["--output", "type=local,dest=out"], ["--output type=local,dest=out"]),
        (["-o", "./dist"], ["-o ./dist"]),
        (["--output=type=tar,dest=img.tar"], ["--output type=tar,dest=img.tar"]),
        (["--output", "type=registry"], []),
        (["--output", "type=docker"], []),
        (["--output", "-"], []),
        (["--secret", "id=a,src=/root/.npmrc", "--secret", "id=b,env=TOKEN"], ["--secret id=a,src=/root/.npmrc"]),
        (["--allow", "security.insecure"], ["--allow security.insecure"]),
        (["--allow=network.host"], ["--allow network.host"]),
        (["--ssh", "default", "--pull", "--build-arg", "A=--ssh"], ["--ssh default"]),
    ],
)
def test_flags_that_reach_the_host_are_named(tokens: list[str], expected: list[str]) -> None:
    assert host_access(tokens) == expected
