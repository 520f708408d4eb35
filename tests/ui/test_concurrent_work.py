"""A CM query on the inference thread (real Gemma) and a 20,000-rating import on the write queue
run at the same time: both finish with the right results while the GUI thread keeps handling its
events. How long the GUI thread's event loop stalls meanwhile is a timing, measured by
`benchmarks/app_bench.py` (same workload; figures in benchmarks/RESULTS.md), not asserted here."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QTimer

N_IMPORT = 20_000


def make_native_file(path, responses, n: int) -> None:
    """A real native export of `n` distinct ratings (written through the bank and formats API)."""
    from bank_store import DiscrepancyBank, formats

    src = DiscrepancyBank(path.with_suffix(".src.sqlite3"))
    src.create_profile("src", responses)
    k = len(responses)
    src.add_ratings("src", [{"instance": f"query number {i}", "model_response": responses[i % k],
                             "user_response": responses[(i * 7) % k], "source": "rated"} for i in range(n)])
    formats.export_native(src, "src", path)
    src.close()


@pytest.mark.slow
def test_cm_query_and_import_finish_together_while_the_gui_runs(app_window, llama_backend, qtbot, tmp_path,
                                                               model_wait_ms):
    from bank_store import formats
    from cm_desktop.ui.ops import BankWrite, ModelJob
    from cm_desktop.ui.resource_files import sample_responses

    ctx, window = app_window("Test")
    responses = sample_responses()
    native = tmp_path / "big.json"
    make_native_file(native, responses, N_IMPORT)
    ctx.bank.add_rating("Test", "When will my card arrive?", "activate my card", "card arrival")
    ctx.inference.use_backend(llama_backend)
    # warm up: the engine and its embedder exist before the two jobs start (first use loads them)
    warm = ModelJob(ctx, lambda job: job.session.engine_for("Test").index.encode_query("hello")).run()
    qtbot.waitUntil(lambda: warm.done, timeout=model_wait_ms)

    ticks_while_working = []
    timer = QTimer()
    timer.setInterval(10)
    traces, reports = [], []
    timer.timeout.connect(lambda: ticks_while_working.append(1) if not (traces and reports) else None)
    timer.start()
    query = (ModelJob(ctx, lambda job: job.session.engine_for("Test").decide("Where is my new card?",
                                                                             cancel=job.cancel))
             .success(traces.append).run())
    imported = (BankWrite(window, lambda job: formats.import_file(job.bank, native, "Imported"),
                          profile="Imported")
                .success(reports.append).run())
    qtbot.waitUntil(lambda: bool(traces) and bool(reports), timeout=model_wait_ms)
    timer.stop()

    assert ctx.bank.rating_count("Imported") == N_IMPORT and reports[0].added == N_IMPORT
    assert traces[0].query == "Where is my new card?" and traces[0].chosen in responses
    assert query.error is None and imported.error is None
    # both ran on their own threads: the GUI thread's timer fired while they worked
    assert ticks_while_working
