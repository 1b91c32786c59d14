"""Where the work runs: here (the default), or on Ray (README "Running on Ray")."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

from tiercli.settings import RAY_ADDRESS_FORMS, check_ray_address  # noqa: F401  (checked with the settings)

# How long tiercli waits for a Ray address to answer (README "Running on Ray"); Ray's own
# waits for the cluster's control store (GCS) behind it are bounded by RAY_WAIT_S each.
RAY_CONNECT_TIMEOUT_S = 10
RAY_WAIT_S = 5


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
