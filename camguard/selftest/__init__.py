"""camguard selftest: open each camera and microphone and prove detection and blocking."""
