"""The tray application: the only package (with app wiring) that imports Qt."""
