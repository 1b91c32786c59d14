"""Money and figures: prices, per-call outcomes, summaries."""
