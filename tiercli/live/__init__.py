"""Live mode: sending calls to the API under a spend cap."""
