"""`run:` steps run a command in a container of an earlier step's image (through the
containers module), and `promote:` moves floating tags only once every step succeeded."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from pathlib import Path

from tests.integration.pipeline.helpers import copy_example


def _text(repo: str, marker: str, check: str) -> str:
    return f"""build-registry: 127.0.0.1:5000
steps:
  image:
    build:
      dockerfile: |
        FROM busybox
        RUN echo {marker} > /marker.txt
    push: {repo}
  check:
    run:
      image: "{{{{ steps.image.image }}}}"
      cmds:
        - {check}
        - echo checked > /workspace/checked.txt
promote:
  image: [stable]
"""


def _digest(ref: str) -> str:
    out = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"], capture_output=True, check=False
    )
    if out.returncode != 0:
        return ""
    return "sha256:" + hashlib.sha256(out.stdout).hexdigest()


def test_run_step_uses_the_built_image_then_promote(tmp_path: Path) -> None:
    repo = f"127.0.0.1:5000/ci-toolkit-tests/pipeline-{uuid.uuid4().hex[:10]}"
    marker = uuid.uuid4().hex
    proj = copy_example("run-steps", tmp_path, _text(repo, marker, f"grep -q {marker} /marker.txt"))
    try:
        result = proj.run("run", "--push")
        assert result.code == 0, result.err[-3000:]
        steps = proj.artifacts()
        assert steps["check"]["status"] == "ok"
        assert (proj.dir / "checked.txt").read_text().strip() == "checked"
        assert _digest(f"{repo}:stable") == steps["image"]["digest"]
        data = json.loads((proj.dir / "artifacts.json").read_text())
        assert data["promote"][0]["step"] == "image"
    finally:
        proj.remove_images()


def test_failed_run_step_fails_the_pipeline_and_nothing_is_promoted(tmp_path: Path) -> None:
    repo = f"127.0.0.1:5000/ci-toolkit-tests/pipeline-{uuid.uuid4().hex[:10]}"
    proj = copy_example("run-steps", tmp_path, _text(repo, uuid.uuid4().hex, "exit 7"))
    try:
        result = proj.run("run", "--push")
        assert result.code == 1
        steps = proj.artifacts()
        assert steps["image"]["status"] == "ok"
        assert steps["check"]["status"] == "failed" and "exited with 7" in steps["check"]["reason"]
        assert _digest(f"{repo}:stable") == ""
    finally:
        proj.remove_images()
