"""Child process of test_two_writers: writes to the bank the way the GUI does.

Usage: gui_writer.py BANK PROFILE N OTHER_PREFIX
The bank object is opened on the main thread (as the app does at start-up); one worker thread
adds N ratings, one `add_rating` call each (one per click in the Rate view); a second worker
re-reads the bank while that goes on (the Bank view refreshing). Writing starts once a rating
from the other writer (instances starting with OTHER_PREFIX) is visible, so the two really
overlap. Prints one JSON line: ids added, samples of (own added, other's seen), errors.
Exit 0 only if nothing failed.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback


def main() -> int:
    bank_path, profile, n, other_prefix = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    from bank_store import DiscrepancyBank

    bank = DiscrepancyBank(bank_path)
    responses = bank.get_profile(profile).responses
    errors: list[str] = []
    ids: list[str] = []
    samples: list[tuple[int, int]] = []
    first_write_saw: list[int] = []
    done = threading.Event()

    def others_seen() -> int:
        return sum(r.instance.startswith(other_prefix) for r in bank.ratings(profile))

    def write():
        try:
            deadline = time.monotonic() + 60
            while others_seen() == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            # How far the other writer was when our first write was issued: below N, the two
            # contended for the lock (SQLite's lock is not fair, so our first commit may still
            # wait until the other is done; what matters is that it waits without an error).
            first_write_saw.append(others_seen())
            for i in range(n):
                rating = bank.add_rating(profile, f"gui query {i}", responses[i % len(responses)],
                                         responses[(i * 3) % len(responses)], strategy="vanilla")
                ids.append(rating.id)
        except Exception:
            errors.append(traceback.format_exc())
        finally:
            bank.close()
            done.set()

    def watch():
        try:
            while not done.is_set():
                samples.append((len(ids), others_seen()))
                time.sleep(0.05)
        except Exception:
            errors.append(traceback.format_exc())
        finally:
            bank.close()

    threads = [threading.Thread(target=write), threading.Thread(target=watch)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"ids": ids, "samples": samples, "errors": errors,
                      "other_seen_at_first_write": first_write_saw[0] if first_write_saw else None}),
          flush=True)
    for e in errors:
        print(e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
