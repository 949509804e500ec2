"""The exceptions the CLI prints as one paragraph: a user's mistake, a storage that failed."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a missing prerequisite. The CLI prints the message (one paragraph that
    names the problem and the fix) and exits non-zero, without a traceback."""


class StorageFault(Exception):
    """The study storage failed while a command used it: a SQLite file deleted, moved or
    replaced under a running driver, a full or read-only disk, a database server gone. Not
    the user's input, so the CLI exits 1; the paragraph says what failed, what is kept and
    how to continue. ``storage_url`` is given where trainings ran (they were stopped with
    the failure); None where the failure came outside one."""

    def __init__(self, cause: BaseException, storage_url: str | None = None) -> None:
        super().__init__(cause)
        self.cause, self.storage_url = cause, storage_url

    def __str__(self) -> str:
        where, stopped = "the study storage", ""
        if self.storage_url:
            where += f" {self.storage_url}"
            stopped = ("; trainings still running were stopped and are trained again by the "
                       "next run")
        return (f"{where} failed ({innermost_message(self.cause)}). Trials that ended before "
                f"are kept in it{stopped}. Check that the database is still there and writable (a "
                f"SQLite file deleted, moved or replaced while the command ran, a full disk, "
                f"a database server that went away), then run the same command again "
                f"(`rampsearch run --resume` for a search): it trains only what the study "
                f"lacks.")


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions whose message is meant for the user: printed, never a traceback."""
    from iformer import ConfigError

    types: list[type[BaseException]] = [UserError, ConfigError]
    try:  # the search-space package is optional at this layer
        from search_spaces import SpaceError
        types.append(SpaceError)
    except ImportError:
        pass
    return tuple(types)


def storage_error_types() -> tuple[type[BaseException], ...]:
    """What Optuna's RDB storage raises when its database fails (imported only then)."""
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import SQLAlchemyError

    return (StorageInternalError, SQLAlchemyError)


def innermost_message(exc: BaseException) -> str:
    """First line of the deepest cause: the database's own words ("attempt to write a
    readonly database"), not the wrappers' (Optuna's "invalid data in the commit")."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "orig", None) or exc.__cause__
        if not isinstance(inner, BaseException):
            break
        exc = inner
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
