"""The macOS backend: CoreMediaIO, CoreAudio and the unified log through pyobjc, imported
only when used (never on Linux), with every decision in pure modules tested on Linux."""
