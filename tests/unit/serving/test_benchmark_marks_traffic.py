"""benchmarks/serving.py marks every request it sends to a server as synthetic (issue 14.6):
its batch and flight bodies were not marked, so a benchmark run's 1,000-row batches were
captured as live traffic and explained by the sampled-explanation thread (seen in a py-spy
profile of the batch phase). Static: the benchmark itself needs three servers and minutes."""

from __future__ import annotations

import ast
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[3] / "benchmarks" / "serving.py"
BODY_BUILDERS = {"features_request", "flight_request"}


def _marked(call: ast.Call, marks: set[str]) -> bool:
    for kw in call.keywords:
        if kw.arg == "synthetic":
            return True
        if kw.arg is None and isinstance(kw.value, ast.Name) and kw.value.id in marks:
            return True
    return False


def test_every_request_body_of_the_benchmark_is_marked_synthetic() -> None:
    main = ast.parse(BENCHMARK.read_text())  # (the forward-pass child's code is a string)
    marks = {
        t.id
        for n in ast.walk(main)
        if isinstance(n, ast.Assign)
        and isinstance(n.value, ast.Dict)
        and any(isinstance(k, ast.Constant) and k.value == "synthetic" for k in n.value.keys)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    calls = [
        n
        for n in ast.walk(main)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in BODY_BUILDERS
    ]
    assert len(calls) >= 3  # the single-row, flight and batch bodies
    unmarked = [f"line {c.lineno}" for c in calls if not _marked(c, marks)]
    assert not unmarked, f"request bodies not marked synthetic: {unmarked}"
