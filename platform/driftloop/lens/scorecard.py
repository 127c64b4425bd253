"""The scorecard: the entries of ``lens.yaml`` in the lens's order, counted per pillar and
status."""

from __future__ import annotations

from dataclasses import dataclass

from driftloop.errors import InvalidInputError
from driftloop.lens.document import STATUSES, Entry
from driftloop.lens.practices import PILLARS, PRACTICES, Practice


@dataclass(frozen=True)
class PillarCount:
    prefix: str
    name: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class Scorecard:
    """Every practice with its entry, in the lens's order."""

    rows: tuple[tuple[Practice, Entry], ...]

    @classmethod
    def of(cls, entries: dict[str, Entry]) -> Scorecard:
        """The scorecard of ``entries``; InvalidInputError naming the first practice without one
        (run ``driftloop lens check`` for every problem)."""
        missing = [p.id for p in PRACTICES if p.id not in entries]
        if missing:
            raise InvalidInputError(
                f"lens.yaml has no entry for {missing[0]} ({len(missing)} practice(s) without "
                "one): run `driftloop lens check`"
            )
        return cls(tuple((p, entries[p.id]) for p in PRACTICES))

    def pillars(self) -> list[PillarCount]:
        out = []
        for prefix, name in PILLARS.items():
            counts = dict.fromkeys(STATUSES, 0)
            for practice, entry in self.rows:
                if practice.prefix == prefix:
                    counts[entry.status] += 1
            out.append(PillarCount(prefix, name, counts))
        return out

    def totals(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for _, entry in self.rows:
            counts[entry.status] += 1
        return counts

    def with_status(self, status: str) -> list[Practice]:
        return [p for p, e in self.rows if e.status == status]
