"""The floor for driftloop's inference route: a bare FastAPI OIP v2 endpoint doing the same
useful work and nothing else (no routing, capture, metrics, auth, limits).

Per request it reads the raw body, parses and validates it with pydantic
(``model_validate_json``: the v2 request shape, one tensor per column), hands the columns to
the champion's own model (``predict_proba``: the 4 categorical lookups, numeric scaling, the MLP
and the calibration, loaded from the same registered version's artifacts) and answers a v2
response (orjson) with ``late_probability`` and ``is_late``. :mod:`benchmarks.serving` runs it
next to driftloop and ``mlflow models serve`` and reports driftloop's throughput as a share of
it.

``--runtime serving`` (default) scores with what serving runs for the version
(:func:`driftloop.training.pyfunc.load_serving_model`: the NumPy runtime of
:mod:`driftloop.inference`), so the two differ only in what serving adds around the model;
``--runtime torch`` with the torch model (:class:`driftloop.training.bundle.ModelBundle`), the
floor as it was first measured, when serving ran torch too.

Usage (the benchmark starts it; by hand)::

    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 \
        python benchmarks/bare_endpoint.py --model models:/flight-delay/1 --port 8090
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]

import numpy as np  # noqa: E402
import orjson  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse, Response  # noqa: E402
from pydantic import BaseModel, ConfigDict, ValidationError  # noqa: E402

from driftloop.training.bundle import ModelBundle  # noqa: E402


class Tensor(BaseModel):
    """One input column (OIP v2 tensor)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class V2Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[Tensor]


class Scorer(Protocol):
    def predict_proba(self, columns: Any) -> np.ndarray: ...


def load_bundle(model_uri: str, runtime: str = "serving") -> tuple[Scorer, float]:
    """The model of ``model_uri`` on ``runtime`` and its decision threshold: a registered
    version (``models:/<name>/<version>``) is loaded verified, as serving loads it, with the
    version's threshold; anything else (a run's model) through its plain pyfunc, threshold 0.5."""
    from driftloop.registry.client import decision_threshold, get_version
    from driftloop.training.pyfunc import load_python_model, load_serving_model

    name, _, version = model_uri.removeprefix("models:/").partition("/")
    if model_uri.startswith("models:/") and version.isdigit():
        threshold = decision_threshold(get_version(version, None, name))[0]
        if runtime == "torch":
            return load_python_model(model_uri).bundle, threshold
        return load_serving_model(model_uri), threshold
    import mlflow.pyfunc

    bundle: ModelBundle = mlflow.pyfunc.load_model(model_uri).unwrap_python_model().bundle
    return (bundle if runtime == "torch" else bundle.to_numpy()), 0.5


def create_app(bundle: Scorer, threshold: float) -> FastAPI:
    app = FastAPI()

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> Response:
        try:
            req = V2Request.model_validate_json(await request.body())
        except ValidationError as err:
            return JSONResponse({"error": str(err.errors()[0]["msg"])}, status_code=400)
        columns = {t.name: t.data for t in req.inputs}
        probs = bundle.predict_proba(columns)
        n = len(probs)
        labels = (probs >= threshold).astype(np.int64)
        return Response(
            orjson.dumps(
                {
                    "model_name": name,
                    "model_version": "bare",
                    "id": req.id or "",
                    "outputs": [
                        {
                            "name": "late_probability",
                            "shape": [n],
                            "datatype": "FP64",
                            "data": probs.tolist(),
                        },
                        {
                            "name": "is_late",
                            "shape": [n],
                            "datatype": "INT64",
                            "data": labels.tolist(),
                        },
                    ],
                }
            ),
            media_type="application/json",
        )

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="models:/<name>/<version> (MLFLOW_TRACKING_URI)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--runtime", choices=["serving", "torch"], default="serving")
    args = p.parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    bundle, threshold = load_bundle(args.model, args.runtime)
    bundle.predict_proba({c: [v] for c, v in _example().items()})  # first-call costs
    uvicorn.run(
        create_app(bundle, threshold),
        host=args.host,
        port=args.port,
        workers=1,
        access_log=False,
        log_level="warning",
    )
    return 0


def _example() -> dict[str, Any]:
    from serving.examples import ROW

    return dict(ROW)


if __name__ == "__main__":
    raise SystemExit(main())
