"""What the simulator (`tiercli replay` and the commands above it) and the runtime cache
(`tiercli.cache`) share: calls and tag changes, keys and scope, answer rules, the L3 text, the
TTL policy, the tiers and the look-up step. Nothing here imports the CLI, the readers of other
formats, tables, plots, pandas or Ray; tests/test_cache_imports.py checks it."""
