"""Errors the command line prints without a traceback."""


class CliError(Exception):
    """A user-facing error: printed as ``accessbot: <message>``, exit code 2."""
