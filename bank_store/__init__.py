"""The user's discrepancy memory bank: SQLite store and bank files. Imports no Qt."""

from .conversations import (Conversation, ConversationNotFoundError, ConversationSummary,
                            Message, conversation_markdown)
from .errors import (BankDamagedError, BankError, BankFileError, DistributionError,
                     ProfileExistsError, ProfileNotFoundError, RatingNotFoundError,
                     ResponseSetMismatchError)
from .records import (SOURCES, Profile, Rating, TransitionMatrix, normalise_response,
                      rating_id, utc_now)
from .store import DiscrepancyBank

__all__ = [
    "BankDamagedError", "BankError", "BankFileError", "Conversation", "ConversationNotFoundError",
    "ConversationSummary", "DiscrepancyBank", "DistributionError", "Message", "Profile",
    "ProfileExistsError", "ProfileNotFoundError", "Rating", "RatingNotFoundError",
    "ResponseSetMismatchError", "SOURCES", "TransitionMatrix", "conversation_markdown",
    "normalise_response", "rating_id", "utc_now",
]
