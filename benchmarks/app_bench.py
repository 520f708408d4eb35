"""The desktop app's speed and memory, each against a baseline measured in the same run:

1. cold start to window shown  vs  `python -c "import PySide6.QtWidgets"`     (target: ≤ +2 s)
   and that neither torch nor llama_cpp is imported by then (the model loads after the window).
2. GUI event-loop stall (10 ms timer) while a CM query and a 20k-rating bank import run
                                             (target: p99 ≤ 50 ms and no gap over 100 ms)
   --stall-runs N repeats it in N fresh processes (a rare freeze shows in one run of several);
   each run also times every cyclic-GC pass (gc.callbacks), to tell a collector pause from
   other causes of a gap.
3. peak RSS of the app with the default model loaded  vs  the model file size  (target: ≤ 3×)
   measured twice: model loaded and the window up; and after the first Rate proposal (which also
   loads the MiniLM embedder, i.e. torch, for the instance-dependent variant).

    python3 benchmarks/app_bench.py            # all rows (a few minutes on 2 cores)
    python3 benchmarks/app_bench.py --quick    # fewer start-up repeats

Every child runs offscreen in a throwaway CM_DESKTOP_HOME.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _env(home: Path) -> dict:
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen", "CM_DESKTOP_HOME": str(home), "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _time_until(cmd: list[str], marker: str, env: dict) -> tuple[float, str]:
    """Seconds from spawn until a stdout line starting with `marker` (or exit when marker is "")."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=REPO)
    seen = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        if marker and line.startswith(marker):
            seen = line.strip()
            elapsed = time.perf_counter() - t0
            proc.wait(60)
            return elapsed, seen
    proc.wait(60)
    if marker:
        raise RuntimeError(f"{cmd} exited ({proc.returncode}) without printing {marker!r}")
    return time.perf_counter() - t0, seen


def bench_cold_start(repeats: int) -> dict:
    baseline, app, lines = [], [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as home:
            env = _env(Path(home))
            baseline.append(_time_until([sys.executable, "-c", "import PySide6.QtWidgets"], "", env)[0])
            elapsed, line = _time_until([sys.executable, "-m", "cm_desktop.app", "--quit-after-shown"], "SHOWN", env)
            app.append(elapsed)
            lines.append(line)
    b, a = statistics.median(baseline), statistics.median(app)
    return {"baseline_s": round(b, 3), "app_shown_s": round(a, 3), "extra_s": round(a - b, 3),
            "ratio": round(a / b, 2), "imports_at_shown": lines[-1], "repeats": repeats}


# ---- children (run in their own process so RSS and imports are theirs alone) -------------------

def child_stall(n_import: int) -> None:
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtWidgets import QApplication

    from bank_store import DiscrepancyBank, formats
    from cm_desktop.app import create_app_window, start_up
    from cm_desktop.settings import Settings
    from cm_desktop.ui.ops import BankWrite, ModelJob
    from cm_desktop.ui.resource_files import SAMPLE_PROFILE_NAME, sample_responses

    app = QApplication([])
    home = Path(os.environ["CM_DESKTOP_HOME"])
    responses = sample_responses()
    src = DiscrepancyBank(home / "src.sqlite3")
    src.create_profile("src", responses)
    k = len(responses)
    src.add_ratings("src", [{"instance": f"query number {i}", "model_response": responses[i % k],
                             "user_response": responses[(i * 7) % k], "source": "rated"} for i in range(n_import)])
    native = home / "big.json"
    formats.export_native(src, "src", native)
    src.close_all()

    ctx, window = create_app_window(home / "bank.sqlite3", settings=Settings(onboarding_dismissed=True, n_threads=2))
    window.show()
    ready = []
    start_up(ctx, window, load_model=True, on_ready=lambda: ready.append(1))

    def wait(pred, timeout=600):
        end = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > end:
                raise TimeoutError
            app.processEvents()
            time.sleep(0.005)

    wait(lambda: ready and ctx.inference.fingerprint)
    ctx.bank.add_rating(SAMPLE_PROFILE_NAME, "When will my card arrive?", "activate my card", "card arrival")
    ctx.bank_changed.emit(SAMPLE_PROFILE_NAME)
    window.rate_view.queue.clear()      # only our work on the inference thread while measuring
    warm = ModelJob(ctx, lambda job: job.session.engine_for(SAMPLE_PROFILE_NAME).index.encode_query("x")).run()
    wait(lambda: warm.done)

    gc_passes = []  # (start, seconds, generation) of every cyclic-GC pass while measuring
    gc_start = {}

    def on_gc(phase, info):
        if phase == "start":
            gc_start["t"] = time.perf_counter()
        elif "t" in gc_start:
            t = gc_start.pop("t")
            gc_passes.append((t, time.perf_counter() - t, info["generation"]))

    gc.callbacks.append(on_gc)
    ticks = []
    # A watchdog thread: when the GUI thread is over 80 ms late for its tick, it records where
    # every thread is, so a long gap names its cause (it needs the GIL too: a C call that holds
    # it shows as the frame right after it).
    stacks = []
    watching = threading.Event()
    gui_ident = threading.get_ident()

    def watchdog():
        noted = None
        while not watching.wait(0.01):
            last = ticks[-1] if ticks else None
            if last is not None and last != noted and time.perf_counter() - last > 0.08:
                noted = last
                frames = sys._current_frames()
                stacks.append({"gap_from": last, "threads": {
                    ("gui" if ident == gui_ident else str(ident)):
                        [f"{Path(f.filename).name}:{f.lineno} {f.name}"
                         for f in traceback.extract_stack(frame)[-4:]]
                    for ident, frame in frames.items() if ident != threading.get_ident()}})

    threading.Thread(target=watchdog, daemon=True).start()
    timer = QTimer()
    timer.setTimerType(Qt.PreciseTimer)
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    done = {}
    ticks.append(time.perf_counter())
    timer.start()
    t0 = time.perf_counter()
    (ModelJob(ctx, lambda job: job.session.engine_for(SAMPLE_PROFILE_NAME).decide("Where is my new card?"))
     .success(lambda t: done.setdefault("query_s", time.perf_counter() - t0)).run())
    (BankWrite(ctx, lambda job: formats.import_file(job.bank, native, "Imported"), profile="Imported")
     .success(lambda r: done.setdefault("import_s", time.perf_counter() - t0)).run())
    wait(lambda: len(done) == 2)
    timer.stop()
    ticks.append(time.perf_counter())
    gc.callbacks.remove(on_gc)
    watching.set()
    worst = max(zip(ticks, ticks[1:]), key=lambda ab: ab[1] - ab[0])
    in_worst = [(d, g) for t, d, g in gc_passes if t < worst[1] and t + d > worst[0]]
    gaps = sorted((b - a) * 1000 for a, b in zip(ticks, ticks[1:]))
    result = {"ticks": len(gaps), "max_ms": round(gaps[-1], 1), "p99_ms": round(gaps[int(0.99 * (len(gaps) - 1))], 1),
              "gc_passes": len(gc_passes),
              "gc_max_ms": round(max((d for _, d, _ in gc_passes), default=0) * 1000, 1),
              "gc_in_max_gap_ms": round(sum(d for d, _ in in_worst) * 1000, 1),
              "stacks_in_max_gap": [x["threads"] for x in stacks if x["gap_from"] == worst[0]],
              "median_ms": round(statistics.median(gaps), 1), "imported": ctx.bank.rating_count("Imported"),
              **{k: round(v, 2) for k, v in done.items()}}
    print("RESULT " + json.dumps(result), flush=True)
    window.shutdown()


def child_rss(stage: str) -> None:
    from PySide6.QtWidgets import QApplication

    from cm_desktop.app import create_app_window, start_up
    from cm_desktop.settings import Settings

    app = QApplication([])
    home = Path(os.environ["CM_DESKTOP_HOME"])
    ctx, window = create_app_window(home / "bank.sqlite3", settings=Settings(onboarding_dismissed=True, n_threads=2))
    window.show()
    start_up(ctx, window, load_model=True)
    end = time.monotonic() + 600
    rate = window.rate_view

    def reached():
        if stage == "loaded":
            return ctx.inference.fingerprint is not None
        return rate.current is not None and rate.current.trace is not None

    while not reached():
        if time.monotonic() > end:
            raise TimeoutError
        app.processEvents()
        time.sleep(0.01)
    print("RESULT " + json.dumps({"stage": stage, "torch": "torch" in sys.modules,
                                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}), flush=True)
    window.shutdown()


def _run_child(args: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as home:
        out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=_env(Path(home)),
                             cwd=REPO, timeout=900)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"child {args} failed:\n{out.stderr[-3000:]}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", choices=["stall", "rss-loaded", "rss-proposed"])
    parser.add_argument("--n-import", type=int, default=20_000)
    parser.add_argument("--stall-runs", type=int, default=1)
    args = parser.parse_args()
    if args.child == "stall":
        child_stall(args.n_import)
        return 0
    if args.child:
        child_rss(args.child.split("-")[1])
        return 0

    from cm_desktop.backends import default_model_path

    model_bytes = default_model_path().stat().st_size
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{platform.platform()}")
    start = bench_cold_start(3 if args.quick else 7)
    print(f"cold start: import PySide6.QtWidgets {start['baseline_s']:.2f} s, app window shown "
          f"{start['app_shown_s']:.2f} s  -> +{start['extra_s']:.2f} s ({start['ratio']:.2f}x)  [target <= +2 s]  "
          f"{start['imports_at_shown']}")
    for _ in range(args.stall_runs):
        stall = _run_child(["--child", "stall", "--n-import", str(args.n_import)])
        print(f"GUI stall during a CM query ({stall['query_s']} s) and a {stall['imported']}-rating import "
              f"({stall['import_s']} s): p99 {stall['p99_ms']} ms, max {stall['max_ms']} ms, median "
              f"{stall['median_ms']} ms over {stall['ticks']} ticks of a 10 ms timer; "
              f"{stall['gc_passes']} GC passes, longest {stall['gc_max_ms']} ms, "
              f"{stall['gc_in_max_gap_ms']} ms of GC inside the longest gap  "
              f"[target p99 <= 50 ms, max <= 100 ms]")
    for stage in ("loaded", "proposed"):
        rss = _run_child(["--child", f"rss-{stage}"])
        ratio = rss["maxrss_kib"] * 1024 / model_bytes
        print(f"peak RSS, model {stage}: {rss['maxrss_kib'] / 1024:.0f} MiB vs model file "
              f"{model_bytes / 2**20:.0f} MiB -> {ratio:.2f}x (torch imported: {rss['torch']})  [target <= 3x]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
