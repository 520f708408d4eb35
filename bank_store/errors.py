"""Errors raised by the bank: one base class, so callers can catch everything the bank says.

Every message is meant for a person: it names the problem and, for files, where it is.
"""

from __future__ import annotations


class BankError(Exception):
    """Anything the bank refuses or cannot do; the bank is left as it was."""


class ProfileNotFoundError(BankError):
    pass


class ProfileExistsError(BankError):
    pass


class RatingNotFoundError(BankError):
    pass


class DistributionError(BankError):
    """A model distribution that does not fit the profile's response set (or is not one)."""


class ResponseSetMismatchError(BankError):
    """An import whose response set differs from the profile's, with no explicit choice made."""

    def __init__(self, message: str, only_in_file: list[str], only_in_profile: list[str]):
        super().__init__(message)
        self.only_in_file = only_in_file
        self.only_in_profile = only_in_profile


class BankFileError(BankError):
    """A bank file that cannot be read or is not valid; `location` says where in the file.

    `location` is a JSON path such as ``ratings[17].user_response`` for a wrong value, or
    ``line 3 column 14`` for a syntax error, or None when the problem is the whole file.
    """

    def __init__(self, message: str, location: str | None = None, path: str | None = None):
        self.message = message
        self.location = location
        self.path = path
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [p for p in (self.path, self.location) if p]
        return ": ".join(parts + [self.message])


class BankDamagedError(BankError):
    """The bank file fails SQLite's check: it is not read or written; recover copies what
    SQLite can still read into a new file and keeps this one."""

    def __init__(self, path, detail: str, problems: int = 1):
        self.path = path
        self.detail = detail
        more = f" and {problems - 1} more problems" if problems > 1 else ""
        super().__init__(
            f"the bank {path} is damaged (SQLite's check: {detail}{more}); nothing was written "
            "to it. `cm bank recover` copies what can still be read into a new file and keeps "
            "the damaged one")
