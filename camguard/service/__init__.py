"""The optional root service: enforces for every user and serves a local socket API."""
