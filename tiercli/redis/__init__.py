"""L2 in a real Redis: connecting, a private server, the session."""
