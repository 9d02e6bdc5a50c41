"""shipload: tells from a satellite chip of an oil tanker whether it is empty or laden."""

import os

# albumentations asks the package index for its latest version when imported unless this is
# set: shipload never reaches the network at run time (and offline the attempt only waits).
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"

CLASSES: tuple[str, str] = ("empty", "laden")
"""Class names, in index order. Synthetic rule: laden iff load fraction >= 0.5."""
