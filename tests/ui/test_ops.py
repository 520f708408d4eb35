"""The UI's background-work contract (`ui/ops.py`): results and errors reach the GUI thread,
progress and cancellation work, a newer query supersedes an older one, bank writes run in
submission order and announce `bank_changed`, model jobs stream and run by priority then in order
on one thread, and everything stops cleanly."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication, QWidget

from cm_desktop.cancel import Cancelled
from cm_desktop.settings import Settings
from cm_desktop.ui.background_op import shutdown_ops
from cm_desktop.ui.inference import InferenceWorker
from cm_desktop.ui.ops import BankQuery, BankWrite, FileTask, ModelJob, Priority

UI = Path(__file__).resolve().parents[2] / "cm_desktop" / "ui"


@pytest.fixture
def ctx(bank):
    from cm_desktop.ui.context import AppContext

    bank.create_profile("me", ["yes", "no", "maybe"])
    context = AppContext(Settings(), bank)
    yield context
    assert context.inference.stop(10)
    assert shutdown_ops(10)


def _gui_thread():
    return QApplication.instance().thread()


def test_query_delivers_result_on_gui_thread(ctx, qtbot):
    seen = {}

    def work(job):
        seen["worker_thread"] = threading.current_thread()
        return job.bank.get_profile("me").responses

    def on_success(result):
        seen["result"] = result
        seen["callback_on_gui"] = QThread.currentThread() is _gui_thread()

    op = BankQuery(ctx, work).success(on_success).run()
    with qtbot.waitSignal(op.finished, timeout=5000):
        pass
    assert seen["result"] == ("yes", "no", "maybe")
    assert seen["callback_on_gui"]
    assert seen["worker_thread"] is not threading.main_thread()


def test_failure_reaches_the_failure_callback(ctx, qtbot):
    errors = []

    def work(job):
        raise ValueError("bad row 7")

    op = FileTask(ctx, work).failure(errors.append).run()
    with qtbot.waitSignal(op.finished, timeout=5000):
        pass
    assert len(errors) == 1 and "bad row 7" in str(errors[0])
    assert op.error is errors[0]


def test_failure_without_a_callback_is_shown_as_an_error(ctx, qtbot):
    with qtbot.waitSignal(ctx.error_shown, timeout=5000) as shown:
        BankQuery(ctx, lambda job: job.bank.get_profile("nobody")).labelled("Reading nobody").run()
    assert shown.args[0] == "Reading nobody" and "nobody" in shown.args[1]


def test_progress_and_cancel(ctx, qtbot):
    progress_seen = []
    reached = threading.Event()

    def work(job):
        for i in range(1000):
            job.progress(i, 1000, f"row {i}")
            if i == 10:
                reached.set()
                job.cancel.wait(30)     # until the test cancels
            job.check()
        return "finished all"

    successes = []
    op = FileTask(ctx, work).success(successes.append).run()
    op.progress.connect(lambda d, t, s: progress_seen.append((d, t, s)))
    assert reached.wait(10)
    qtbot.waitUntil(lambda: len(progress_seen) >= 1, timeout=5000)
    op.cancel()
    with qtbot.waitSignal(op.finished, timeout=5000):
        pass
    assert op.was_cancelled and not successes
    assert progress_seen[0][1] == 1000


def test_progress_indicator_appears_after_delay_and_cancels(ctx, qtbot):
    parent = QWidget()
    parent.ctx = ctx
    qtbot.addWidget(parent)
    parent.show()

    def work(job):
        job.cancel.wait(30)
        raise Cancelled()

    op = FileTask(parent, work).with_progress("Long work", cancellable=True).run()
    qtbot.waitUntil(lambda: op._indicator is not None, timeout=3000)
    assert op._indicator.labelText() == "Long work"
    op._indicator.canceled.emit()
    with qtbot.waitSignal(op.finished, timeout=5000):
        pass
    assert op.was_cancelled and op._indicator is None


def test_callbacks_skip_destroyed_parent(ctx, qtbot):
    parent = QWidget()
    parent.ctx = ctx
    calls = []
    gate = threading.Event()
    op = FileTask(parent, lambda job: gate.wait(5) and 1).success(calls.append).run()
    parent.deleteLater()
    QApplication.processEvents()
    from PySide6.QtCore import QCoreApplication, QEvent
    QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    gate.set()
    with qtbot.waitSignal(op.finished, timeout=5000):
        pass
    assert calls == []


def test_a_newer_query_supersedes_an_older_one(ctx, qtbot):
    gate = threading.Event()
    results = []
    older = BankQuery(ctx, lambda job: gate.wait(10) and "older").supersedes("key").success(results.append).run()
    newer = BankQuery(ctx, lambda job: "newer").supersedes("key").success(results.append).run()
    other = BankQuery(ctx, lambda job: "other key").supersedes("other").success(results.append).run()
    qtbot.waitUntil(lambda: newer.done and other.done, timeout=5000)
    gate.set()
    qtbot.waitUntil(lambda: older.done, timeout=5000)
    assert older.was_cancelled
    assert sorted(results) == ["newer", "other key"]


def test_writes_run_in_submission_order_and_announce_the_change(ctx, qtbot):
    changed, order, threads = [], [], set()
    ctx.bank_changed.connect(changed.append)
    gate = threading.Event()

    def add(i):
        def fn(job):
            if i == 0:
                gate.wait(10)       # the first write is slow: the others must still wait for it
            threads.add(threading.current_thread().name)
            order.append(i)
            return job.bank.add_rating("me", f"query {i}", "yes", "no" if i % 2 else "yes")
        return fn

    ops = [BankWrite(ctx, add(i), profile="me").run() for i in range(20)]
    gate.set()
    qtbot.waitUntil(lambda: all(op.done for op in ops), timeout=10000)
    assert order == list(range(20))
    assert len(threads) == 1
    assert changed == ["me"] * 20
    assert ctx.bank.rating_count("me") == 20


def test_a_write_is_never_cancelled_or_superseded(ctx, qtbot):
    gate = threading.Event()
    blocker = BankWrite(ctx, lambda job: gate.wait(10), profile="me").run()
    queued = BankWrite(ctx, lambda job: job.bank.add_rating("me", "asked for", "yes", "yes"), profile="me").run()
    queued.cancel()                      # e.g. the window closing: the write still happens
    gate.set()
    qtbot.waitUntil(lambda: blocker.done and queued.done, timeout=5000)
    assert not queued.was_cancelled and queued.result.instance == "asked for"
    with pytest.raises(TypeError):
        BankWrite(ctx, lambda job: None, profile="me").supersedes("key")


def test_a_failed_write_announces_no_change(ctx, qtbot):
    changed, errors = [], []
    ctx.bank_changed.connect(changed.append)
    op = BankWrite(ctx, lambda job: job.bank.add_rating("nobody", "x", "yes", "no"), profile="nobody")
    op = op.failure(errors.append).run()
    qtbot.waitUntil(lambda: op.done, timeout=5000)
    assert errors and not changed


def test_model_jobs_run_in_order_on_one_thread(ctx, qtbot):
    threads, results = [], []
    gate = threading.Event()

    def job_fn(i):
        def fn(job):
            if i == 0:
                gate.wait(10)
            threads.append(threading.current_thread().name)
            return i
        return fn

    ops = [ModelJob(ctx, job_fn(i)).success(results.append).run() for i in range(5)]
    gate.set()
    with qtbot.waitSignal(ops[-1].finished, timeout=5000):
        pass
    assert results == [0, 1, 2, 3, 4]
    assert len(set(threads)) == 1 and threads[0] != threading.main_thread().name
    # no backend loaded: a job asking for it gets a clear error, not a crash
    errors = []
    op = ModelJob(ctx, lambda job: job.session.backend).failure(errors.append).run()
    with qtbot.waitSignal(op.finished, timeout=5000):
        pass
    assert "loading" in str(errors[0]) or "not loaded" in str(errors[0])


def test_model_jobs_run_by_priority_then_in_order(ctx, qtbot):
    gate, order = threading.Event(), []
    blocker = ModelJob(ctx, lambda job: gate.wait(10)).run()
    qtbot.waitUntil(lambda: ctx.inference.current is blocker, timeout=5000)
    jobs = [("prefetch 1", Priority.BACKGROUND), ("normal 1", Priority.NORMAL),
            ("chat 1", Priority.INTERACTIVE), ("prefetch 2", Priority.BACKGROUND),
            ("chat 2", Priority.INTERACTIVE), ("normal 2", Priority.NORMAL)]
    ops = [ModelJob(ctx, lambda job, name=name: order.append(name)).with_priority(p).run() for name, p in jobs]
    gate.set()
    qtbot.waitUntil(lambda: all(op.done for op in ops), timeout=5000)
    assert order == ["chat 1", "chat 2", "normal 1", "normal 2", "prefetch 1", "prefetch 2"]


def test_a_generator_job_streams_and_stops_between_values(ctx, qtbot):
    pieces, finished, ran_on = [], [], []

    def stream(job):
        for i in range(1000):
            if i == 3:
                job.cancel.wait(10)     # hold until the GUI, having seen three pieces, cancels
            yield f"piece {i}"
        ran_on.append("past the cancel")

    op = ModelJob(ctx, stream).on_yield(pieces.append).success(finished.append).run()
    qtbot.waitUntil(lambda: len(pieces) >= 3, timeout=5000)
    op.cancel()
    qtbot.waitUntil(lambda: op.done, timeout=5000)
    # the piece yielded after the cancel is dropped; the generator is not asked for another
    assert pieces == ["piece 0", "piece 1", "piece 2"]
    assert op.was_cancelled and not finished and not ran_on

    whole = []
    op = ModelJob(ctx, lambda job: (x for x in "abc")).on_yield(whole.append).run()
    qtbot.waitUntil(lambda: op.done, timeout=5000)
    assert whole == ["a", "b", "c"] and not op.was_cancelled


def test_inference_worker_stop_cancels_running_and_queued(ctx, qtbot):
    worker = ctx.inference
    running = threading.Event()

    def long_job(job):
        running.set()
        job.cancel.wait(30)
        raise Cancelled()

    first = ModelJob(ctx, long_job).run()
    queued = ModelJob(ctx, lambda job: "never").run()
    assert running.wait(5)
    assert worker.stop(5)
    qtbot.waitUntil(lambda: first.done and queued.done, timeout=3000)
    assert first.was_cancelled and queued.was_cancelled and queued.result is None


def test_shutdown_ops_cancels_pool_work_but_lets_writes_finish(ctx, qtbot):
    started, gate = threading.Event(), threading.Event()

    def read(job):
        started.set()
        job.cancel.wait(30)
        raise Cancelled()

    def write(job):
        gate.wait(10)
        return job.bank.add_rating("me", "typed just before closing", "yes", "yes")

    op = BankQuery(ctx, read).run()
    written = BankWrite(ctx, write, profile="me").run()
    assert started.wait(5)
    gate.set()
    assert shutdown_ops(5)
    assert op.wait(1) and written.wait(1)
    assert ctx.bank.rating_count("me") == 1


def test_no_hand_written_generation_counter_is_left():
    """Stale results are dropped by `.supersedes(key)` or by cancelling the op, not by counters."""
    offenders = []
    for path in UI.rglob("*.py"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "_generation" in line or "generation !=" in line or "generation ==" in line:
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_no_parameter_sniffing_is_left():
    """Work functions get one `job` argument; nothing inspects their signatures."""
    offenders = [path.name for path in UI.rglob("*.py")
                 if "inspect.signature" in path.read_text(encoding="utf-8")
                 or "_accepted_kwargs" in path.read_text(encoding="utf-8")]
    assert not offenders


def test_a_standalone_worker_needs_no_window(qtbot):
    worker = InferenceWorker(bank=None)
    try:
        from cm_desktop.ui.background_op import BackgroundOp

        op = BackgroundOp(label="plain")
        worker.submit(op, lambda job: job.session is not None and job.bank is None)
        qtbot.waitUntil(lambda: op.done, timeout=5000)
        assert op.result is True
    finally:
        assert worker.stop(5)


def test_idle_time_work_sees_when_someone_waits_for_the_model(ctx, qtbot):
    # what the idle-time tuning checks between batches (ui.idle_tuning): a queued interactive job;
    # and the Rate view's ranking: a queued job of normal priority (a proposal) or higher
    from cm_desktop.cancel import CancelToken
    from cm_desktop.ui.idle_tuning import GiveWay

    token = CancelToken()
    for_chat, for_proposals = GiveWay(token, ctx.inference), \
        GiveWay(token, ctx.inference, Priority.NORMAL)
    gate = threading.Event()
    blocker = ModelJob(ctx, lambda job: gate.wait(10)).run()
    qtbot.waitUntil(lambda: ctx.inference.current is blocker, timeout=5000)
    background = ModelJob(ctx, lambda job: None).with_priority(Priority.BACKGROUND).run()
    assert not for_chat.cancelled and not for_proposals.cancelled
    normal = ModelJob(ctx, lambda job: None).run()
    assert not ctx.inference.interactive_waiting()
    assert not for_chat.cancelled and for_proposals.cancelled
    chat = ModelJob(ctx, lambda job: None).with_priority(Priority.INTERACTIVE).run()
    assert ctx.inference.interactive_waiting() and for_chat.cancelled
    gate.set()
    qtbot.waitUntil(lambda: all(op.done for op in (background, normal, chat)), timeout=5000)
    assert not ctx.inference.interactive_waiting()
    assert not for_chat.cancelled and not for_proposals.cancelled
    token.cancel()
    assert for_chat.cancelled and for_proposals.cancelled      # the user's own cancel, too
