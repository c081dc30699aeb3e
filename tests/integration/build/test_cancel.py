"""A cancel means stop: SIGTERM during `build --push` stops buildx (its whole process group),
the toolkit exits 143, and nothing is pushed after it exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

REGISTRY = "127.0.0.1:5000"


def _buildx_processes(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and "buildx" in cmdline:
            found.append(int(entry.name))
    return found


def _manifest_status(repo: str, tag: str) -> int:
    request = urllib.request.Request(f"http://{REGISTRY}/v2/{repo}/manifests/{tag}", method="HEAD")
    request.add_header("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_sigterm_during_build_push_stops_buildx_and_exits_143(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex[:12]
    repo = f"ci-toolkit-tests/cancel-{marker}"
    # The sleep is the slow step; the marker makes its cache key (and our process search) unique.
    (tmp_path / "Dockerfile").write_text(f"FROM busybox\nRUN echo {marker} && sleep 30\n")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "ci_toolkit", "build", str(tmp_path), "--push",
            "-t", f"{REGISTRY}/{repo}:{marker}", "--cache-backend", "none",
            "--set", "stop-grace=5s",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "CI": ""},
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not _buildx_processes(marker):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "buildx never started"
            time.sleep(0.2)
        time.sleep(3)  # well inside the RUN step
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert _buildx_processes(marker) == [], "a buildx process survived the cancel"
    time.sleep(35)  # longer than the step would have taken: a build left running would push by now
    assert _manifest_status(repo, marker) == 404, "something was pushed after the exit"
