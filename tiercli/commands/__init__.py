"""One module per command; tiercli/cli.py wires them."""
