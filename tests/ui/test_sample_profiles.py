"""The sample profiles the app ships (resources/): both are created with their guidance."""

from __future__ import annotations

from cm_desktop.ui.resource_files import (SAMPLE_PROFILE_NAME, STYLE_PROFILE_NAME,
                                          ensure_sample_profile, sample_guidance, sample_queries,
                                          sample_responses)


def test_both_sample_profiles_are_created_once_with_their_guidance(bank):
    assert ensure_sample_profile(bank) is True
    assert ensure_sample_profile(bank) is False
    banking = bank.guidance(SAMPLE_PROFILE_NAME)
    assert set(banking) == set(sample_responses(SAMPLE_PROFILE_NAME)) and len(banking) == 77
    styles = bank.guidance(STYLE_PROFILE_NAME)
    assert 6 <= len(styles) <= 10 and set(styles) == set(sample_responses(STYLE_PROFILE_NAME))


def test_every_banking_response_has_one_to_three_key_facts_found_in_its_guidance():
    for g in sample_guidance(SAMPLE_PROFILE_NAME):
        assert 1 <= len(g.key_facts) <= 3, g.response
        assert all(f.lower() in g.text.lower() for f in g.key_facts), g.response


def test_answer_style_questions_are_labelled_with_its_styles():
    questions = sample_queries(STYLE_PROFILE_NAME)
    styles = set(sample_responses(STYLE_PROFILE_NAME))
    assert len(questions) >= 40 and {q.label for q in questions} == styles
