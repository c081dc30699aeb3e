"""Image references and registry hosts: the Docker reference grammar (distribution/reference),
normalisation (implied ``docker.io``, ``library/`` and ``latest``) and the rewrite of a
reference to a mirror."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ci_toolkit.core.errors import ToolkitError

DOCKER_HUB = "docker.io"
# Names Docker accepts for Docker Hub and normalises to docker.io.
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_RE = re.compile(_DOMAIN)
_TAG_RE = re.compile(_TAG)
_DIGEST_RE = re.compile(_DIGEST)
_HEX64_RE = re.compile(r"[a-f0-9]{64}")


@dataclass(frozen=True)
class Reference:
    """A normalised reference: ``domain/path[:tag][@digest]``. ``tag`` is ``latest`` when
    neither a tag nor a digest was given."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def repository(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def is_docker_hub(self) -> bool:
        return self.domain == DOCKER_HUB

    def __str__(self) -> str:
        return self.repository + self._version

    @property
    def familiar(self) -> str:
        """The short form Docker prints: ``busybox:latest`` for docker.io/library/busybox."""
        name = self.path.removeprefix("library/") if self.is_docker_hub else self.repository
        return name + self._version

    @property
    def _version(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    @property
    def manifest_ref(self) -> str:
        """What to ask a registry's manifests endpoint for: the digest when pinned."""
        return self.digest or self.tag or DEFAULT_TAG


def _invalid(text: str, why: str) -> ToolkitError:
    return ToolkitError.bad_input(f"invalid image reference {text!r}: {why}")


def _split_domain(name: str) -> tuple[str, str]:
    """Docker's rule: the first component is a registry host when it contains '.' or ':',
    is 'localhost', or has uppercase letters (a path component never does)."""
    first, sep, rest = name.partition("/")
    if sep and (any(c in first for c in ".:") or first == "localhost" or first != first.lower()):
        return first, rest
    return DOCKER_HUB, name


def _host_port(domain: str) -> tuple[str, str]:
    """``host:5000`` -> (host, "5000"); ``[::1]:5000`` -> ([::1], "5000"); no port -> ""."""
    if domain.endswith("]") or ":" not in domain:
        return domain, ""
    host, _, port = domain.rpartition(":")
    return host, port


def _check_domain(text: str, domain: str) -> None:
    """What the engine needs to reach a host: the grammar, a port in 1-65535, DNS label
    limits. A first component that is a host only because it has capitals (``UPPER/case``)
    is refused: the engine would look up a host named UPPER, which is never what was meant."""
    if not _DOMAIN_RE.fullmatch(domain):
        raise _invalid(text, f"{domain!r} is not a valid registry host")
    if not any(c in domain for c in ".:[") and domain != "localhost":
        raise _invalid(text, "repository name must be lowercase (a registry host needs a '.' or a ':PORT')")
    host, port = _host_port(domain)
    if port and not 1 <= int(port) <= 65535:
        raise _invalid(text, f"port {port} is out of range (1-65535)")
    if len(host) > 253 or any(len(label) > 63 for label in host.split(".")):
        raise _invalid(text, "the registry host name is too long (63 per label, 253 in all)")


def parse_reference(text: str) -> Reference:
    """Parse and normalise ``text``; an invalid reference is bad input (exit 2)."""
    if not text or text != text.strip():
        raise _invalid(text, "empty or surrounded by whitespace")
    if _HEX64_RE.fullmatch(text):
        raise _invalid(text, "a 64-character hexadecimal string is an image id, not a reference")
    name, _, digest = text.partition("@")
    if digest and not _DIGEST_RE.fullmatch(digest):
        raise _invalid(text, "the digest must be ALGORITHM:HEX (e.g. sha256:<64 hex>)")
    if digest.startswith("sha256:") and not _HEX64_RE.fullmatch(digest[7:]):
        raise _invalid(text, "a sha256 digest has exactly 64 lowercase hex characters")
    tag = ""
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG_RE.fullmatch(tag):
            why = "a tag has at most 128 characters" if len(tag) > 128 else "the tag has invalid characters"
            raise _invalid(text, f"{why} ([A-Za-z0-9_.-], not starting with '.' or '-')")
    if not name:
        raise _invalid(text, "no repository name")
    domain, path = _split_domain(name)
    if domain != DOCKER_HUB:
        _check_domain(text, domain)
    if path != path.lower() and _PATH_RE.fullmatch(path.lower()):
        raise _invalid(text, "repository name must be lowercase")
    if not _PATH_RE.fullmatch(path):
        raise _invalid(text, "the repository name has invalid characters or an empty component")
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise _invalid(text, f"the repository name is longer than {NAME_TOTAL_LENGTH_MAX} characters")
    if domain in _HUB_ALIASES:
        domain = DOCKER_HUB
    if domain == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if not tag and not digest:
        tag = DEFAULT_TAG
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


def normalize(text: str) -> str:
    return str(parse_reference(text))


def valid_tag(tag: str) -> bool:
    return bool(_TAG_RE.fullmatch(tag))


def has_explicit_version(text: str) -> bool:
    """Whether ``text`` names a tag or a digest itself (``latest`` was not implied)."""
    return "@" in text or ":" in text.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class MirrorHost:
    """A mirror as written in the settings: ``host[:port][/path/prefix]``, optionally with an
    ``http://`` or ``https://`` scheme."""

    host: str
    prefix: str = ""
    scheme: str = ""

    @property
    def address(self) -> str:
        """``host/prefix``: what a reference is rewritten to."""
        return f"{self.host}/{self.prefix}" if self.prefix else self.host

    def __str__(self) -> str:
        return f"{self.scheme}://{self.address}" if self.scheme else self.address


def parse_mirror(text: str) -> MirrorHost:
    value = text.strip()
    scheme = ""
    for candidate in ("http", "https"):
        if value.startswith(f"{candidate}://"):
            scheme, value = candidate, value[len(candidate) + 3 :]
    host, _, prefix = value.strip("/").partition("/")
    prefix = prefix.strip("/")
    if not is_registry_host(host) or (prefix and not _PATH_RE.fullmatch(prefix)):
        raise ToolkitError.bad_input(
            f"invalid mirror {text!r}: expected HOST[:PORT][/PATH] (e.g. mirror.example:5000 or "
            "harbor.example.com/dockerhub-proxy)"
        )
    return MirrorHost(host=host, prefix=prefix, scheme=scheme)


def rewrite_to_mirror(ref: Reference, mirror: MirrorHost) -> Reference:
    """``docker.io/library/busybox:latest`` -> ``<mirror>[/prefix]/library/busybox:latest``."""
    path = f"{mirror.prefix}/{ref.path}" if mirror.prefix else ref.path
    return Reference(domain=mirror.host, path=path, tag=ref.tag, digest=ref.digest)


def is_registry_host(text: str) -> bool:
    """``host[:port]`` as the engine takes it (the port in 1-65535)."""
    port = _host_port(text)[1]
    return bool(_DOMAIN_RE.fullmatch(text)) and (not port or 1 <= int(port) <= 65535)


def is_loopback_host(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") is False else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    import ipaddress  # here: only a registry host's check needs it, not a command's start

    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def registry_base_url(host: str, insecure: Iterable[str] = ()) -> str:
    """``http://`` for loopback and registries marked insecure, else ``https://``.
    A value that already carries a scheme is kept as given."""
    if host.startswith(("http://", "https://")):
        return host.rstrip("/")
    scheme = "http" if is_loopback_host(host) or host in set(insecure) else "https"
    return f"{scheme}://{host.rstrip('/')}"
