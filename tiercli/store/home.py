"""tiercli's user directory: $TIERCLI_HOME, else the platform's user data dir."""

from __future__ import annotations

import os
from pathlib import Path


def tiercli_home() -> Path:
    env = os.environ.get("TIERCLI_HOME")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("tiercli", appauthor=False))
