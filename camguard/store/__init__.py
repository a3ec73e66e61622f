"""Persistence: settings files and the SQLite history (stdlib only, files 0600)."""
