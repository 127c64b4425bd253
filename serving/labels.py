"""What a replica remembers so that labels cannot steer the loop: the requests it served and the
labels it saw, both bounded in memory.

* :class:`ServedIndex`: request id -> rows served, filled on the inference path (one dict write
  under a lock per request) and consulted when a label arrives; a label is accepted only for a
  row below its request's row count. On a miss (the request was served by another replica, or
  before a restart, or evicted) :func:`driftloop.data.capture.served_row_counts` looks in the
  prediction files of the last days; what it finds is remembered here. Request ids are chosen
  by callers: an id served twice is *ambiguous* (:data:`AMBIGUOUS`) and stays so, whatever the
  row counts, because its prediction ids name rows of both requests: labels for it are refused
  (409). The index sees the requests of this replica (and what the files held when looked up);
  the canary drops reused ids from its evidence on its own.
* :class:`LabelMemory`: prediction id -> the first label this replica saw for it, to tell the
  caller how many of its labels were conflicts. The authoritative count over every replica is
  :func:`driftloop.data.capture.feedback_conflicts` on the files.

Both evict the oldest entry first (FIFO) once full, so a flood of requests costs bounded memory;
an evicted request falls back to the files.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from driftloop.data.capture import AMBIGUOUS

#: Requests remembered per replica (~200 bytes each: ~20 MB).
SERVED_INDEX_SIZE = 100_000
#: Prediction ids whose first label is remembered per replica.
LABEL_MEMORY_SIZE = 200_000


class ServedIndex:
    """Bounded request id -> row count of the requests this replica served (or found), or
    :data:`AMBIGUOUS` for an id that more than one request used."""

    def __init__(self, capacity: int = SERVED_INDEX_SIZE) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._rows: dict[str, int] = {}
        # shadow scoring records from a worker thread: evicting is two steps, so lock
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    def _put(self, request_id: str, rows: int) -> None:
        self._rows[request_id] = rows
        if len(self._rows) > self.capacity:
            del self._rows[next(iter(self._rows))]

    def add(self, request_id: str, rows: int) -> None:
        """Remember a served request (call once per request): an id already known becomes
        ambiguous, whatever either row count."""
        with self._lock:
            if request_id in self._rows:
                self._rows[request_id] = AMBIGUOUS
            else:
                self._put(request_id, rows)

    def update(self, found: Mapping[str, int]) -> None:
        """Merge what the capture files hold (:func:`driftloop.data.capture.served_row_counts`):
        an unknown id is remembered; a known one with another row count (or ambiguous there)
        becomes ambiguous. The same count is taken for the same request (the files may hold
        this replica's own)."""
        with self._lock:
            for request_id, rows in found.items():
                known = self._rows.get(request_id)
                if known is None:
                    self._put(request_id, rows)
                elif known != rows:
                    self._rows[request_id] = AMBIGUOUS

    def rows(self, request_id: str) -> int | None:
        """Rows served for ``request_id`` (:data:`AMBIGUOUS` when more than one request used
        it); None when it is not in the index."""
        return self._rows.get(request_id)

    def is_ambiguous(self, request_id: str) -> bool:
        return self._rows.get(request_id) == AMBIGUOUS


class LabelMemory:
    """Bounded prediction id -> first label seen on this replica."""

    def __init__(self, capacity: int = LABEL_MEMORY_SIZE) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._labels: dict[str, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._labels)

    def record(self, labels: Iterable[tuple[str, int]]) -> int:
        """Remember first labels; returns how many of ``labels`` differ from a label seen
        before (conflicts; a repeat of the same label is none)."""
        conflicts = 0
        with self._lock:
            for prediction_id, label in labels:
                first = self._labels.get(prediction_id)
                if first is None:
                    self._labels[prediction_id] = label
                    if len(self._labels) > self.capacity:
                        del self._labels[next(iter(self._labels))]
                elif first != label:
                    conflicts += 1
        return conflicts
