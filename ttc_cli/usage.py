"""The CLI's own error: a mistake on the command line, printed as one line naming the fix."""

from __future__ import annotations


class UsageError(Exception):
    """A mistake on the command line: printed as one line that names the fix (exit 2)."""
