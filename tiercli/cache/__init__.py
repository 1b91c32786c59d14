"""The runtime cache: the L1/L2/L3 configuration `tiercli replay` simulates, run in the
application with the replay's semantics (tiercli/cache/cache.py; README "Run it in your
application"). It imports only the core it shares with the simulator (tests/test_cache_imports.py)."""

from tiercli.cache.cache import TieredCache, outcome_of

__all__ = ["TieredCache", "outcome_of"]
