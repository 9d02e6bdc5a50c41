"""Errors that the CLI turns into a clear message and exit code 2 (usage) instead of a trace."""


class UsageError(Exception):
    """Bad arguments, paths or config: the message says what to do instead."""
