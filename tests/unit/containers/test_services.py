"""Service hostnames and --service parsing (rules from seed 004)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ci_toolkit.containers.services import (
    ServiceSpec,
    first_tcp_port,
    image_aliases,
    parse_service,
    parse_services,
    service_aliases,
    service_entry,
)
from ci_toolkit.core.errors import ToolkitError


@pytest.mark.parametrize(
    ("image", "aliases"),
    [
        ("tutum/wordpress:latest", ["tutum__wordpress", "tutum-wordpress"]),
        (
            "registry.alloy-wp.com:4999/tutum/wordpress",
            ["registry.alloy-wp.com__tutum__wordpress", "registry.alloy-wp.com-tutum-wordpress"],
        ),
        ("mysql:latest", ["mysql"]),
        ("postgres:9.3", ["postgres"]),
        ("localhost:5000/team/db:1@sha256:" + "a" * 64, ["localhost__team__db", "localhost-team-db"]),
    ],
)
def test_seed_alias_rules(image: str, aliases: list[str]) -> None:
    assert image_aliases(image) == aliases


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("postgres:9.3", ServiceSpec(image="postgres:9.3")),
        ("postgres", ServiceSpec(image="postgres")),
        ("postgres:9.3:db", ServiceSpec(image="postgres:9.3", alias="db")),
        ("postgres::db", ServiceSpec(image="postgres", alias="db")),
        ("127.0.0.1:5000/x/y:2:cache", ServiceSpec(image="127.0.0.1:5000/x/y:2", alias="cache")),
        ("127.0.0.1:5000/x/y", ServiceSpec(image="127.0.0.1:5000/x/y")),
        ("y@sha256:abc:db", ServiceSpec(image="y@sha256:abc", alias="db")),
    ],
)
def test_parse_service(text: str, spec: ServiceSpec) -> None:
    assert parse_service(text) == spec


@pytest.mark.parametrize("text", ["", "x/", "a:b:c:d", "x::-bad", "x::a b"])
def test_parse_service_rejects(text: str) -> None:
    with pytest.raises(ToolkitError) as info:
        parse_service(text)
    assert info.value.exit_code == 2


def test_explicit_alias_added_once() -> None:
    assert service_aliases(ServiceSpec(image="tutum/wordpress:latest", alias="wp")) == [
        "tutum__wordpress",
        "tutum-wordpress",
        "wp",
    ]
    assert service_aliases(ServiceSpec(image="redis", alias="redis")) == ["redis"]


def test_first_exposed_tcp_port_is_the_lowest_tcp_one() -> None:
    assert first_tcp_port({"9090/tcp": {}, "53/udp": {}, "8080/tcp": {}}) == 8080
    assert first_tcp_port({"53/udp": {}}) is None
    assert first_tcp_port(None) is None


def test_gitlab_service_mapping(tmp_path: Path) -> None:
    spec = service_entry(
        {
            "name": "registry.example:5000/tutum/wordpress:latest",
            "alias": "wp, blog",
            "entrypoint": ["/bin/sh", "-c"],
            "command": "run",
            "variables": {"A": 1, "B": True, "C": None},
            "pull_policy": ["if-not-present", "always"],
            "wait_for": [80, {"port": 443}],
        },
        "test",
    )
    assert spec.image == "registry.example:5000/tutum/wordpress:latest"
    assert spec.aliases == ("wp", "blog") and spec.alias == "wp"
    assert spec.entrypoint == ("/bin/sh", "-c") and spec.command == ("run",)
    assert spec.variables == {"A": "1", "B": "true", "C": ""}
    assert spec.pull_policy == "if-not-present" and spec.wait_for == (80, 443)
    assert service_aliases(spec) == [
        "registry.example__tutum__wordpress",
        "registry.example-tutum-wordpress",
        "wp",
        "blog",
    ]


def test_service_values_from_a_file_and_inline(tmp_path: Path) -> None:
    (tmp_path / "svc.yml").write_text("- postgres:16:db\n- {image: redis, aliases: [cache]}\n")
    specs = parse_services("svc.yml", tmp_path)
    assert [(s.image, s.alias) for s in specs] == [("postgres:16", "db"), ("redis", "cache")]
    assert parse_services('{"name": "redis", "alias": "kv"}', tmp_path)[0].aliases == ("kv",)
    assert parse_services("redis:7:kv", tmp_path)[0].alias == "kv"


@pytest.mark.parametrize(
    "item",
    [
        {"alias": "x"},
        {"name": "a", "image": "b"},
        {"name": "a", "ports": [1]},
        {"name": "a", "alias": "bad_host!"},
        {"name": "a", "pull_policy": "sometimes"},
        {"name": "a", "wait_for": "http"},
        {"name": "a", "variables": {"A": [1]}},
        {"name": "a", "command": {"x": 1}},
        7,
    ],
)
def test_bad_service_mappings(item: object) -> None:
    with pytest.raises(ToolkitError) as info:
        service_entry(item, "test")
    assert info.value.exit_code == 2
