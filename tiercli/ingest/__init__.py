"""Reading logs: formats into events."""
