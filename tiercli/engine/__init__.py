"""The replay engine: one loop, the tiers, TTL policy, sweeps."""
