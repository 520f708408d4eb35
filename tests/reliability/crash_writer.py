"""Child process of test_crash_safety: adds ratings until it is killed.

Usage: crash_writer.py BANK PROFILE TAG
Prints "ready" once the bank is open, then one rating id per line, flushed, each only after
`add_rating` has returned: a printed id is a rating the caller was told is saved. Every tenth
step adds a batch of BATCH ratings with `add_ratings` and prints "batch ID,ID,..." after it
returns; its instances are "TAG batch I item K", so a half-stored batch is visible.
"""

from __future__ import annotations

import sys

BATCH = 20


def main() -> None:
    bank_path, profile, tag = sys.argv[1:4]
    from bank_store import DiscrepancyBank, Rating

    bank = DiscrepancyBank(bank_path)
    responses = bank.get_profile(profile).responses
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    i = 0
    while True:
        if i % 10 == 9:
            # Every tenth step a batch (an import's shape): one transaction, all or nothing.
            batch = [Rating.new(f"{tag} batch {i} item {k}", responses[k % len(responses)],
                                responses[(k + i) % len(responses)], source="imported")
                     for k in range(BATCH)]
            bank.add_ratings(profile, batch)
            out.write("batch " + ",".join(r.id for r in batch) + "\n")
            out.flush()
            i += 1
            continue
        model_response = responses[i % len(responses)]
        # Mostly agreements, some discrepancies: both kinds of count rows get written.
        user_response = responses[(i * 7 // 3) % len(responses)]
        rating = bank.add_rating(profile, f"{tag} query {i}", model_response, user_response,
                                 source="rated", strategy="vanilla")
        out.write(rating.id + "\n")
        out.flush()
        i += 1


if __name__ == "__main__":
    main()
