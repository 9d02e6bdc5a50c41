"""shipload: tells from a satellite chip of an oil tanker whether it is empty or laden."""

__version__ = "0.1.0"

CLASSES: tuple[str, str] = ("empty", "laden")
"""Class names, in index order. Synthetic rule: laden iff load fraction >= 0.5."""
