"""Linux backend: device nodes through /proc and inotify, microphones through the sound server."""
