"""The labels on everything the toolkit creates (containers, networks, volumes), and the
owner identity they record so that a later sweep can tell a live job from an orphan.

An owner is (host-id, pid, pid-start): the pid alone is not enough because pids are
recycled, so the kernel's start time of the process is recorded next to it. host-id covers
the machine *and* the pid namespace, because a pid only means something inside its own
namespace (a toolkit running in a job container sees different pids than the host)."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ci_toolkit.core.errors import ToolkitError

MANAGED = "managed"
JOB_ID = "job-id"
CI = "ci"
RUN_ID = "run-id"
HOST_ID = "host-id"
PID = "pid"
PID_START = "pid-start"
CREATED = "created"
STEP = "step"
ROLE = "role"
KEYS = (MANAGED, JOB_ID, CI, RUN_ID, HOST_ID, PID, PID_START, CREATED, STEP, ROLE)
ROLES = ("build", "service", "run", "registry")

_PROC = Path("/proc")


@dataclass(frozen=True, kw_only=True)
class Owner:
    host_id: str
    pid: int
    pid_start: str


@dataclass(frozen=True, kw_only=True)
class LabelContext:
    """Everything the labels need, resolved once per process from settings and the CI."""

    prefix: str
    job_id: str
    ci: str
    run_id: str
    owner: Owner
    user_labels: Mapping[str, str]

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def labels(self, *, role: str, step: str = "") -> dict[str, str]:
        """The full label set for one resource; user labels never override ours."""
        ours = {
            MANAGED: "true",
            JOB_ID: self.job_id,
            CI: self.ci,
            RUN_ID: self.run_id,
            HOST_ID: self.owner.host_id,
            PID: str(self.owner.pid),
            PID_START: self.owner.pid_start,
            CREATED: format_time(datetime.now(timezone.utc)),
            STEP: step,
            ROLE: role,
        }
        return {**self.user_labels, **{self.key(k): v for k, v in ours.items()}}

    @property
    def managed_filter(self) -> str:
        return f"{self.key(MANAGED)}=true"


def label_context(
    *, prefix: str, job_id: str, ci: str, run_id: str, user_labels: Mapping[str, str], pid: int | None = None
) -> LabelContext:
    prefix = prefix.strip().rstrip(".")
    if not prefix:
        raise ToolkitError.bad_input("setting 'label-prefix' must not be empty")
    check_user_labels(user_labels, prefix)
    return LabelContext(
        prefix=prefix,
        job_id=job_id,
        ci=ci,
        run_id=run_id,
        owner=current_owner(pid),
        user_labels=dict(user_labels),
    )


def check_user_labels(user_labels: Mapping[str, str], prefix: str) -> None:
    for key in user_labels:
        if not key or any(c.isspace() for c in key):
            raise ToolkitError.bad_input(f"container label key {key!r} is not valid")
        if key.startswith(f"{prefix}."):
            # Letting a user label set `<prefix>.managed` would let config opt anything into sweeps.
            raise ToolkitError.bad_input(f"container label {key!r} uses the reserved prefix {prefix!r}")


def current_owner(pid: int | None = None) -> Owner:
    pid = os.getpid() if pid is None else pid
    return Owner(host_id=host_id(), pid=pid, pid_start=process_start(pid) or "")


def host_id() -> str:
    """A stable id for (machine, pid namespace); hashed so the machine id is not published."""
    machine = ""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            machine = Path(path).read_text().strip()
        except OSError:
            continue
        if machine:
            break
    if not machine:
        machine = socket.gethostname()
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return hashlib.sha256(f"{machine}\n{namespace}".encode()).hexdigest()[:16]


def process_start(pid: int, proc: Path = _PROC) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or
    None when no such live process exists. Zombies count as gone: they own nothing any more."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = text[text.rfind(")") + 2 :].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def owner_alive(pid: int, pid_start: str, proc: Path = _PROC) -> bool:
    start = process_start(pid, proc)
    return start is not None and (not pid_start or start == pid_start)


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
