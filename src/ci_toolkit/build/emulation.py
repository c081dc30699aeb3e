"""Emulation for foreign platforms: which ones this host can run, and enabling the missing
ones the way setup-qemu-action does, with the host's own packages.

A platform runs when it is native or when the kernel's binfmt_misc has an enabled QEMU
handler for it. ``enable`` uses Debian's ``update-binfmts`` with the handlers that
``qemu-user-static`` ships (installing the packages with apt-get when they are missing), or,
where only the interpreters exist, registers them with binfmt_misc directly. Root only.
"""

from __future__ import annotations

import os
import platform as host_platform
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from ci_toolkit.core import proc
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.report import Reporter

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMTS = Path("/usr/share/binfmts")
DEFAULT = ("linux/arm64", "linux/amd64")
QEMU = {
    "linux/amd64": "x86_64",
    "linux/386": "i386",
    "linux/arm64": "aarch64",
    "linux/arm64/v8": "aarch64",
    "linux/arm/v7": "arm",
    "linux/arm/v6": "arm",
    "linux/ppc64le": "ppc64le",
    "linux/s390x": "s390x",
    "linux/riscv64": "riscv64",
    "linux/mips64le": "mips64el",
}
_NATIVE = {"x86_64": ("linux/amd64", "linux/386"), "aarch64": ("linux/arm64", "linux/arm64/v8")}


def hint(platforms: Iterable[str]) -> str:
    return f"ci-toolkit setup-builder --emulation {','.join(platforms)}"


def handler(platform: str) -> str:
    if platform not in QEMU:
        raise ToolkitError.bad_input(f"no QEMU emulation known for {platform} (known: {', '.join(sorted(QEMU))})")
    return f"qemu-{QEMU[platform]}"


def runnable(platform: str, binfmt_dir: Path = BINFMT_DIR, machine: str = "") -> bool:
    if platform in _NATIVE.get(machine or host_platform.machine(), ()):
        return True
    entry = binfmt_dir / handler(platform)
    try:
        return entry.read_text(errors="replace").startswith("enabled")
    except OSError:
        return False


def missing(platforms: Sequence[str], binfmt_dir: Path = BINFMT_DIR, machine: str = "") -> list[str]:
    """The requested platforms this host can neither run natively nor emulate."""
    return [p for p in dict.fromkeys(platforms) if p in QEMU and not runnable(p, binfmt_dir, machine)]


def explain(output: str, platforms: Sequence[str]) -> ToolkitError | None:
    """BuildKit's "exec format error" when a requested platform has no emulation here: exit 3
    with the command that enables it, instead of the RUN step's failure."""
    if "exec format error" not in output:
        return None
    requested = [p for item in platforms for p in item.split(",") if p]
    gone = missing(requested)
    if not gone:
        return None
    return ToolkitError.missing(f"no emulation for {', '.join(gone)} on this host: run {hint(gone)}")


def enable(platforms: Sequence[str], reporter: Reporter, *, dry_run: bool) -> list[str]:
    """Enable a binfmt handler for each platform that lacks one; returns the ones enabled."""
    todo = missing(platforms)
    if not todo:
        reporter.info(f"emulation ready for {', '.join(platforms)}")
        return []
    if not dry_run and os.geteuid() != 0:
        raise ToolkitError.missing(f"enabling emulation for {', '.join(todo)} needs root: run {hint(todo)} as root")
    names = list(dict.fromkeys(handler(p) for p in todo))
    if not all((BINFMTS / n).is_file() for n in names) and shutil.which("apt-get"):
        argv = ["apt-get", "install", "-y", "--no-install-recommends", "qemu-user-static", "binfmt-support"]
        proc.run(argv, reporter, dry_run=dry_run, echo=True, what="apt-get install", exit_code=3)
    _mount(reporter, dry_run)
    for name in names:
        _register(name, reporter, dry_run)
    if not dry_run and missing(todo):
        raise ToolkitError.missing(f"emulation for {', '.join(missing(todo))} is still not enabled")
    return todo


def _mount(reporter: Reporter, dry_run: bool) -> None:
    if (BINFMT_DIR / "register").exists():
        return
    argv = ["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)]
    proc.run(argv, reporter, dry_run=dry_run, echo=True, what="mount binfmt_misc", exit_code=3)


def _register(name: str, reporter: Reporter, dry_run: bool) -> None:
    spec = BINFMTS / name
    if shutil.which("update-binfmts") and spec.is_file():
        # Debian's own route: it knows the handler's magic, mask and flags.
        proc.run(["update-binfmts", "--enable", name], reporter, dry_run=dry_run, echo=True, exit_code=3)
        return
    if not spec.is_file():
        raise ToolkitError.missing(
            f"no {name} handler on this host: install qemu-user-static (Debian/Ubuntu) and run this again"
        )
    fields = dict(line.split(" ", 1) for line in spec.read_text().splitlines() if " " in line)
    flags = "F" + ("P" if fields.get("preserve") == "yes" else "") + ("C" if fields.get("credentials") == "yes" else "")
    line = f":{name}:M:{fields.get('offset', '0')}:{fields['magic']}:{fields['mask']}:{fields['interpreter']}:{flags}"
    reporter.echo_command(f"echo {line} > {BINFMT_DIR / 'register'}")
    if not dry_run:
        (BINFMT_DIR / "register").write_text(line)
