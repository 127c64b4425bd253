"""Model runtime benchmark: serving's NumPy runtime (:mod:`driftloop.inference`) against the torch
model it replaced in serving, in one command: memory, load time, scoring and explanation.

A model of the demo's architecture (embeddings of carrier/origin/dest/plane_type, 16 numerics
with missing indicators, MLP 128-64, Platt calibration) is saved once as training saves it
(``weights.pt`` and ``weights.npz``); weights are random (speed and memory do not depend on
them). Each runtime then runs in fresh child processes, in turn for ``--rounds`` rounds:

- ``torch``: :class:`driftloop.training.bundle.ModelBundle` (what the pyfunc wraps) and Captum
  integrated gradients (:class:`driftloop.training.explain.IntegratedGradientsExplainer`);
- ``numpy``: :class:`driftloop.inference.model.NumpyModel` and its integrated gradients.

Per child: seconds to import and load, RSS after (VmRSS, MB), then median microseconds of
``predict_proba`` on 1, 10, 100 and 1,000 rows (request columns, as serving passes them) and of
``explain`` on 1 and 100 rows at 50 steps. A third pair of children imports feast as serving
does (through :mod:`driftloop.features`, which defers feast's torch import) and plainly, to show
what that import costs. Medians over rounds; ratios numpy / torch.

Usage::

    python benchmarks/model_runtime.py [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PATHS = [str(ROOT / "platform"), str(ROOT)]
sys.path[:0] = PATHS

SIZES = (1, 10, 100, 1000)
EXPLAIN_SIZES = (1, 100)

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
kind, folder = sys.argv[1], sys.argv[2]
sys.path[:0] = sys.argv[3:]
from pathlib import Path
if kind == "torch":
    from driftloop.training.bundle import ModelBundle
    from driftloop.training.explain import IntegratedGradientsExplainer
    model = ModelBundle.load(Path(folder))
    explainer = IntegratedGradientsExplainer(model, 50)
    explain = explainer.explain
else:
    from driftloop.inference.model import NumpyModel
    model = NumpyModel.load(Path(folder))
    explain = lambda cols: model.explain(cols, 50)
from serving.examples import features_request
load_s = time.perf_counter() - t0
def rss():
    fields = dict(l.split(":", 1) for l in open("/proc/self/status"))
    return int(fields["VmRSS"].split()[0]) / 1024
rss_loaded = rss()
def median_us(fn, reps):
    for _ in range(5):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2] * 1e6
cols = lambda n: {t["name"]: t["data"] for t in features_request(n)["inputs"]}
out = {"load_s": load_s, "rss_mb": rss_loaded, "predict_us": {}, "explain_us": {}}
for n in (1, 10, 100, 1000):
    c = cols(n)
    out["predict_us"][n] = median_us(lambda: model.predict_proba(c), 300 if n < 1000 else 100)
for n in (1, 100):
    c = cols(n)
    out["explain_us"][n] = median_us(lambda: explain(c), 30 if n == 1 else 10)
out["rss_after_mb"] = rss()
print(json.dumps(out))
"""

FEAST_CHILD = r"""
import json, sys, time
sys.path[:0] = sys.argv[2:]
t0 = time.perf_counter()
if sys.argv[1] == "deferred":
    import driftloop.features
import feast, feast.online_response
seconds = time.perf_counter() - t0
fields = dict(l.split(":", 1) for l in open("/proc/self/status"))
print(json.dumps({"import_s": seconds, "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
                  "torch": "torch" in sys.modules}))
"""


def save_model(folder: Path) -> Path:
    """A bundle of the demo's architecture with random weights, saved as training saves it."""
    import numpy as np
    import pandas as pd

    from driftloop.inference.calibration import Calibration
    from driftloop.inference.preprocessing import Preprocessor
    from driftloop.schema import NUMERIC_COLUMNS
    from driftloop.training.bundle import ModelBundle
    from driftloop.training.model import ModelConfig, TabularNet

    rng = np.random.default_rng(0)
    rows = 20_000
    frame = pd.DataFrame(
        {
            "carrier": rng.choice([f"C{i}" for i in range(16)], rows),
            "origin": rng.choice(["EWR", "JFK", "LGA"], rows),
            "dest": rng.choice([f"D{i}" for i in range(100)], rows),
            "plane_type": rng.choice(["Fixed wing multi engine", "Rotorcraft", None], rows),
            **{c: rng.normal(size=rows) for c in NUMERIC_COLUMNS},
        }
    )
    pre = Preprocessor.fit(frame)
    net = TabularNet(ModelConfig(pre.cardinalities, pre.n_numeric)).eval()
    calibration = Calibration(slope=1.1, intercept=-0.1, method="platt")
    return ModelBundle(net, pre, calibration).save(folder)


def child(code: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", code, *args, *PATHS],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _median(runs: list[dict[str, Any]], *path: str) -> float:
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value[key]
        values.append(float(value))
    return statistics.median(values)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="Child processes per runtime.")
    p.add_argument("--json", type=Path, help="Also write the results here.")
    args = p.parse_args(argv)
    runs: dict[str, list[dict[str, Any]]] = {"torch": [], "numpy": []}
    feast_runs: dict[str, list[dict[str, Any]]] = {"eager": [], "deferred": []}
    with tempfile.TemporaryDirectory(prefix="driftloop-runtime-") as tmp:
        folder = save_model(Path(tmp) / "bundle")
        for _ in range(args.rounds):  # in turn: load on a shared machine falls on both alike
            for kind in runs:
                runs[kind].append(child(CHILD, kind, str(folder)))
            for kind in feast_runs:
                feast_runs[kind].append(child(FEAST_CHILD, kind))
    print(
        f"model runtime: torch (what serving ran) vs NumPy (what it runs now), "
        f"median of {args.rounds} child processes each\n"
    )
    print(f"{'':<34}{'torch':>12}{'numpy':>12}{'numpy/torch':>13}")

    def line(label: str, *path: str, fmt: str = "{:.1f}") -> dict[str, float]:
        t, n = _median(runs["torch"], *path), _median(runs["numpy"], *path)
        print(f"{label:<34}{fmt.format(t):>12}{fmt.format(n):>12}{n / t:>13.2f}")
        return {"torch": t, "numpy": n, "ratio": n / t}

    results: dict[str, Any] = {
        "load_s": line("import + load (s)", "load_s", fmt="{:.2f}"),
        "rss_mb": line("RSS after load (MB)", "rss_mb", fmt="{:.0f}"),
        "rss_after_mb": line("RSS after the runs (MB)", "rss_after_mb", fmt="{:.0f}"),
        "predict_us": {},
        "explain_us": {},
    }
    for n in SIZES:
        results["predict_us"][n] = line(f"predict_proba {n} rows (us)", "predict_us", str(n))
    for n in SIZES[1:]:
        per_row = {k: _median(runs[k], "predict_us", str(n)) / n for k in runs}
        print(
            f"{f'  per row at {n} rows (us)':<34}{per_row['torch']:>12.2f}"
            f"{per_row['numpy']:>12.2f}{per_row['numpy'] / per_row['torch']:>13.2f}"
        )
    for n in EXPLAIN_SIZES:
        results["explain_us"][n] = line(f"explain {n} rows, 50 steps (us)", "explain_us", str(n))
    eager_mb = _median(feast_runs["eager"], "rss_mb")
    deferred_mb = _median(feast_runs["deferred"], "rss_mb")
    eager_s = _median(feast_runs["eager"], "import_s")
    deferred_s = _median(feast_runs["deferred"], "import_s")
    print(
        f"\nimport feast: plainly {eager_mb:.0f} MB, {eager_s:.2f} s (torch imported: "
        f"{feast_runs['eager'][0]['torch']}); through driftloop.features {deferred_mb:.0f} MB, "
        f"{deferred_s:.2f} s (torch imported: {feast_runs['deferred'][0]['torch']}); "
        f"ratio {deferred_mb / eager_mb:.2f} (RSS), {deferred_s / eager_s:.2f} (time)"
    )
    results["feast_import"] = {
        "eager": {"rss_mb": eager_mb, "import_s": eager_s},
        "deferred": {"rss_mb": deferred_mb, "import_s": deferred_s},
    }
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
