"""The Bank view's "By model" row: how many ratings were made with the current model and with
others, and Rebase (ask the current model again about every instance rated with another model).

Rebase asks the model a batch of instances at a time (one background-priority ModelJob per
batch, so chat and rating keep their turn on the model); each batch's new ratings go to the bank
through the one write queue (BankWrite) before the next batch starts. Cancel stops after the
model call under way; what was stored stays, and Rebase again resumes (bank_store.rebase finds
what is left).
"""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QProgressBar, QPushButton, QWidget

from cm_desktop.ui.ops import BankQuery, BankWrite, ModelJob, Priority
from cm_desktop.ui.plain import plain_label, set_plain

BATCH = 8   # instances per bank write


def counts_text(c, fingerprint: str | None) -> str:
    if fingerprint is None:
        return "the current model is not loaded yet"
    text = f"{c.current} with the current model · {c.other} with other models"
    if c.rebased or c.to_rebase:
        text += " (" + ", ".join(part for part in (
            f"{c.rebased} rebased" if c.rebased else "",
            f"{c.to_rebase} can be rebased" if c.to_rebase else "") if part) + ")"
    if c.without_instance:
        text += f" · {c.without_instance} from a paper file (no query: kept, not used for counts)"
    return text


class BankModelsRow(QWidget):
    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx = ctx
        self.counts = None
        self.rebase_op = None
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.label = plain_label("—", wrap=True)
        self.rebase_button = QPushButton("Rebase…")
        self.rebase_button.setToolTip("Ask the current model again about every query rated with "
                                      "another model; the old ratings are kept")
        self.rebase_button.clicked.connect(self.start_rebase)
        self.rebase_button.setEnabled(False)
        self.progress_bar = QProgressBar()
        self.progress_bar.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel)
        row.addWidget(self.label, 1)
        row.addWidget(self.progress_bar)
        row.addWidget(self.cancel_button)
        row.addWidget(self.rebase_button)
        ctx.inference.backend_loaded.connect(lambda *_: self.refresh())

    def refresh(self):
        profile, fingerprint = self.ctx.profile, self.ctx.inference.fingerprint
        if not profile:
            return None

        def count(job):
            from bank_store.rebase import model_counts

            return model_counts(job.bank, profile, fingerprint)

        def shown(c):
            self.counts = c
            set_plain(self.label, counts_text(c, fingerprint))
            self.rebase_button.setEnabled(fingerprint is not None and c.to_rebase > 0
                                          and self.rebase_op is None)

        def unknown(_exc):   # e.g. the profile just went away: the view's title says so
            self.counts = None
            set_plain(self.label, "—")
            self.rebase_button.setEnabled(False)

        return BankQuery(self, count).supersedes((id(self), "by model")).success(shown) \
            .failure(unknown).run()

    def start_rebase(self):
        """Find what is left to rebase, then ask the model a few instances at a time: one
        background model job per batch, so chat and rating keep their turn on the model."""
        profile, fingerprint = self.ctx.profile, self.ctx.inference.fingerprint
        if not profile or not fingerprint or self.rebase_op is not None:
            return None

        def find(job):
            from bank_store.rebase import pending_groups

            return pending_groups(job.bank, profile, fingerprint)

        self._job = {"profile": profile, "fingerprint": fingerprint, "groups": [], "next": 0,
                     "strategy": self.ctx.settings.strategy, "cancelled": False}
        self.rebase_button.setEnabled(False)
        self.progress_bar.setValue(0)
        self.progress_bar.setVisible(True)
        self.cancel_button.setVisible(True)
        op = BankQuery(self, find).labelled("Finding what to rebase") \
            .success(self._found).failure(self._failed).run()
        op.finished.connect(lambda: self._finished() if op.was_cancelled else None)
        self.rebase_op = op
        return op

    def _found(self, groups) -> None:
        self._job["groups"] = groups
        self.progress_bar.setMaximum(max(len(groups), 1))
        self._next_batch()

    def _next_batch(self) -> None:
        job_state = self._job
        groups, start = job_state["groups"], job_state["next"]
        if job_state["cancelled"] or start >= len(groups):
            return self._finished()
        chunk = groups[start:start + BATCH]
        profile, fingerprint = job_state["profile"], job_state["fingerprint"]
        strategy = job_state["strategy"]

        def ask(job):
            from bank_store.rebase import rebased_ratings

            engine = job.session.engine_for(profile)
            out: list[dict] = []
            distributions: list[list[float]] = []   # stored with them, as the Rate view does
            for olds in chunk:
                job.check()
                outcome = engine.model_pass(olds[0].instance, job.cancel, strategy=strategy)
                out += rebased_ratings(olds, engine.responses[outcome.model_index], fingerprint,
                                       strategy)
                distributions += [[float(v) for v in outcome.p]] * len(olds)
            return out, distributions

        def answered(answers) -> None:
            new_ratings, distributions = answers
            job_state["next"] = start + len(chunk)
            done = job_state["next"]
            self.progress_bar.setValue(done)
            self.progress_bar.setFormat(f"Rebasing: {done} of {len(groups)} queries")
            def store(job):
                return job.bank.add_ratings(profile, new_ratings, distributions)

            BankWrite(self, store, profile=profile).labelled("Storing rebased ratings") \
                .success(lambda _n: self._next_batch()).failure(self._failed).run()

        self.rebase_op = (ModelJob(self, ask).with_priority(Priority.BACKGROUND)
                          .labelled("Rebasing the bank").success(answered).failure(self._failed)
                          .run())
        self.rebase_op.finished.connect(
            lambda op=self.rebase_op: self._finished() if op.was_cancelled else None)

    def cancel(self) -> None:
        """Stop after the model call under way; what was stored stays, Rebase resumes."""
        if self.rebase_op is not None:
            self._job["cancelled"] = True
            self.rebase_op.cancel()

    def _failed(self, exc) -> None:
        self._finished()
        self.ctx.show_error(self, "Rebase stopped", exc)

    def _finished(self) -> None:
        self.rebase_op = None
        self.progress_bar.setVisible(False)
        self.cancel_button.setVisible(False)
        self.refresh()
