"""The one exception type of this package."""

from __future__ import annotations


class SpaceError(ValueError):
    """A search space, space file or budget that cannot be used. The message is one paragraph
    for the user: it names the problem (with the file, line and key where there is one) and
    the fix. The CLI prints it without a traceback."""
