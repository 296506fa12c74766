"""What a command tells its user in one line: a value to change (exit 2), or a failure (exit 1)."""

from __future__ import annotations

from crewtrace.errors import ConfigurationError, CrewtraceError

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_USAGE", "CommandFailed", "UsageError"]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


class UsageError(ConfigurationError):
    """A command-line value the user has to change (exit code 2)."""


class CommandFailed(CrewtraceError, RuntimeError):
    """The command could not do its job for a reason outside its arguments' form (exit code 1)."""
