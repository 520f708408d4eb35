"""The user's discrepancy memory bank: SQLite store and bank files. Imports no Qt."""

from .errors import (BankError, BankFileError, ProfileExistsError, ProfileNotFoundError,
                     RatingNotFoundError, ResponseSetMismatchError)
from .records import (SOURCES, Profile, Rating, TransitionMatrix, normalise_response,
                      rating_id, utc_now)
from .store import DiscrepancyBank

__all__ = [
    "BankError", "BankFileError", "DiscrepancyBank", "Profile", "ProfileExistsError",
    "ProfileNotFoundError", "Rating", "RatingNotFoundError", "ResponseSetMismatchError",
    "SOURCES", "TransitionMatrix", "normalise_response", "rating_id", "utc_now",
]
