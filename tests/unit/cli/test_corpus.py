"""The bad-input and bad-environment corpus, in-process (no engine needed): every case exits
with its documented code, prints exactly one `error:` line, no traceback, and is classified
where it happens: none reaches the last-resort handler (``error: internal error: ...``).

Cases that need the engine or a registry live in tests/integration/cli/test_corpus.py."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import run_cli

INPUT, FAILED, MISSING = 2, 1, 3

STEP_OK = "steps:\n  a:\n    build:\n      dockerfile-inline: 'FROM busybox'\n"


@dataclass(frozen=True)
class Case:
    id: str
    argv: list[str]
    code: int
    fragment: str
    files: dict[str, str | bytes] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None


def _steps(body: str) -> dict[str, str | bytes]:
    return {"ci-toolkit.yaml": "steps:\n" + body}


def _git(head: bytes, ref: bytes | None = None, extra: dict[str, bytes] | None = None) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        git = root / ".git"
        (git / "refs" / "heads").mkdir(parents=True)
        (git / "HEAD").write_bytes(head)
        if ref is not None:
            (git / "refs" / "heads" / "main").write_bytes(ref)
        for name, content in (extra or {}).items():
            if content == b"<dir>":
                (git / name).mkdir()
            else:
                (git / name).write_bytes(content)

    return make


def _cache_entry(key_bytes: bytes) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        entry = root / "c" / "k"
        entry.mkdir(parents=True)
        (entry / "lock").write_text("")
        (entry / "key").write_bytes(key_bytes)

    return make


CASES = [
    # --- configuration: project file ------------------------------------------------------
    Case(
        "yaml-inf-int",
        ["config", "show"],
        INPUT,
        "expects an integer",
        {"ci-toolkit.yaml": "buildkit-max-parallelism: .inf\n"},
    ),
    Case(
        "yaml-nan-int",
        ["config", "show"],
        INPUT,
        "expects an integer",
        {"ci-toolkit.yaml": "buildkit-max-parallelism: .nan\n"},
    ),
    Case(
        "yaml-float-int",
        ["config", "show"],
        INPUT,
        "expects an integer",
        {"ci-toolkit.yaml": "buildkit-max-parallelism: 2.5\n"},
    ),
    Case(
        "yaml-deep-list",
        ["config", "show"],
        INPUT,
        "nested too deeply",
        {"ci-toolkit.yaml": "builder: " + "[" * 3000 + "]" * 3000 + "\n"},
    ),
    Case(
        "yaml-deep-map",
        ["config", "show"],
        INPUT,
        "ci-toolkit.yaml",
        {"ci-toolkit.yaml": "builder: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n"},
    ),
    Case("yaml-tabs", ["config", "show"], INPUT, "invalid YAML", {"ci-toolkit.yaml": "builder:\n\t- x\n"}),
    Case(
        "yaml-python-tag",
        ["config", "show"],
        INPUT,
        "invalid YAML",
        {"ci-toolkit.yaml": "builder: !!python/object:os.system x\n"},
    ),
    Case(
        "yaml-duplicate-anchor-missing",
        ["config", "show"],
        INPUT,
        "invalid YAML",
        {"ci-toolkit.yaml": "builder: *nothing\n"},
    ),
    Case("yaml-int-key", ["config", "show"], INPUT, "unknown key", {"ci-toolkit.yaml": "1: x\n"}),
    Case("yaml-list-key", ["config", "show"], INPUT, "invalid YAML", {"ci-toolkit.yaml": "? [a]\n: x\n"}),
    Case("yaml-nul-byte", ["config", "show"], INPUT, "ci-toolkit.yaml", {"ci-toolkit.yaml": b"builder: a\x00b\n"}),
    Case("yaml-latin1", ["config", "show"], INPUT, "not UTF-8", {"ci-toolkit.yaml": b"builder: caf\xe9\n"}),
    Case("yaml-bool-str", ["config", "show"], INPUT, "expects a string", {"ci-toolkit.yaml": "builder: true\n"}),
    Case(
        "yaml-null-list", ["config", "show"], INPUT, "list of strings", {"ci-toolkit.yaml": "insecure-registries: 5\n"}
    ),
    Case(
        "yaml-bool-list",
        ["config", "show"],
        INPUT,
        "list of strings",
        {"ci-toolkit.yaml": "insecure-registries: [true]\n"},
    ),
    Case("yaml-maplist-scalar", ["config", "show"], INPUT, "mapping of lists", {"ci-toolkit.yaml": "mirrors: 5\n"}),
    Case(
        "yaml-maplist-nested",
        ["config", "show"],
        INPUT,
        "mapping of lists",
        {"ci-toolkit.yaml": "mirrors: {docker.io: [{a: 1}]}\n"},
    ),
    Case(
        "yaml-map-nested",
        ["config", "show"],
        INPUT,
        "mapping of strings",
        {"ci-toolkit.yaml": "container-labels: {a: {b: c}}\n"},
    ),
    Case("yaml-choice-int", ["config", "show"], INPUT, "must be one of", {"ci-toolkit.yaml": "pull-policy: 3\n"}),
    Case("yaml-dir", ["--config", "d.yaml", "config", "show"], INPUT, "d.yaml", setup=lambda r: (r / "d.yaml").mkdir()),
    Case("template-div-zero", ["config", "show"], INPUT, "template", {"ci-toolkit.yaml": "builder: '{{ 1 // 0 }}'\n"}),
    Case(
        "template-type-error",
        ["config", "show"],
        INPUT,
        "template",
        {"ci-toolkit.yaml": "builder: '{{ \"a\" + 1 }}'\n"},
    ),
    Case(
        "template-unsafe-attr",
        ["config", "show"],
        INPUT,
        "template",
        {"ci-toolkit.yaml": "builder: '{{ env.__class__.__mro__ }}'\n"},
    ),
    Case(
        "template-unknown-filter",
        ["config", "show"],
        INPUT,
        "template",
        {"ci-toolkit.yaml": "builder: '{{ 1 | nosuchfilter }}'\n"},
    ),
    Case(
        "template-deep",
        ["config", "show"],
        INPUT,
        "template",
        {"ci-toolkit.yaml": "builder: '" + "{% if true %}" * 400 + "x" + "{% endif %}" * 400 + "'\n"},
    ),
    Case(
        "template-undefined-step-attr",
        ["config", "show"],
        INPUT,
        "steps.a.nope",
        {"ci-toolkit.yaml": "builder: '{{ steps.a.nope }}'\n"},
    ),
    Case("config-flag-dir", ["--config", ".", "config", "show"], INPUT, "config file not found"),
    Case("config-flag-nul", ["--config", "a\x00b", "config", "show"], INPUT, "config"),
    # --- configuration: global file -----------------------------------------------------------
    Case(
        "global-bad-yaml",
        ["config", "show"],
        INPUT,
        "invalid YAML",
        {"g.yaml": "a: [\n"},
        env={"CI_TOOLKIT_GLOBAL_CONFIG": "g.yaml"},
    ),
    Case(
        "global-not-utf8",
        ["config", "show"],
        INPUT,
        "not UTF-8",
        {"g.yaml": b"\xff\xfe"},
        env={"CI_TOOLKIT_GLOBAL_CONFIG": "g.yaml"},
    ),
    Case(
        "global-steps-unknown",
        ["config", "show"],
        INPUT,
        "unknown key",
        {"g.yaml": "bogus: 1\n"},
        env={"CI_TOOLKIT_GLOBAL_CONFIG": "g.yaml"},
    ),
    Case(
        "global-wrong-type",
        ["config", "show"],
        INPUT,
        "true or false",
        {"g.yaml": "mirror-required: 7\n"},
        env={"CI_TOOLKIT_GLOBAL_CONFIG": "g.yaml"},
    ),
    Case(
        "global-is-list",
        ["config", "show"],
        INPUT,
        "expected a mapping",
        {"g.yaml": "[1]\n"},
        env={"CI_TOOLKIT_GLOBAL_CONFIG": "g.yaml"},
    ),
    Case(
        "global-home-bad",
        ["config", "show"],
        INPUT,
        "invalid YAML",
        {"home/.ci-toolkit.yaml": "a: {\n"},
        env={"HOME": "home"},
    ),
    # --- .env files ---------------------------------------------------------------------------
    Case("dotenv-latin1", ["config", "show"], INPUT, "not UTF-8", {".env": b"A=caf\xe9\n"}),
    Case(
        "dotenv-bad-setting",
        ["config", "show"],
        INPUT,
        "CI_TOOLKIT_PULL_POLICY",
        {".env": "CI_TOOLKIT_PULL_POLICY=sometimes\n"},
    ),
    Case(
        "dotenv-bad-int",
        ["config", "show"],
        INPUT,
        "expects an integer",
        {".env": "CI_TOOLKIT_BUILDKIT_MAX_PARALLELISM=1e999\n"},
    ),
    Case("dotenv-dir", ["--env-file", "d", "config", "show"], INPUT, "cannot read", setup=lambda r: (r / "d").mkdir()),
    Case("dotenv-unterminated", ["config", "show"], INPUT, "malformed .env line", {".env": "A='open\n"}),
    # --- environment ---------------------------------------------------------------------------
    Case("env-bad-bool", ["config", "show"], INPUT, "true or false", env={"CI_TOOLKIT_BUILD_NUMBER_LABEL": "sure"}),
    Case(
        "env-bad-int",
        ["config", "show"],
        INPUT,
        "expects an integer",
        env={"CI_TOOLKIT_BUILDKIT_MAX_PARALLELISM": "many"},
    ),
    Case(
        "env-bad-map", ["config", "show"], INPUT, "mapping of strings", env={"CI_TOOLKIT_CONTAINER_LABELS": "novalue"}
    ),
    Case("env-bad-maplist", ["config", "show"], INPUT, "mapping of lists", env={"CI_TOOLKIT_MIRRORS": "[unclosed"}),
    Case("env-bad-choice", ["config", "show"], INPUT, "must be one of", env={"CI_TOOLKIT_CACHE_BACKEND": "s3"}),
    Case(
        "env-global-dir", ["config", "show"], INPUT, "CI_TOOLKIT_GLOBAL_CONFIG", env={"CI_TOOLKIT_GLOBAL_CONFIG": "/"}
    ),
    # --- command line ---------------------------------------------------------------------------
    Case("set-empty-key", ["--set", "=x", "config", "show"], INPUT, "--set expects KEY=VALUE"),
    Case("set-bad-int", ["--set", "buildkit-max-parallelism=9e9999", "config", "show"], INPUT, "expects an integer"),
    Case("set-huge-int-ok-but-list", ["--set", "mirrors=5", "config", "show"], INPUT, "mapping of lists"),
    Case("global-option-value-missing", ["--config"], INPUT, "expected one argument"),
    Case("version-extra", ["version", "extra"], INPUT, "unrecognized arguments"),
    Case("cache-unknown-action", ["cache", "shrink"], INPUT, "invalid choice"),
    Case("mirror-unknown-action", ["mirror", "mirror"], INPUT, "invalid choice"),
    Case("pipeline-unknown-action", ["pipeline", "go"], INPUT, "invalid choice"),
    # --- git metadata files ---------------------------------------------------------------------
    # A damaged .git never stops a command: the job's sha is then unknown.
    # (exit 0 cases are in test_git_metadata_never_fails below)
    # --- durations and sizes -------------------------------------------------------------------
    Case("prune-size-words", ["cache", "prune", "--cache-root", "c", "--max-size", "lots"], INPUT, "not a size"),
    Case("prune-size-huge", ["cache", "prune", "--cache-root", "c", "--max-size", "9" * 40 + "T"], INPUT, "too large"),
    Case(
        "prune-size-negative",
        ["cache", "prune", "--cache-root", "c", "--max-size", "-1G"],
        INPUT,
        "expected one argument",
    ),
    Case("prune-age-words", ["cache", "prune", "--cache-root", "c", "--max-age", "forever"], INPUT, "not a duration"),
    Case("prune-age-huge", ["cache", "prune", "--cache-root", "c", "--max-age", "9" * 400], INPUT, "not a duration"),
    Case(
        "prune-age-negative",
        ["cache", "prune", "--cache-root", "c", "--max-age", "-5m"],
        INPUT,
        "expected one argument",
    ),
    Case("prune-grace-unit", ["cache", "prune", "--cache-root", "c", "--grace", "5 parsecs"], INPUT, "not a duration"),
    Case(
        "prune-size-setting",
        ["cache", "prune", "--cache-root", "c"],
        INPUT,
        "not a size",
        env={"CI_TOOLKIT_CACHE_MAX_SIZE": "big"},
    ),
    Case(
        "prune-age-setting",
        ["cache", "prune", "--cache-root", "c"],
        INPUT,
        "not a duration",
        env={"CI_TOOLKIT_CACHE_MAX_AGE": "old"},
    ),
    Case("run-timeout-zero", ["--dry-run", "run", "busybox", "--timeout", "0s", "--", "true"], INPUT, "not a duration"),
    Case("run-timeout-words", ["--dry-run", "run", "--timeout", "soon", "busybox"], INPUT, "not a duration"),
    Case("run-service-timeout", ["--dry-run", "run", "--service-timeout", "1y", "busybox"], INPUT, "not a duration"),
    Case("sweep-older-than", ["sweep", "--stale", "--older-than", "ages"], INPUT, "not a duration"),
    Case(
        "mirror-timeout-setting",
        ["mirror", "registry"],
        INPUT,
        "mirror-timeout",
        env={"CI_TOOLKIT_MIRROR_TIMEOUT": "0s", "CI_TOOLKIT_DOCKER_REGISTRY": "127.0.0.1:9"},
    ),
    Case("stop-grace-words", ["config", "show"], INPUT, "stop-grace", env={"CI_TOOLKIT_STOP_GRACE": "soon"}),
    Case("stop-grace-huge", ["--set", "stop-grace=" + "9" * 400, "version"], INPUT, "stop-grace"),
    # --- cache roots and keys -------------------------------------------------------------------
    Case("cache-root-nouser", ["cache", "ls", "--cache-root", "~nosuchuser-ci-toolkit/c"], INPUT, "nosuchuser"),
    Case("cache-root-nul", ["cache", "ls", "--cache-root", "a\x00b"], INPUT, "NUL"),
    Case(
        "cache-root-setting-nouser",
        ["cache", "prune"],
        INPUT,
        "nosuchuser",
        env={"CI_TOOLKIT_CACHE_ROOT": "~nosuchuser-ci-toolkit/c"},
    ),
    Case("prune-root-is-file", ["cache", "prune", "--cache-root", "f"], INPUT, "not a directory", {"f": "x"}),
    Case("ls-root-is-file", ["cache", "ls", "--cache-root", "f"], INPUT, "not a directory", {"f": "x"}),
    Case("build-key-slash", ["--dry-run", "build", "--cache-key", "../../etc", "-t", "x/y:1"], INPUT, "key"),
    Case("build-key-empty-chars", ["--dry-run", "build", "--cache-key", "a b", "-t", "x/y:1"], INPUT, "key"),
    Case("build-key-long", ["--dry-run", "build", "--cache-key", "k" * 300, "-t", "x/y:1"], INPUT, "key"),
    Case("build-key-nul", ["--dry-run", "build", "--cache-key", "a\x00", "-t", "x/y:1"], INPUT, "key"),
    # --- references ---------------------------------------------------------------------------------
    Case("rewrite-upper", ["mirror", "rewrite", "UPPER/case"], INPUT, "lowercase"),
    Case("rewrite-port-huge", ["mirror", "rewrite", "host:99999999/a"], INPUT, "port"),
    Case("rewrite-port-zero", ["mirror", "rewrite", "host:0/a"], INPUT, "port"),
    Case("rewrite-empty-component", ["mirror", "rewrite", "host:5000//a"], INPUT, "empty component"),
    Case("rewrite-trailing-slash", ["mirror", "rewrite", "a/"], INPUT, "empty component"),
    Case("rewrite-long-tag", ["mirror", "rewrite", "a:" + "t" * 129], INPUT, "128"),
    Case("rewrite-long-name", ["mirror", "rewrite", "a/" + "b" * 260], INPUT, "255"),
    Case("rewrite-bad-digest", ["mirror", "rewrite", "a@sha256:abc"], INPUT, "digest"),
    Case("rewrite-image-id", ["mirror", "rewrite", "a" * 64], INPUT, "image id"),
    Case("rewrite-space", ["mirror", "rewrite", " a"], INPUT, "whitespace"),
    Case("rewrite-unicode", ["mirror", "rewrite", "bü/x"], INPUT, "invalid"),
    Case("rewrite-host-dash", ["mirror", "rewrite", "ho_st.example/x"], INPUT, "registry host"),
    Case("build-tag-upper", ["--dry-run", "build", "-t", "a/B:1"], INPUT, "lowercase", {"Dockerfile": "FROM x"}),
    Case("build-tag-port", ["--dry-run", "build", "-t", "h:70000/x:1"], INPUT, "port", {"Dockerfile": "FROM x"}),
    Case("build-tag-empty", ["--dry-run", "build", "-t", ""], INPUT, "image reference", {"Dockerfile": "FROM x"}),
    Case("promote-no-tag", ["promote", "127.0.0.1:5000/a", "--tag", "latest"], INPUT, "needs a tag or a digest"),
    Case("promote-bad-tag", ["promote", "127.0.0.1:5000/a:1", "--tag", "-bad"], INPUT, "tag"),
    Case("promote-upper", ["promote", "127.0.0.1:5000/A:1", "--tag", "latest"], INPUT, "lowercase"),
    Case("promote-port", ["promote", "127.0.0.1:65536/a:1", "--tag", "latest"], INPUT, "port"),
    Case("promote-to-bad", ["promote", "127.0.0.1:5000/a:1", "--tag", "l", "--to", "B//c"], INPUT, "invalid"),
    Case("run-image-upper", ["--dry-run", "run", "BusyBox"], INPUT, "lowercase"),
    Case("run-service-bad", ["--dry-run", "run", "--service", "Redis:7", "busybox"], INPUT, "Redis"),
    Case(
        "mirror-setting-bad",
        ["mirror", "rewrite", "busybox"],
        INPUT,
        "invalid mirror",
        env={"CI_TOOLKIT_MIRRORS": "{docker.io: ['bad host']}"},
    ),
    Case(
        "build-registry-bad",
        ["pipeline", "validate"],
        INPUT,
        "build-registry",
        {"ci-toolkit.yaml": "build-registry: 'Bad Host'\n" + STEP_OK},
    ),
    # --- labels ---------------------------------------------------------------------------------------
    Case("run-labels-novalue", ["--dry-run", "run", "--container-labels", "a", "busybox"], INPUT, "KEY=VALUE"),
    Case("run-labels-emptykey", ["--dry-run", "run", "--container-labels", "=v", "busybox"], INPUT, "KEY=VALUE"),
    Case("sweep-label-novalue", ["sweep", "--job-id", "x", "--label", "novalue"], INPUT, "KEY=VALUE"),
    Case("build-label-bad", ["--dry-run", "build", "--label", "=x", "-t", "a/b:1"], INPUT, "label"),
    Case("build-arg-bad", ["--dry-run", "build", "--build-arg", "=x", "-t", "a/b:1"], INPUT, "build-arg"),
    Case(
        "setting-labels-bad",
        ["--dry-run", "run", "busybox"],
        INPUT,
        "container-labels",
        env={"CI_TOOLKIT_CONTAINER_LABELS": ",=,"},
    ),
    # --- run arguments (docker run's grammar) ------------------------------------------------------
    Case(
        "run-late-bad-policy", ["run", "busybox", "--pull-policy", "sometimes", "--", "true"], INPUT, "invalid choice"
    ),
    Case("run-late-unknown", ["run", "busybox", "--bogus", "--", "true"], INPUT, "unrecognized arguments"),
    Case("run-late-missing-value", ["run", "busybox", "--service", "--", "true"], INPUT, "expected one argument"),
    Case("run-volume-bad", ["--dry-run", "run", "--volume", "nodst", "busybox"], INPUT, "--volume"),
    Case(
        "run-volume-nouser",
        ["--dry-run", "run", "--volume", "~nosuchuser-ci-toolkit/x:/x", "busybox"],
        INPUT,
        "nosuchuser",
    ),
    Case("run-volume-mode", ["--dry-run", "run", "--volume", "/a:/b:rx", "busybox"], INPUT, "ro or rw"),
    Case("run-tmpfs-relative", ["--dry-run", "run", "--tmpfs", "rel", "busybox"], INPUT, "absolute"),
    Case("run-env-space", ["--dry-run", "run", "--env", "A B=1", "busybox"], INPUT, "K=V"),
    Case(
        "run-secret-missing",
        ["--dry-run", "run", "--secret-env", "NO_SUCH_VAR_X", "busybox"],
        INPUT,
        "no such variable",
    ),
    Case("run-no-image", ["run"], INPUT, "required"),
    Case("run-empty-image", ["--dry-run", "run", ""], INPUT, "image"),
    # --- mirror render / files ------------------------------------------------------------------------
    Case(
        "render-missing-dir",
        ["mirror", "render", "--format", "buildkitd", "-o", "missing-dir/x"],
        INPUT,
        "cannot write",
    ),
    Case("render-output-dir", ["mirror", "render", "--format", "buildkitd", "-o", "."], INPUT, "cannot write"),
    Case(
        "render-merge-latin1",
        ["mirror", "render", "--format", "daemon-json", "--merge", "d.json"],
        INPUT,
        "not UTF-8",
        {"d.json": b'{"a": "\xe9"}'},
    ),
    Case(
        "render-merge-insecure-int",
        ["mirror", "render", "--format", "daemon-json", "--merge", "d.json"],
        INPUT,
        "insecure-registries",
        {"d.json": '{"insecure-registries": 5}'},
    ),
    Case(
        "render-merge-insecure-mixed",
        ["mirror", "render", "--format", "daemon-json", "--merge", "d.json"],
        INPUT,
        "insecure-registries",
        {"d.json": '{"insecure-registries": ["a", 1]}'},
    ),
    Case(
        "render-merge-deep",
        ["mirror", "render", "--format", "daemon-json", "--merge", "d.json"],
        INPUT,
        "JSON",
        {"d.json": "[" * 100000 + "]" * 100000},
    ),
    Case(
        "render-merge-list",
        ["mirror", "render", "--format", "daemon-json", "--merge", "d.json"],
        INPUT,
        "JSON object",
        {"d.json": "[]"},
    ),
    Case(
        "render-merge-bad",
        ["mirror", "render", "--format", "daemon-json", "--merge", "d.json"],
        INPUT,
        "not valid JSON",
        {"d.json": "{"},
    ),
    Case(
        "render-merge-wrong-format",
        ["mirror", "render", "--format", "buildkitd", "--merge", "d.json"],
        INPUT,
        "--merge",
    ),
    Case("render-bad-format", ["mirror", "render", "--format", "xml"], INPUT, "invalid choice"),
    Case(
        "render-bad-registry",
        ["mirror", "render", "--format", "containerd-hosts", "--registry", "Bad Host"],
        INPUT,
        "registry",
    ),
    Case(
        "render-keypair-bad",
        ["mirror", "render", "--format", "buildkitd"],
        INPUT,
        "CERT_FILE:KEY_FILE",
        env={"CI_TOOLKIT_REGISTRY_KEYPAIRS": "{h: [nocolon]}"},
    ),
    Case(
        "prune-output-env",
        ["cache", "prune", "--cache-root", "c"],
        INPUT,
        "step outputs",
        env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": "no/such/dir/out"},
    ),
    Case(
        "metadata-parent-missing",
        ["--dry-run", "build", "--metadata-file", "x", "-t", "a/b:1", "-f", "nope"],
        INPUT,
        "nope",
    ),
    # --- setup-builder ----------------------------------------------------------------------------------
    Case("builder-bad-name", ["--dry-run", "setup-builder", "--name", "a b"], INPUT, "invalid builder name"),
    Case("builder-remote-no-endpoint", ["--dry-run", "setup-builder", "--driver", "remote"], INPUT, "--endpoint"),
    Case("builder-bad-driver", ["setup-builder", "--driver", "qemu"], INPUT, "invalid choice"),
    # --- pipeline steps ------------------------------------------------------------------------------------
    Case("steps-not-map", ["pipeline", "validate"], INPUT, "steps", {"ci-toolkit.yaml": "steps: [a]\n"}),
    Case("steps-empty", ["pipeline", "validate"], INPUT, "steps", {"ci-toolkit.yaml": "steps: {}\n"}),
    Case("step-unknown-key", ["pipeline", "validate"], INPUT, "steps.a", _steps("  a:\n    biuld: {}\n")),
    Case(
        "step-cycle",
        ["pipeline", "validate"],
        INPUT,
        "cycle",
        _steps(
            "  a:\n    depends: [b]\n    build: {dockerfile-inline: 'FROM x'}\n"
            "  b:\n    depends: [a]\n    build: {dockerfile-inline: 'FROM x'}\n"
        ),
    ),
    Case(
        "step-unknown-dep",
        ["pipeline", "validate"],
        INPUT,
        "c",
        _steps("  a:\n    depends: [c]\n    build: {dockerfile-inline: 'FROM x'}\n"),
    ),
    Case(
        "step-bad-platform",
        ["pipeline", "validate"],
        INPUT,
        "platform",
        _steps("  a:\n    build: {dockerfile-inline: 'FROM x', platforms: ['linux']}\n"),
    ),
    Case(
        "step-bad-push",
        ["pipeline", "validate"],
        INPUT,
        "push",
        _steps("  a:\n    build: {dockerfile-inline: 'FROM x'}\n    push: 'UP/per'\n"),
    ),
    Case(
        "step-ref-unknown",
        ["pipeline", "validate"],
        INPUT,
        "zzz",
        _steps("  a:\n    build: {dockerfile-inline: 'FROM {{ steps.zzz.image }}'}\n"),
    ),
    Case("step-run-no-image", ["pipeline", "validate"], INPUT, "image", _steps("  a:\n    run: {cmd: 'true'}\n")),
    Case(
        "step-name-bad",
        ["pipeline", "validate"],
        INPUT,
        "steps",
        _steps("  'a b':\n    build: {dockerfile-inline: 'FROM x'}\n"),
    ),
    Case(
        "step-deep",
        ["pipeline", "validate"],
        INPUT,
        "ci-toolkit.yaml",
        _steps("  a: " + "[" * 3000 + "]" * 3000 + "\n"),
    ),
    Case(
        "promote-unknown-step",
        ["pipeline", "validate"],
        INPUT,
        "promote",
        {"ci-toolkit.yaml": STEP_OK + "promote:\n  zz: [latest]\n"},
    ),
    Case(
        "pipeline-promote-bad-tag",
        ["pipeline", "validate"],
        INPUT,
        "promote",
        {"ci-toolkit.yaml": STEP_OK + "promote:\n  a: ['-x']\n"},
    ),
    Case("pipeline-no-file", ["pipeline", "validate"], INPUT, "ci-toolkit.yaml"),
    Case("pipeline-unknown-step-arg", ["pipeline", "plan", "nosuch"], INPUT, "nosuch", {"ci-toolkit.yaml": STEP_OK}),
    Case(
        "pipeline-run-timeout",
        ["pipeline", "validate"],
        INPUT,
        "timeout",
        _steps("  a:\n    run: {image: busybox, cmd: 'true', timeout: 'soon'}\n"),
    ),
    # --- expand-args ------------------------------------------------------------------------------------------
    Case("expand-unclosed-quote", ["expand-args", "--a 'b"], INPUT, "quote"),
    Case("expand-command-subst", ["expand-args", "$(id)"], INPUT, "$("),
    Case("expand-env-unclosed", ["expand-args"], INPUT, "quote", env={"CI_IMAGE_BUILD_EXTRA_ARGS": '"x'}),
    # --- merge, meta, doctor -------------------------------------------------------------------
    Case("merge-bad-repo", ["merge", "UP/per", "--digest", "sha256:" + "a" * 64, "--tag", "t"], INPUT, "lowercase"),
    Case("merge-bad-digest", ["merge", "h:5000/r", "--digest", "sha256:xyz", "--tag", "t"], INPUT, "digest"),
    Case("merge-missing-dir", ["merge", "h:5000/r", "--digest-dir", "nope", "--tag", "t"], INPUT, "nope"),
    Case("merge-bad-tag", ["merge", "h:5000/r", "--digest", "sha256:" + "a" * 64, "--tag", "-x"], INPUT, "tag"),
    Case("meta-bad-label", ["meta", "--image", "a/b", "--label", "novalue"], INPUT, "label"),
    Case("doctor-bad-flag", ["doctor", "--bogus"], INPUT, "unrecognized arguments"),
    Case("retries-negative", ["promote", "h:5000/a:1", "--tag", "l", "--retries", "-1"], INPUT, "--retries"),
    Case(
        "retry-max-wait-bad",
        ["promote", "h:5000/a:1", "--tag", "l"],
        INPUT,
        "retry-max-wait",
        env={"CI_TOOLKIT_RETRY_MAX_WAIT": "forever"},
    ),
    Case("cache-required-bad", ["config", "show"], INPUT, "true or false", env={"CI_TOOLKIT_CACHE_REQUIRED": "maybe"}),
    # --- names the system refuses (ENAMETOOLONG) -----------------------------------------------
    Case("long-config", ["--config", "a" * 300, "config", "show"], INPUT, "name too long"),
    Case("long-env-file", ["--env-file", "a" * 300, "config", "show"], INPUT, "too long"),
    Case("long-cache-root-ls", ["cache", "ls", "--cache-root", "a" * 300], INPUT, "name too long"),
    Case("long-cache-root-prune", ["cache", "prune", "--cache-root", "a" * 300], INPUT, "name too long"),
    Case("long-dockerfile", ["--dry-run", "build", "-f", "a" * 300, "-t", "a/b:1"], INPUT, "name too long"),
    Case("long-context", ["--dry-run", "build", "a" * 300, "-t", "a/b:1"], INPUT, "name too long"),
    Case("long-render-output", ["mirror", "render", "--format", "buildkitd", "-o", "a" * 300], INPUT, "too long"),
    Case("long-pipeline-config", ["pipeline", "validate", "--config", "a" * 300], INPUT, "name too long"),
    Case("long-digest-dir", ["merge", "h:5000/r", "--digest-dir", "a" * 300, "--tag", "t"], INPUT, "name too long"),
    Case("promote-timeout-nan", ["promote", "h:5000/a:1", "--tag", "l", "--timeout", "nan"], INPUT, "--timeout"),
    Case("promote-timeout-inf", ["promote", "h:5000/a:1", "--tag", "l", "--timeout", "inf"], INPUT, "--timeout"),
    # --- sweep ----------------------------------------------------------------------------------------------------
    Case("sweep-nothing", ["sweep"], INPUT, "nothing selected"),
    # --- cwd ------------------------------------------------------------------------------------------------------
    Case("build-context-missing", ["--dry-run", "build", "nosuchdir", "-t", "a/b:1"], INPUT, "nosuchdir"),
    Case("build-dockerfile-dir", ["--dry-run", "build", "-f", ".", "-t", "a/b:1"], INPUT, "Dockerfile"),
    Case("build-push-load", ["--dry-run", "build", "--push", "--load", "-t", "a/b:1"], INPUT, "not allowed with"),
    Case("build-platform-bad", ["--dry-run", "build", "--platform", "linux/", "-t", "a/b:1"], INPUT, "platform"),
    Case("build-secret-bad", ["--dry-run", "build", "--secret", "id=", "-t", "a/b:1"], INPUT, "secret"),
    Case(
        "build-context-arg-bad",
        ["--dry-run", "build", "--build-context", "novalue", "-t", "a/b:1"],
        INPUT,
        "build-context",
    ),
    Case(
        "build-extra-args-bad",
        ["--dry-run", "build", "--extra-args", "--output type=tar'", "-t", "a/b:1"],
        INPUT,
        "quote",
    ),
]


def _prepare(tmp_path: Path, case: Case) -> dict[str, str]:
    for name, content in case.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    if case.setup is not None:
        case.setup(tmp_path)
    env = {"HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "xdg"), "TMPDIR": str(tmp_path)}
    for key, value in case.env.items():
        relative = key in ("CI_TOOLKIT_GLOBAL_CONFIG", "HOME") and value and not value.startswith("/")
        env[key] = str(tmp_path / value) if relative else value
    return env


def assert_classified(code: int, err: str, out: str, expected: int, fragment: str) -> None:
    error_lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert "Traceback" not in err, err
    assert not any(ln.startswith("error: internal error") for ln in error_lines), err
    assert len(error_lines) == 1, err
    assert fragment.lower() in error_lines[0].lower(), err
    assert code == expected, err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corpus(tmp_path: Path, case: Case) -> None:
    env = _prepare(tmp_path, case)
    result = run_cli(case.argv, env=env, cwd=tmp_path)
    assert_classified(result.code, result.err, result.out, case.code, case.fragment)


def test_corpus_is_large_and_ids_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES)
    assert len(CASES) >= 120


GIT_DAMAGE = {
    "head-latin1": _git(b"ref: refs/heads/m\xe9in\n"),
    "ref-latin1": _git(b"ref: refs/heads/main\n", b"\xff\xfe" * 20),
    "head-binary": _git(b"\x00\x01\x02"),
    "head-escape": _git(b"ref: ../../../../etc/passwd\n"),
    "ref-is-dir": _git(b"ref: refs/heads/main\n", extra={"refs/heads/main": b"<dir>"}),
    "gitfile-latin1": lambda r: (r / ".git").write_bytes(b"gitdir: \xff\xfe\n"),
    "commondir-latin1": _git(b"ref: refs/heads/x\n", extra={"commondir": b"\xff"}),
    "packed-latin1": _git(b"ref: refs/heads/x\n", extra={"packed-refs": b"\xff x\n"}),
}


@pytest.mark.parametrize("damage", GIT_DAMAGE, ids=list(GIT_DAMAGE))
def test_git_metadata_never_fails(tmp_path: Path, damage: str) -> None:
    GIT_DAMAGE[damage](tmp_path)
    result = run_cli(["config", "show"], env={"HOME": str(tmp_path)}, cwd=tmp_path)
    assert result.code == 0, result.err
    assert "Traceback" not in result.err


def test_unreadable_key_file_is_listed(tmp_path: Path) -> None:
    _cache_entry(b"\xff\xfe")(tmp_path)
    result = run_cli(["cache", "ls", "--cache-root", "c", "--json"], env={"HOME": str(tmp_path)}, cwd=tmp_path)
    assert result.code == 0, result.err
    assert '"dir": "k"' in result.out


def test_a_mode_000_project_file_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "ci-toolkit.yaml"
    path.write_text("builder: x\n")
    path.chmod(0)
    try:
        result = run_cli(["config", "show"], env={"HOME": str(tmp_path)}, cwd=tmp_path)
    finally:
        path.chmod(0o644)
    if os.geteuid() == 0:  # root reads it anyway
        assert result.code == 0
    else:
        assert_classified(result.code, result.err, result.out, INPUT, "permission denied")
