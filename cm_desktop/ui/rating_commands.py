"""Adding a rating as an undoable command on the app-wide stack (Rate and Chat both use it).

The bank writes go through the app's one write queue (`ops.BankWrite`), so an undo always runs
after the add it undoes; the rating the add returned is recorded on the write thread, before the
undo can read it. The write announces `bank_changed`, so the views refresh themselves.
"""

from __future__ import annotations

from typing import Callable, Sequence

from PySide6.QtGui import QUndoCommand

from bank_store import DistributionError
from cm_desktop.ui.ops import BankWrite
from cm_desktop.ui.plain import one_line


class AddRatingCommand(QUndoCommand):
    def __init__(self, ctx, profile: str, instance: str, model_response: str, user_response: str, *,
                 source: str = "rated", strategy: str | None = None, fingerprint: str | None = None,
                 on_added: Callable | None = None, on_undone: Callable | None = None,
                 on_redone: Callable | None = None, parent_widget=None,
                 model_distribution: Sequence[float] | None = None):
        """model_distribution: the model's p(y'|x) over the profile's responses when it proposed
        model_response (the trace's model_p), stored beside the rating for the evidence rule."""
        verb = "Accept" if model_response == user_response else "Rate"
        super().__init__(f"{verb} “{one_line(user_response, 40)}” for “{one_line(instance, 40)}”")
        self.ctx = ctx
        self.profile = profile
        self.instance = instance
        self.model_response = model_response
        self.user_response = user_response
        self.source = source
        self.strategy = strategy
        self.fingerprint = fingerprint
        self.model_distribution = ([float(v) for v in model_distribution]
                                   if model_distribution is not None and len(model_distribution)
                                   else None)
        self.rating = None          # set on the write thread once added
        self._removed = None        # the rating as removed by undo (restored with its id on redo)
        self._first = True
        self._on_added = on_added
        self._on_undone = on_undone
        self._on_redone = on_redone
        self._parent = parent_widget

    def _add(self, bank):
        """On the write thread: the rating and the model's distribution in one transaction. The
        distribution is an aid to the evidence rule, not the rating: where it no longer fits
        (the response set changed since the proposal) the rating is written with y' alone."""
        def add(distribution):
            return bank.add_rating(self.profile, self.instance, self.model_response,
                                   self.user_response, source=self.source,
                                   strategy=self.strategy, fingerprint=self.fingerprint,
                                   model_distribution=distribution)
        if self.model_distribution:
            try:
                return add(self.model_distribution)
            except DistributionError:
                pass
        return add(None)

    def _write(self, fn, label: str, on_success) -> None:
        owner = self._parent if self._parent is not None else self.ctx
        BankWrite(owner, fn, profile=self.profile).labelled(label).success(on_success).run()

    def redo(self) -> None:
        profile = self.profile

        if self._first:
            self._first = False

            def add(job):
                self.rating = self._add(job.bank)
                return self.rating

            self._write(add, "Saving the rating", lambda rating: self._on_added and self._on_added(rating))
            return

        def restore(job):
            if self._removed is not None:
                removed = self._removed
                distributions = ({removed.id: self.model_distribution}
                                 if self.model_distribution else None)
                job.bank.restore_ratings(profile, [removed], distributions)
                self.rating, self._removed = removed, None
            return self.rating

        self._write(restore, "Redoing the rating", lambda rating: self._on_redone and self._on_redone(rating))

    def undo(self) -> None:
        profile = self.profile

        def remove(job):
            if self.rating is None:      # the add failed: nothing to remove
                return None
            self._removed = job.bank.remove_rating(profile, self.rating.id)
            self.rating = None
            return self._removed

        self._write(remove, "Undoing the rating", lambda rating: self._on_undone and self._on_undone(rating))
