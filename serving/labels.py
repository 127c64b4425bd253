"""What a replica remembers so that labels cannot steer the loop: the requests it served and the
labels it saw, both bounded in memory.

* :class:`ServedIndex`: request id -> rows served, filled on the inference path (one dict write
  under a lock per request) and consulted when a label arrives; a label is accepted only for a
  row below its request's row count. On a miss (the request was served by another replica, or
  before a restart, or evicted) :func:`driftloop.data.capture.served_row_counts` looks in the
  prediction files of the last days; what it finds is remembered here.
* :class:`LabelMemory`: prediction id -> the first label this replica saw for it, to tell the
  caller how many of its labels were conflicts. The authoritative count over every replica is
  :func:`driftloop.data.capture.feedback_conflicts` on the files.

Both evict the oldest entry first (FIFO) once full, so a flood of requests costs bounded memory;
an evicted request falls back to the files.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

#: Requests remembered per replica (~200 bytes each: ~20 MB).
SERVED_INDEX_SIZE = 100_000
#: Prediction ids whose first label is remembered per replica.
LABEL_MEMORY_SIZE = 200_000


class ServedIndex:
    """Bounded request id -> row count of the requests this replica served (or found)."""

    def __init__(self, capacity: int = SERVED_INDEX_SIZE) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._rows: dict[str, int] = {}
        # shadow scoring records from a worker thread: evicting is two steps, so lock
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, request_id: str, rows: int) -> None:
        """Remember a served request (a reused id keeps its largest row count)."""
        with self._lock:
            known = self._rows.get(request_id)
            if known is None:
                self._rows[request_id] = rows
                if len(self._rows) > self.capacity:
                    del self._rows[next(iter(self._rows))]
            elif rows > known:
                self._rows[request_id] = rows

    def update(self, found: dict[str, int]) -> None:
        for request_id, rows in found.items():
            self.add(request_id, rows)

    def rows(self, request_id: str) -> int | None:
        """Rows served for ``request_id``; None when it is not in the index."""
        return self._rows.get(request_id)


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
