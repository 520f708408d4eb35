"""The Rate view's widgets and their layout (the view's behaviour is in rate_view)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from cm_desktop.ui.curve_hint import CurveHint
from cm_desktop.ui.plain import plain_label
from cm_desktop.ui.rate_queue import KeyRouter

if TYPE_CHECKING:
    from cm_desktop.ui.rate_view import RateView


def build_rate_view(view: "RateView") -> None:
    """Create the view's widgets as its attributes, lay them out and connect them."""
    outer = QVBoxLayout(view)
    outer.setContentsMargins(16, 12, 16, 12)
    outer.setSpacing(10)

    source = QHBoxLayout()
    view.open_button = QPushButton("Open dataset…")
    view.open_button.clicked.connect(view.choose_dataset)
    view.add_edit = QLineEdit()
    view.add_edit.setPlaceholderText("Type a query to rate and press Enter…")
    view.add_edit.returnPressed.connect(view._add_typed)
    view.coverage_box = QCheckBox("Coverage-driven order")
    view.coverage_box.setToolTip("Ask first where your ratings leave the answer most in doubt "
                                 "(ranked again after every rating).")
    view.coverage_box.setChecked(bool(view.ctx.settings.coverage_order))
    view.coverage_box.toggled.connect(view._coverage_toggled)
    source.addWidget(view.open_button)
    source.addWidget(view.add_edit, 1)
    source.addWidget(view.coverage_box)
    outer.addLayout(source)
    view.curve_hint = CurveHint(view.ctx, view.coverage_box.isChecked, view)
    view.curve_hint.use_coverage.connect(lambda: view.coverage_box.setChecked(True))
    outer.addWidget(view.curve_hint)

    card = QFrame()
    card.setObjectName("bubbleBot")
    card_layout = QVBoxLayout(card)
    card_layout.setContentsMargins(14, 10, 14, 12)
    view.source_label = plain_label("", wrap=False)
    view.source_label.setObjectName("muted")
    view.query_label = plain_label("No queries yet: open a dataset or type one above.", selectable=True)
    view.query_label.setObjectName("queryText")
    view.query_label.setIndent(0)
    view.proposal_label = plain_label("")
    view.proposal_label.setObjectName("proposalText")
    view.doubt_label = plain_label("")      # why this query now (coverage order)
    view.doubt_label.setObjectName("muted")
    card_layout.addWidget(view.source_label)
    card_layout.addWidget(view.query_label)
    card_layout.addWidget(view.doubt_label)
    card_layout.addWidget(view.proposal_label)
    outer.addWidget(card)

    middle = QGridLayout()
    middle.setHorizontalSpacing(14)
    middle.addWidget(plain_label("Top candidates (press 1–9)"), 0, 0)
    middle.addWidget(plain_label("All responses (type to filter, ↑↓ and Enter to pick)"), 0, 1)
    view.top_list = QListWidget()
    view.top_list.setFocusPolicy(Qt.NoFocus)
    view.top_list.itemClicked.connect(lambda item: view.pick_top(view.top_list.row(item) + 1))
    view.filter_edit = QLineEdit()
    view.filter_edit.setPlaceholderText("Type to search the response set…")
    view.filter_edit.textChanged.connect(view._refilter)
    view._key_router = KeyRouter(view)
    view.filter_edit.installEventFilter(view._key_router)
    view.all_list = QListWidget()
    view.all_list.setFocusPolicy(Qt.NoFocus)
    view.all_list.itemDoubleClicked.connect(lambda item: view.rate(item.text()))
    right = QVBoxLayout()
    right.addWidget(view.filter_edit)
    right.addWidget(view.all_list, 1)
    middle.addWidget(view.top_list, 1, 0)
    middle.addLayout(right, 1, 1)
    middle.setColumnStretch(0, 1)
    middle.setColumnStretch(1, 1)
    outer.addLayout(middle, 1)

    buttons = QHBoxLayout()
    view.accept_button = QPushButton("Accept  (Enter)")
    view.accept_button.setObjectName("primary")
    view.accept_button.clicked.connect(view.accept)
    view.skip_button = QPushButton("Skip  (Backspace)")
    view.skip_button.clicked.connect(view.skip)
    view.undo_button = QPushButton("Undo  (Ctrl+Z)")
    view.undo_button.clicked.connect(view.ctx.undo_stack().undo)
    view.undo_button.setEnabled(False)
    view.ctx.undo_stack().canUndoChanged.connect(view.undo_button.setEnabled)
    buttons.addWidget(view.accept_button)
    buttons.addWidget(view.skip_button)
    buttons.addStretch(1)
    buttons.addWidget(view.undo_button)
    outer.addLayout(buttons)

    view.progress = QProgressBar()
    view.progress.setTextVisible(False)
    view.counts_label = plain_label("", wrap=False)
    view.counts_label.setObjectName("muted")
    outer.addWidget(view.progress)
    outer.addWidget(view.counts_label)
    view.setFocusProxy(view.filter_edit)
    # the view's keys work wherever focus is inside it (after clicking a button, too); a
    # box the user types into (the add-a-query box) keeps its own keys
    for child in view.findChildren(QWidget):
        if child is not view.filter_edit and child.focusPolicy() != Qt.NoFocus \
                and not isinstance(child, QLineEdit):
            child.installEventFilter(view._key_router)
    view._update_counts()
