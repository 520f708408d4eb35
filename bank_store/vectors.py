"""Per-rating vectors: the embeddings cache and the model's distributions (what it believed when
a rating was made), stored as float32 blobs on the ratings' rows. Part of DiscrepancyBank."""

from __future__ import annotations

import sqlite3
from typing import Any, Sequence

import numpy as np

from .errors import BankError, DistributionError
from .records import Profile, check_text, responses_digest

DISTRIBUTION_COLUMNS = "model_distribution = ?, model_distribution_key = ?"


def _stacked(rows: Sequence[tuple[str, bytes]], width: int) -> tuple[list[str], np.ndarray]:
    """(ids, (n, width) float32) from (rating id, blob) rows whose blobs are width floats each."""
    if not rows:
        return [], np.zeros((0, width), dtype=np.float32)
    matrix = np.frombuffer(b"".join(blob for _, blob in rows), dtype=np.float32)
    return [rid for rid, _ in rows], matrix.reshape(len(rows), width).copy()


class VectorsMixin:
    """Needs `_txn` and `_get_profile` (DiscrepancyBank's)."""

    # ---- embeddings cache -----------------------------------------------------------------------

    def set_embeddings(self, profile: str, vectors: dict[str, np.ndarray], model: str) -> int:
        """Store float32 embeddings by rating id; ids no longer present are skipped.
        Returns how many ratings were updated."""
        check_text(model, "embedding model")
        blobs = []
        dim = None
        for rid, vec in vectors.items():
            arr = np.asarray(vec, dtype=np.float32)
            if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
                raise BankError(f"embedding for rating {rid!r} must be a finite 1-D vector")
            if dim is not None and arr.size != dim:
                raise BankError(f"embedding for rating {rid!r} has {arr.size} values, "
                                f"the others {dim}")
            dim = arr.size
            blobs.append((arr.tobytes(), model, rid))
        with self._txn(write=True) as conn:
            p = self._get_profile(conn, profile)
            return self._update_ratings(conn, p, "embedding = ?, embedding_model = ?", blobs)

    @staticmethod
    def _update_ratings(conn: sqlite3.Connection, p: Profile, assignments: str,
                        rows: Sequence[tuple]) -> int:
        """UPDATE ratings SET `assignments` for each row (its values, then the rating id) among
        the profile's ratings; ids no longer present are skipped. Returns how many changed."""
        before = conn.total_changes
        conn.executemany(f"UPDATE ratings SET {assignments}"
                         f" WHERE profile_id = {int(p.id)} AND id = ?", rows)
        return conn.total_changes - before

    def embeddings(self, profile: str, model: str) -> tuple[list[str], np.ndarray]:
        with self._txn(write=False) as conn:
            p = self._get_profile(conn, profile)
            rows = conn.execute("SELECT id, embedding FROM ratings WHERE profile_id = ? AND"
                                " embedding_model = ? AND embedding IS NOT NULL ORDER BY seq",
                                (p.id, model)).fetchall()
        sizes = {len(blob) for _, blob in rows}
        if len(sizes) > 1:
            raise BankError(f"stored embeddings for model {model!r} differ in size; "
                            "recompute them")
        return _stacked(rows, sizes.pop() // 4 if sizes else 0)

    # ---- the model's distributions (what it believed when a rating was made) -----------------

    def set_model_distributions(self, profile: str, vectors: dict[str, Any]) -> int:
        """Store p(y'|x) by rating id, one value per response of the profile's current set, in its
        order (float32); ids no longer present are skipped. Returns how many were updated.
        DistributionError, and nothing written, where one does not fit the response set."""
        with self._txn(write=True) as conn:
            p = self._get_profile(conn, profile)
            blobs = [self._distribution_row(p, rid, vec) for rid, vec in vectors.items()]
            return self._update_ratings(conn, p, DISTRIBUTION_COLUMNS, blobs)

    @staticmethod
    def _distribution_row(p: Profile, rid: str, vec: Any) -> tuple[bytes, str, str]:
        """The one check of a model distribution: (blob, response-set key, rating id)."""
        try:
            arr = np.asarray(vec, dtype=np.float32)
        except (TypeError, ValueError):
            raise DistributionError(f"model distribution for rating {rid!r} must be "
                                    "numbers") from None
        if (arr.ndim != 1 or arr.size != len(p.responses) or not np.all(np.isfinite(arr))
                or np.any(arr < 0) or not arr.sum() > 0):
            raise DistributionError(f"model distribution for rating {rid!r} must be "
                                    f"{len(p.responses)} finite non-negative numbers, not all 0")
        return arr.tobytes(), responses_digest(p.responses), str(rid)

    def model_distributions(self, profile: str) -> tuple[list[str], np.ndarray]:
        """(rating ids, (n, |R|) float32) for the ratings whose stored distribution was made over
        the profile's current response set, oldest first."""
        with self._txn(write=False) as conn:
            p = self._get_profile(conn, profile)
            rows = conn.execute("SELECT id, model_distribution FROM ratings WHERE profile_id = ?"
                                " AND model_distribution_key = ? ORDER BY seq",
                                (p.id, responses_digest(p.responses))).fetchall()
        r = len(p.responses)
        return _stacked([(rid, blob) for rid, blob in rows if len(blob) == 4 * r], r)
