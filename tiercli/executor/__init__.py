"""Where the work runs: here (the default), or on Ray (README "Running on Ray")."""

from __future__ import annotations

import re
from contextlib import contextmanager, nullcontext

# How long tiercli waits for a Ray address to answer (README "Running on Ray"); Ray's own
# waits for the cluster's control store (GCS) behind it are bounded by RAY_WAIT_S each.
RAY_CONNECT_TIMEOUT_S = 10
RAY_WAIT_S = 5

RAY_ADDRESS_FORMS = "auto (a cluster started on this machine with `ray start --head`) or HOST:PORT of the head node"
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
                   r"|\[[0-9A-Fa-f:.]+\]")


def check_ray_address(value) -> str:
    """'auto', or HOST:PORT (a port from 1 to 65535); a ray:// address (Ray Client) is refused
    with what to use instead. Raises ValueError, which the flag and config readers report."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be {RAY_ADDRESS_FORMS}, got {value!r}")
    address = value.strip()
    if address == "auto":
        return address
    if address.lower().startswith("ray://"):
        raise ValueError(f"{address!r}: ray:// addresses (Ray Client) are not supported; give the head node's "
                         f"HOST:PORT (the port of `ray start --head`, 6379 by default) from a machine of the "
                         f"cluster's network, or run tiercli on the head node with auto")
    host, colon, port = address.rpartition(":")
    if not colon or not _HOST.fullmatch(host) or not port.isdigit():
        raise ValueError(f"{address!r} is not a Ray address: use {RAY_ADDRESS_FORMS}, e.g. 10.0.0.5:6379")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"{address!r}: port {port} is out of range (1 to 65535)")
    return address


def host_and_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a HOST:PORT address checked by check_ray_address; None for auto."""
    if address == "auto":
        return None
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


@contextmanager
def executor_session(settings):
    """A Ray session for the command's work when settings.executor is "ray"; nothing otherwise."""
    if settings.executor != "ray":
        with nullcontext():
            yield None
        return
    from tiercli.executor.ray_backend import ray_session

    with ray_session(settings.ray_address) as ray:
        yield ray
