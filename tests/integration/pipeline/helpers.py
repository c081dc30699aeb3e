"""Shared pieces of the pipeline integration tests: a copy of an example with a unique build
number, running the real CLI, and removing the images the run created."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers import REPO, CliResult, run_cli_process

EXAMPLES = REPO / "examples" / "pipelines"


@dataclass
class Project:
    dir: Path
    cache_root: Path
    build_number: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")
    created: set[str] = field(default_factory=set)

    @property
    def build_tag(self) -> str:
        return self.build_number  # no git in a temp dir: BUILD_TAG is the build number

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 900) -> CliResult:
        env = {"BUILD_NUMBER": self.build_number, "CI_TOOLKIT_CACHE_ROOT": str(self.cache_root), **(env or {})}
        result = run_cli_process(["pipeline", *args], env=env, cwd=self.dir, timeout=timeout)
        artifacts = self.dir / "artifacts.json"
        if artifacts.is_file():
            for step in json.loads(artifacts.read_text())["steps"].values():
                self.created.update(ref.split("@")[0] for ref in step.get("refs", []))
        return result

    def artifacts(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.dir / "artifacts.json").read_text())["steps"]
        return data

    def remove_images(self) -> None:
        """Every image tagged with this run's unique build tag, and every ref the runs reported."""
        listed = subprocess.run(
            ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True, text=True
        ).stdout.split()
        refs = self.created | {ref for ref in listed if ref.endswith(f":{self.build_tag}")}
        if refs:
            subprocess.run(["docker", "image", "rm", "--force", *sorted(refs)], capture_output=True)


def copy_example(name: str, tmp_path: Path, text: str | None = None) -> Project:
    target = tmp_path / name
    if text is None:
        shutil.copytree(EXAMPLES / name, target)
    else:
        target.mkdir()
        (target / "ci-toolkit.yaml").write_text(text)
    return Project(dir=target, cache_root=tmp_path / "cache")


def index_platforms(ref: str) -> list[str]:
    """Platforms of the index in the registry (attestations left out), read with skopeo."""
    name, _, digest = ref.partition("@")
    if digest:
        # skopeo takes repo@digest, not repo:tag@digest
        ref = f"{name.rsplit(':', 1)[0] if '/' not in name.rsplit(':', 1)[-1] else name}@{digest}"
    out = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
        capture_output=True,
        text=True,
        check=True,
    )
    index = json.loads(out.stdout)
    platforms = []
    for manifest in index.get("manifests", []):
        p = manifest.get("platform", {})
        if p.get("os") != "unknown":
            platforms.append(f"{p['os']}/{p['architecture']}")
    return sorted(platforms)


def run_arm64(image: str, script: str) -> str:
    out = subprocess.run(
        ["docker", "run", "--rm", "--platform", "linux/arm64", "--entrypoint", "sh", image, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout
