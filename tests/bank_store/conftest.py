"""Fixtures for the bank_store tests (helpers that are not fixtures: bank_helpers.py)."""

from __future__ import annotations

import pytest

from bank_helpers import SMALL_R


@pytest.fixture
def small_bank(bank):
    """The shared `bank` fixture with profile P over SMALL_R."""
    bank.create_profile("P", SMALL_R, description="test profile")
    return bank
