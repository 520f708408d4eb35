"""The real main window, built the way the app builds it, on a bank in the test's tmp dir."""

from __future__ import annotations

import pytest


# How long a test waits for the real model: a wait on state, so a generous limit costs nothing
# when the machine is quiet (about 1 s per proposal); on 2 cores at load average 12 the first
# Rate proposal (with its calibration pass) took 222 s and each next one ~50 s.
MODEL_WAIT_MS = 900_000


@pytest.fixture
def model_wait_ms() -> int:
    return MODEL_WAIT_MS


@pytest.fixture
def app_window(qtbot, tmp_path):
    """make(profile=..., responses=...) -> (ctx, window): the sample profile is ensured as on a
    first start, plus `profile` (created with `responses`, default: the Banking77 sample set) which
    is selected (create=False: `profile` is already in the bank, as after a restart). No model is
    loaded; use ctx.inference.use_backend(llama_backend) for one."""
    from cm_desktop.app import create_app_window, start_up
    from cm_desktop.settings import Settings
    from cm_desktop.ui.resource_files import sample_responses

    made = []

    def make(profile: str | None = "Test", responses=None, onboarding_dismissed=True, bank_name="bank.sqlite3",
             create=True):
        settings = Settings(onboarding_dismissed=onboarding_dismissed, last_profile=profile or "",
                            max_tokens=24, temperature=0.0)
        ctx, window = create_app_window(tmp_path / bank_name, settings=settings)
        if profile and create:
            ctx.bank.create_profile(profile, list(responses or sample_responses()))
        made.append(window)
        qtbot.addWidget(window)
        window.show()
        ready = []
        start_up(ctx, window, load_model=False, on_ready=lambda: ready.append(True))
        qtbot.waitUntil(lambda: bool(ready) and ctx.profile is not None, timeout=15000)
        if profile:
            qtbot.waitUntil(lambda: ctx.profile == profile, timeout=5000)
        return ctx, window

    yield make
    for window in made:
        assert window.shutdown(15), "the window did not stop its work in time"
