"""The encoder tuned on the bank, in idle time (`cm.encoder_tuning.BankTuning` with `defer` on).

A Chat decision never waits for a tuning (tens of seconds on a large bank): it reads through the
last tuning still valid, or the frozen encoder, and when it finds a tuning due the view asks for
it here. The tuning runs on the inference thread at background priority, shows its progress, and
gives way the moment someone waits for the model, queueing itself again behind that job.
"""

from __future__ import annotations

from cm_desktop.cancel import Cancelled
from cm_desktop.ui.ops import ModelJob, Priority

LABEL = "Tuning the encoder on your ratings"


class GiveWay:
    """A cancel token that also reads as cancelled while a job of `priority` or higher is queued
    on the inference thread (default: one someone waits for right now)."""

    def __init__(self, token, worker, priority: Priority = Priority.INTERACTIVE) -> None:
        self._token = token
        self._worker = worker
        self._priority = priority

    @property
    def cancelled(self) -> bool:
        return self._token.cancelled or self._worker.waiting_at(self._priority)


def tune_when_idle(parent, ctx, profile: str):
    """Queue the profile's due tuning (a newer request replaces one still queued). One that gave
    way to a waiting job queues itself again, behind that job."""
    worker = ctx.inference

    def tune(job):
        engine = job.session.engine_for(profile)
        engine.tuning.progress = lambda step, steps: job.progress(step, steps, LABEL)
        try:
            engine.tune_now(GiveWay(job.cancel, worker))
        except Cancelled:
            job.check()         # stopped by the user: no more tries
        finally:
            engine.tuning.progress = None
        return engine.tuning.due

    def done(still_due: bool) -> None:
        if still_due:
            tune_when_idle(parent, ctx, profile)

    return (ModelJob(parent, tune).with_priority(Priority.BACKGROUND)
            .supersedes((id(ctx), "tune the encoder", profile)).with_progress(LABEL)
            .success(done).run())
