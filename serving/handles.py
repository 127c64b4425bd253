"""Model handles and the reconciler that keeps them in line with the registry.

The registry is the single source of truth: alias ``champion``, alias ``challenger`` and the
registered-model tags ``driftloop.canary_weight`` / ``driftloop.canary_mode``. Every
``reconcile_interval_s`` the reconciler reads them (one registry call), loads any version it does
not hold yet in a worker thread (never on the event loop), and then swaps one immutable
:class:`ServingState` reference: a request holds the state it started with, so a swap never fails
a request. Loaded handles are kept by version, so a promotion (challenger becomes champion) needs
no reload. When the registry is unreachable the last good state keeps serving and readiness
reports ``degraded``; a challenger that fails to load gets no traffic (retried after a while).

The champion never disappears by accident: when the ``champion`` alias vanishes, or points at a
version that cannot be loaded or whose artifact fails its integrity check
(:mod:`driftloop.registry.integrity`), the last good champion keeps serving and readiness reports
``degraded`` with the reason. A refused artifact is listed in ``refused`` and audited
(``artifact_refused``) once per version and reason.

Each handle carries its version's decision threshold (tag ``driftloop.threshold``, chosen on
the version's holdout under ``settings.kpi``'s error costs; 0.5 with source ``default`` for a
version registered without one), read once when the version is loaded: ``is_late`` costs a
comparison per row, nothing per request. A version whose tag is not a probability is not loaded.
Its lineage id (:func:`driftloop.data.capture.lineage_id`) is computed at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from driftloop.data.capture import version_lineage_id
from driftloop.errors import ModelIntegrityError
from driftloop.inference.model import NumpyModel, fast_scorer, load_verified
from driftloop.registry.client import (
    DEFAULT_THRESHOLD,
    THRESHOLD_DEFAULT,
    RegistrySnapshot,
    decision_threshold,
    get_version,
    registry_snapshot,
)
from driftloop.schema import MODEL_INPUT_COLUMNS, OUTPUT_PROBABILITY
from driftloop.settings import Settings
from serving.examples import ROW

logger = logging.getLogger(__name__)

#: A version that failed to load is retried after this many seconds.
LOAD_RETRY_S = 60.0


@dataclass(frozen=True)
class ModelHandle:
    """One loaded model version; ``predict(df) -> probabilities`` (float64 array)."""

    name: str
    version: str
    predict: Callable[[Any], np.ndarray]
    loaded_at: float = field(default_factory=time.time)
    fast_path: bool = False
    #: ``predict`` takes the request's columns (name -> list/array) as they are; otherwise it
    #: gets a DataFrame of MODEL_INPUT_COLUMNS
    takes_columns: bool = False
    #: ``is_late`` when the probability is >= this; where it came from (``version``: the
    #: version's tag, ``default``: registered without one)
    threshold: float = DEFAULT_THRESHOLD
    threshold_source: str = THRESHOLD_DEFAULT
    #: :func:`driftloop.data.capture.lineage_id` of the version, computed once at load: every
    #: response and capture row carries it (empty for a handle built without the registry)
    lineage_id: str = ""
    #: ``explain(columns or frame, n_steps)`` -> per-feature attributions of each row
    #: (:mod:`serving.explain`); None for a model that cannot explain its predictions
    explain: Callable[[Any, int], Any] | None = None
    #: what runs the version: ``numpy`` (:class:`~driftloop.inference.model.NumpyModel`, no
    #: pickle, no torch) or ``pyfunc`` (the MLflow pyfunc: versions saved before weights.npz)
    runtime: str = "pyfunc"


@dataclass(frozen=True)
class ServingState:
    """What serves right now (immutable; replaced as a whole by the reconciler)."""

    champion: ModelHandle | None = None
    challenger: ModelHandle | None = None
    weight: int = 0
    mode: str = "canary"

    def versions(self) -> dict[str, ModelHandle]:
        out = {}
        for handle in (self.champion, self.challenger):
            if handle is not None:
                out[handle.version] = handle
        return out


def load_handle(name: str, version: str, settings: Settings) -> ModelHandle:
    """Load ``models:/name/version`` from a local copy whose content hash matched the one
    recorded at registration (ModelIntegrityError otherwise: nothing is read). A driftloop
    version runs on NumPy (:class:`~driftloop.inference.model.NumpyModel`: no pickle, no
    torch); one saved before its ``weights.npz`` existed, or another pyfunc, loads as a pyfunc,
    using ``predict_proba`` of the unwrapped python model when it has one (fast path, no schema
    enforcement), else ``predict``. The handle gets the version's decision threshold."""
    info = get_version(version, settings, name)
    threshold, source = decision_threshold(info)
    lineage = version_lineage_id(info)
    model = load_verified(f"models:/{name}/{version}", settings)
    inner = fast_scorer(model)
    if inner is not None:
        proba = inner.predict_proba

        def predict(df: pd.DataFrame) -> np.ndarray:
            return np.asarray(proba(df), dtype=np.float64).reshape(-1)

        takes_columns = getattr(inner, "accepts_columns", False) is True  # driftloop's model
        explain = getattr(inner, "explain", None)
        return warm_up(
            ModelHandle(
                name,
                version,
                predict,
                fast_path=True,
                takes_columns=takes_columns,
                threshold=threshold,
                threshold_source=source,
                lineage_id=lineage,
                explain=explain if callable(explain) else None,
                runtime="numpy" if isinstance(model, NumpyModel) else "pyfunc",
            )
        )

    def predict_slow(df: pd.DataFrame) -> np.ndarray:
        out = model.predict(df[MODEL_INPUT_COLUMNS])
        if isinstance(out, pd.DataFrame):
            col = OUTPUT_PROBABILITY if OUTPUT_PROBABILITY in out.columns else out.columns[0]
            probabilities: np.ndarray = out[col].to_numpy(dtype=np.float64)
            return probabilities
        return np.asarray(out, dtype=np.float64).reshape(-1)

    slow = ModelHandle(
        name,
        version,
        predict_slow,
        threshold=threshold,
        threshold_source=source,
        lineage_id=lineage,
    )
    return warm_up(slow)


#: Warm-up calls (1 row and a small batch) before a freshly loaded version gets traffic.
WARM_UP_ROWS = (1, 8, 1)


def warm_up(handle: ModelHandle) -> ModelHandle:
    """Score the example row a few times (and explain it once) before the handle is swapped in,
    so the first live requests do not pay torch's, pandas' and Captum's first-call costs (they
    would show as a p95 spike of a fresh challenger in its canary). A failure is logged, not
    raised: whether the version is fit to serve is the rollout's judgement, on live traffic."""
    example = pd.DataFrame([{c: ROW[c] for c in MODEL_INPUT_COLUMNS}])
    started = time.perf_counter()
    try:
        for n in WARM_UP_ROWS:
            handle.predict(pd.concat([example] * n, ignore_index=True))
        if handle.explain is not None:
            # builds the explainer now (and, for a pyfunc version, imports Captum): the first
            # sampled explanation did it in a thread under the GIL, a ~0.5 s stall of every
            # request then in flight
            handle.explain(example, 2)  # (steps: the import is the cost, not the integral)
    except Exception as exc:
        logger.warning("warm-up of %s v%s failed: %s", handle.name, handle.version, exc)
        return handle
    logger.info(
        "warmed up %s v%s (%s) in %.0f ms",
        handle.name,
        handle.version,
        handle.runtime,
        (time.perf_counter() - started) * 1000,
    )
    return handle


Loader = Callable[[str, str, Settings], ModelHandle]
#: ``snapshot(settings, name)`` -> registry state (default: the MLflow registry).
SnapshotReader = Callable[[Settings, str], RegistrySnapshot]


def read_registry(settings: Settings, name: str) -> RegistrySnapshot:
    return registry_snapshot(settings, name)


#: ``external(snapshot, settings)``: audits registry changes made outside driftloop.
ExternalCheck = Callable[[RegistrySnapshot, Settings], object]


def detect_external(snap: RegistrySnapshot, settings: Settings) -> object:
    """:func:`driftloop.registry.audit.detect_external` (imported here: serving starts without
    it when that module is absent)."""
    from driftloop.registry import audit  # optional: added by the hash-chained audit log

    detect = getattr(audit, "detect_external", None)
    return None if detect is None else detect(snap, settings)


class Reconciler:
    """Polls the registry and swaps :attr:`state`; thread-safe reads, one writer at a time."""

    def __init__(
        self,
        settings: Settings,
        loader: Loader = load_handle,
        snapshot: SnapshotReader = read_registry,
        external: ExternalCheck = detect_external,
    ) -> None:
        self.settings = settings
        self.name = settings.mlflow.registered_model
        self._loader = loader
        self._snapshot = snapshot
        self._external = external
        self.state = ServingState(mode=settings.serving.mode)
        self._handles: dict[str, ModelHandle] = {}
        self._failed: dict[str, float] = {}
        #: why the last load of a version failed (kept while its retry waits)
        self._errors: dict[str, str] = {}
        #: versions whose artifact failed its integrity check: version -> reason
        self.refused: dict[str, str] = {}
        self._audited: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self.last_ok: float | None = None
        self.last_error: str | None = None
        #: whether the last registry read found a champion alias (None: not read yet)
        self.registry_champion: bool | None = None
        self.reconciles = 0
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    # -- status -------------------------------------------------------------------------
    @property
    def degraded(self) -> bool:
        return self.last_error is not None

    def takes_traffic(self) -> tuple[bool, str]:
        """Whether this replica should get its share of traffic (Kubernetes readiness), and why.
        Yes when it serves a champion; also when the registry, read just now, names no champion
        at all (a fresh install: every replica answers 503 "no champion" itself, which is what
        the caller would get without any ready replica, and `helm install --wait` and rolling
        updates can complete). No while a champion exists that this replica has not loaded, or
        before the registry could be read: a cold replica never takes a warm one's traffic."""
        if self.state.champion is not None:
            return True, f"serving champion version {self.state.champion.version}"
        if self.registry_champion is False and self.last_error is None:
            return True, f"the registry names no champion of {self.name} yet"
        if self.registry_champion is None:
            return False, self.last_error or "the registry has not been read yet"
        return False, self.last_error or "the champion is not loaded yet"

    def health(self) -> dict[str, Any]:
        st = self.state
        if st.champion is None:
            status = "not_ready"
        elif self.degraded:
            status = "degraded"
        else:
            status = "ready"
        return {
            "status": status,
            "champion": st.champion.version if st.champion else None,
            "challenger": st.challenger.version if st.challenger else None,
            "canary_weight": st.weight if st.challenger else 0,
            "mode": st.mode,
            "last_error": self.last_error,
            "refused": dict(self.refused),
            "last_reconciled_s_ago": (
                round(time.time() - self.last_ok, 3) if self.last_ok is not None else None
            ),
        }

    # -- one pass -------------------------------------------------------------------------
    def _handle(self, version: str | None, role: str, snap: RegistrySnapshot) -> ModelHandle | None:
        if version is None:
            return None
        if version in self._handles:
            return self._handles[version]
        failed_at = self._failed.get(version)
        if failed_at is not None and time.monotonic() - failed_at < LOAD_RETRY_S:
            return None
        try:
            started = time.perf_counter()
            handle = self._loader(self.name, version, self.settings)
        except Exception as exc:
            self._failed[version] = time.monotonic()
            reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            self._errors[version] = reason
            if isinstance(exc, ModelIntegrityError):
                self.refused[version] = reason
                self._audit_refusal(version, role, reason, snap)
            logger.error(
                "could not load %s version %s (%s): it gets no traffic: %s",
                self.name,
                version,
                role,
                exc,
                exc_info=logger.isEnabledFor(logging.DEBUG),
            )
            return None
        self._failed.pop(version, None)
        self._errors.pop(version, None)
        self.refused.pop(version, None)
        self._handles[version] = handle
        logger.info(
            "loaded %s version %s as %s in %.2f s (fast path: %s, threshold %.4g from %s)",
            self.name,
            version,
            role,
            time.perf_counter() - started,
            handle.fast_path,
            handle.threshold,
            handle.threshold_source,
        )
        return handle

    def _audit_refusal(self, version: str, role: str, reason: str, snap: RegistrySnapshot) -> None:
        """One ``artifact_refused`` audit record per version and reason (best effort: serving
        goes on when the audit log cannot be written)."""
        if (version, reason) in self._audited:
            return
        try:
            # the registry's writer module: only this rare path needs it
            from driftloop.registry.promotion import RegistryChange, _audit

            change = RegistryChange(
                action="artifact_refused",
                actor="serving",
                model=self.name,
                from_version=self.state.champion.version if self.state.champion else None,
                to_version=version,
                weight_before=snap.weight,
                weight_after=snap.weight,
                reason=reason,
                metrics={"role": role},
            )
            _audit(change, self.settings)
            self._audited.add((version, reason))
        except Exception:
            logger.exception("could not audit the refusal of %s version %s", self.name, version)

    def _detect_external(self, snap: RegistrySnapshot) -> None:
        """Registry changes made outside driftloop are audited as external (best effort)."""
        try:
            self._external(snap, self.settings)
        except Exception:
            logger.debug("external change detection failed", exc_info=True)

    def _champion(self, snap: RegistrySnapshot) -> tuple[ModelHandle | None, str | None]:
        """(champion to serve, why serving is degraded or None). Without a champion alias, or
        with one that cannot be served, the last good champion keeps serving."""
        last = self.state.champion
        if snap.champion is None:
            if last is None:
                return None, None  # no champion yet: not ready, nothing lost
            return last, (
                f"the champion alias of {self.name} is unset in the registry: serving the last "
                f"good champion, version {last.version}"
            )
        champion = self._handle(snap.champion, "champion", snap)
        if champion is not None:
            return champion, None
        why = self._errors.get(snap.champion, "it could not be loaded")
        problem = f"champion version {snap.champion} cannot be served ({why})"
        if last is None:
            return None, problem
        return last, f"{problem}: serving the last good champion, version {last.version}"

    def reconcile_once(self) -> ServingState:
        """Read the registry, load what is missing, swap the state (blocking; run in a thread).
        Registry errors leave the state untouched and mark the service degraded; so does a
        champion alias that vanished or points at a version that cannot be served (the last
        good champion keeps serving)."""
        with self._lock:
            try:
                snap = self._snapshot(self.settings, self.name)
            except Exception as exc:
                msg = f"registry unreachable: {str(exc).splitlines()[0][:300]}"
                if self.last_error != msg:
                    logger.warning("%s; serving the last good models", msg)
                self.last_error = msg
                return self.state
            self._detect_external(snap)
            self.registry_champion = snap.champion is not None
            loaded_before = set(self._handles)
            champion, problem = self._champion(snap)
            challenger = self._handle(snap.challenger, "challenger", snap)
            if challenger and champion and challenger.version == champion.version:
                challenger = None
            mode = snap.mode or self.settings.serving.mode
            new = ServingState(champion, challenger, snap.weight, mode)
            if new != self.state:
                logger.info(
                    "serving champion=%s challenger=%s weight=%d mode=%s",
                    champion.version if champion else None,
                    challenger.version if challenger else None,
                    snap.weight,
                    mode,
                )
            if problem is not None and problem != self.last_error:
                logger.warning("%s", problem)
            self.state = new  # one reference assignment: atomic for readers
            keep = set(new.versions())
            for version in list(self._handles):
                if version not in keep:
                    del self._handles[version]
            asked = (snap.champion, snap.challenger)
            for version in [v for v in self.refused if v not in asked]:
                del self.refused[version]  # no longer asked for
            for version in [v for v in self._errors if v not in asked]:
                del self._errors[version]  # and its back-off: asked again, it is retried at
                self._failed.pop(version, None)  # once and its reason is current
            if set(self._handles) - loaded_before:
                freeze_heap()
            self.last_ok = time.time()
            self.last_error = problem
            self.reconciles += 1
            return new

    # -- background loop ------------------------------------------------------------------
    async def reconcile_now(self) -> ServingState:
        return await asyncio.to_thread(self.reconcile_once)

    async def run(self) -> None:
        interval = self.settings.serving.reconcile_interval_s
        while not self._stop.is_set():
            try:
                await self.reconcile_now()
            except Exception:  # never let the loop die
                logger.exception("reconcile failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=interval)

    def start(self) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self.run(), name="reconciler")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, timeout=30)
            self._task = None


def freeze_heap(*, rescan: bool = True) -> None:
    """Collect once and move the survivors (model graphs) out of the GC's reach, so full
    collections stop scanning them under load (STACK.md: cut p99 from ~250 ms to ~24 ms).

    ``rescan`` unfreezes first, so garbage among objects frozen before (a model version just
    unloaded) is collected too; that pass walks the whole heap (~0.5 s under the GIL, once per
    model load). ``rescan=False`` collects and freezes only what was allocated since the last
    freeze (the online feature store's snapshot: milliseconds)."""
    if rescan:
        gc.unfreeze()
    gc.collect()
    gc.freeze()
