"""Errors the CLI turns into a clear message and exit code 2 instead of a trace.

They live here, free of heavy imports, so that ``shipload predict`` never imports PyTorch.
"""


class UsageError(Exception):
    """Bad arguments, paths or config: the message says what to do instead."""


class DataError(ValueError):
    """A labelled data set is malformed; the message says which file or row and what to do."""


class ExportError(RuntimeError):
    """An export check failed; nothing was written."""
