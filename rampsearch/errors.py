"""The one exception type for mistakes a user can make and fix."""


class UserError(Exception):
    """Bad input or a missing prerequisite. The CLI prints the message (one paragraph that
    names the problem and the fix) and exits non-zero, without a traceback."""
