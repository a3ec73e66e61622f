"""camguard: see who turns on your camera or microphone, and switch it off."""

__version__ = "0.1.0"
