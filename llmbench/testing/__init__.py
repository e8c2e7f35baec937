"""The tiny model tests and the demo run on, built on this machine."""
