"""tiercli: replay recorded LLM-call logs through an L1/L2/L3 cache simulator."""

__version__ = "0.1.0"
