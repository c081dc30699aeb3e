"""Container options become Docker API arguments the same way for runs and services."""

from __future__ import annotations

import pytest

from ci_toolkit.containers.options import ContainerOptions, create_kwargs, host_config_kwargs, port_bindings
from ci_toolkit.core.errors import ToolkitError


def test_only_given_options_reach_the_api() -> None:
    assert create_kwargs(ContainerOptions()) == {}
    assert host_config_kwargs(ContainerOptions(), str) == {}
    opts = ContainerOptions(user="1:2", working_dir="/w", hostname="h", platform="linux/arm64", cpu_quota=5)
    assert create_kwargs(opts) == {"user": "1:2", "working_dir": "/w", "hostname": "h", "platform": "linux/arm64"}
    assert host_config_kwargs(opts, str) == {"cpu_quota": 5}


def test_extra_hosts_resolve_service_names() -> None:
    opts = ContainerOptions(extra_hosts={"a": "10.0.0.1", "b": "db"}, dns=("1.1.1.1",), mem_limit="64m")
    found = host_config_kwargs(opts, lambda t: "172.18.0.5" if t == "db" else t)
    assert found == {"dns": ["1.1.1.1"], "extra_hosts": {"a": "10.0.0.1", "b": "172.18.0.5"}, "mem_limit": "64m"}


def test_ports_publish_to_the_given_or_any_host_port() -> None:
    exposed, bindings = port_bindings({"8080": 8081, "53/udp": None})
    assert exposed == [8080, (53, "udp")]
    assert bindings == {8080: 8081, "53/udp": None}


@pytest.mark.parametrize("ports", [{"http": 80}, {"80/sctp": 1}, {"80": "eighty"}])
def test_bad_ports_are_bad_input(ports: dict[str, object]) -> None:
    with pytest.raises(ToolkitError) as info:
        port_bindings(ports)  # type: ignore[arg-type]
    assert info.value.exit_code == 2
