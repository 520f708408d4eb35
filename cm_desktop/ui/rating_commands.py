"""Adding a rating as an undoable command on the app-wide stack (Rate and Chat both use it).

The bank writes run on the serial write thread, so an undo always runs after the add it undoes;
the rating the add returned is recorded on the worker thread, before the undo can read it.
"""

from __future__ import annotations

from typing import Callable

from PySide6.QtGui import QUndoCommand

from cm_desktop.ui.plain import one_line


class AddRatingCommand(QUndoCommand):
    def __init__(self, ctx, profile: str, instance: str, model_response: str, user_response: str, *,
                 source: str = "rated", strategy: str | None = None, fingerprint: str | None = None,
                 on_added: Callable | None = None, on_undone: Callable | None = None,
                 on_redone: Callable | None = None, parent_widget=None):
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
        self.rating = None          # set on the write thread once added
        self._removed = None        # the rating as removed by undo (restored with its id on redo)
        self._first = True
        self._on_added = on_added
        self._on_undone = on_undone
        self._on_redone = on_redone
        self._parent = parent_widget

    def redo(self) -> None:
        bank, profile = self.ctx.bank, self.profile

        if self._first:
            self._first = False

            def add():
                self.rating = bank.add_rating(profile, self.instance, self.model_response, self.user_response,
                                              source=self.source, strategy=self.strategy,
                                              fingerprint=self.fingerprint)
                return self.rating

            def added(rating):
                self.ctx.bank_changed.emit(profile)
                if self._on_added:
                    self._on_added(rating)

            self.ctx.write(add, label="Saving the rating", on_success=added, parent=self._parent)
            return

        def restore():
            if self._removed is not None:
                bank.restore_ratings(profile, [self._removed])
                self.rating, self._removed = self._removed, None
            return self.rating

        def restored(rating):
            self.ctx.bank_changed.emit(profile)
            if self._on_redone:
                self._on_redone(rating)

        self.ctx.write(restore, label="Redoing the rating", on_success=restored, parent=self._parent)

    def undo(self) -> None:
        bank, profile = self.ctx.bank, self.profile

        def remove():
            if self.rating is None:      # the add failed: nothing to remove
                return None
            self._removed = bank.remove_rating(profile, self.rating.id)
            self.rating = None
            return self._removed

        def removed(rating):
            self.ctx.bank_changed.emit(profile)
            if self._on_undone:
                self._on_undone(rating)

        self.ctx.write(remove, label="Undoing the rating", on_success=removed, parent=self._parent)
