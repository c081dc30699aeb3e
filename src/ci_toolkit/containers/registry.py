"""A temporary registry for one pipeline run, on loopback, as buildrunner starts one.

It is a labelled container (role ``registry``) published on ``127.0.0.1:<free port>``; it is
removed when the run ends, on a signal too, and a job killed outright leaves it for
``ci-toolkit sweep`` like any other orphan. The image is ``registry:2`` unless the
``temporary-registry-image`` setting names another (pulled through the engine's mirrors when
missing).

Public entry: ``temporary_registry(settings, ci, reporter)``, a context manager that yields
the registry's ``host:port``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from ci_toolkit.containers import cleanup
from ci_toolkit.containers.run import connect, label_context_for
from ci_toolkit.core.ci import CIContext
from ci_toolkit.core.errors import ToolkitError
from ci_toolkit.core.report import Reporter
from ci_toolkit.core.settings import Settings

STARTUP_SECONDS = 30.0


@contextlib.contextmanager
def temporary_registry(settings: Settings, ci: CIContext, reporter: Reporter) -> Iterator[str]:
    ctx = label_context_for(settings, ci)
    client = connect()
    image = settings.temporary_registry_image
    with cleanup.Session(reporter, prefix=ctx.prefix) as session:
        name = session.name("registry")
        session.containers.append(name)
        container = _start(client, image, name, ctx.labels(role="registry"), reporter)
        port = _published_port(container)
        started = time.monotonic()
        _wait_for_api(port, container, name)
        address = f"127.0.0.1:{port}"
        reporter.info(f"temporary registry {address} ({name}, up in {time.monotonic() - started:.1f}s)")
        try:
            yield address
        finally:
            _forget_local_names(client, address, reporter)


def _start(client: Any, image: str, name: str, labels: dict[str, str], reporter: Reporter) -> Any:
    import docker

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        reporter.info(f"pulling {image} for the temporary registry")
        try:
            client.images.pull(image)
        except docker.errors.APIError as exc:
            raise ToolkitError.missing(
                f"cannot pull {image} for the temporary registry ({exc.explanation or exc}): "
                "set build-registry, or temporary-registry-image to an image the engine can pull"
            ) from exc
    try:
        return client.containers.run(
            image,
            name=name,
            detach=True,
            labels=labels,
            ports={"5000/tcp": ("127.0.0.1", None)},
            environment={"REGISTRY_STORAGE_DELETE_ENABLED": "true"},
        )
    except docker.errors.APIError as exc:
        raise ToolkitError.failed(f"cannot start the temporary registry: {exc.explanation or exc}") from exc


def _wait_for_api(port: int, container: Any, name: str) -> None:
    """Until ``GET /v2/`` answers: the published port accepts connections (docker-proxy)
    before the registry inside listens, and a push sent then hangs until its timeout."""
    import http.client

    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/v2/")
            if conn.getresponse().status == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        if not _running(container):
            raise ToolkitError.failed(f"the temporary registry {name} exited: docker logs {name}")
        if time.monotonic() >= deadline:
            raise ToolkitError.failed(f"the temporary registry {name} did not answer within {STARTUP_SECONDS:g}s")
        time.sleep(0.1)


def _forget_local_names(client: Any, address: str, reporter: Reporter) -> None:
    """An engine with the containerd store keeps what it pushed under the registry's name;
    those names point at a registry that is gone: untag them (the layers stay if used)."""
    import docker

    try:
        names = [t for image in client.images.list() for t in image.tags if t.startswith(f"{address}/")]
        for name in names:
            client.images.remove(name, noprune=False)
    except docker.errors.DockerException as exc:
        reporter.debug(f"could not untag images of the temporary registry {address}: {exc}")


def _published_port(container: Any) -> int:
    container.reload()
    bindings = (container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get("5000/tcp") or []
    if not bindings:
        raise ToolkitError.failed("the temporary registry published no port")
    return int(bindings[0]["HostPort"])


def _running(container: Any) -> bool:
    container.reload()
    return bool(container.status == "running")
