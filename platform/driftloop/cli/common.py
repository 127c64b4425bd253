"""Helpers shared by CLI modules: months, progress bars."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from driftloop.months import month_range, parse_month

__all__ = ["month_range", "parse_month", "progress"]


@contextmanager
def progress(description: str, total: float | None = None) -> Iterator[Progress]:
    """A rich progress bar on stderr; ``bar.update(task_id, advance=n)`` inside."""
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        transient=False,
    ) as bar:
        bar.add_task(description, total=total)
        yield bar
