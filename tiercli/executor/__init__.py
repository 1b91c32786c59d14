"""Where the work runs: here (the default), or on Ray (docs/ray.md "Running on Ray")."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

from tiercli.executor.ray_backend import ray_session
from tiercli.settings import RAY_ADDRESS_FORMS, check_ray_address  # noqa: F401  (checked with the settings)


@contextmanager
def executor_session(settings):
    """A Ray session for the command's work when settings.executor is "ray"; nothing otherwise."""
    if settings.executor != "ray":
        with nullcontext():
            yield None
        return
    with ray_session(settings.ray_address) as ray:
        yield ray
