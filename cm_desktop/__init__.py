"""CM Desktop: personalize an LLM to one user's meaning with Consistent Marginalization."""

__version__ = "0.1.0"
