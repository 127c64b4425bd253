"""Rollout control (admin scope): what serves, the audit log, the canary weight, promote, roll
back and restore the previous champion. Changes go to the registry (the single source of truth)
and are reconciled at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from driftloop.monitoring.noninferiority import rollout_status
from driftloop.registry.promotion import promote, read_audit, restore, rollback, set_weight
from serving.handles import Reconciler
from serving.routes.deps import AdminActor, PlaneDep, ReconcilerDep, SettingsDep, json_body
from serving.routes.openapi import ERRORS, documented_body
from serving.schemas import ActionRequest, RestoreRequest, WeightRequest

router = APIRouter(prefix="/admin", tags=["admin"], responses=ERRORS)

WeightBody = Annotated[WeightRequest, Depends(json_body(WeightRequest))]
ActionBody = Annotated[ActionRequest, Depends(json_body(ActionRequest))]
RestoreBody = Annotated[RestoreRequest, Depends(json_body(RestoreRequest))]


@router.get("/state")
async def admin_state(_actor: AdminActor, settings: SettingsDep, plane: PlaneDep) -> dict[str, Any]:
    """What serves here, and the rollout's live numbers from the inference log."""
    status = await asyncio.to_thread(rollout_status, settings)
    return {"replica": plane.health(), "rollout": status}


@router.get("/audit")
async def admin_audit(_actor: AdminActor, settings: SettingsDep) -> list[dict[str, Any]]:
    """Every audited registry change (registration after the gate, rollout start, weight, mode,
    promote, rollback, the demo's reset), oldest first."""
    return await asyncio.to_thread(read_audit, settings)


@router.post("/weight", openapi_extra=documented_body(WeightRequest))
async def admin_weight(
    actor: AdminActor, req: WeightBody, settings: SettingsDep, reconciler: ReconcilerDep
) -> dict[str, Any]:
    """Set the challenger's traffic share (percent) in the registry."""
    return await _write(reconciler, set_weight, req.weight, actor, req.reason, settings)


@router.post("/promote", openapi_extra=documented_body(ActionRequest))
async def admin_promote(
    actor: AdminActor, req: ActionBody, settings: SettingsDep, reconciler: ReconcilerDep
) -> dict[str, Any]:
    """champion <- challenger; drop challenger; weight 0 (409 without a challenger, when it is
    not ``version`` (when given) or when no canary rollout of it was started)."""
    return await _write(reconciler, promote, actor, req.reason, req.metrics, settings, req.version)


@router.post("/rollback", openapi_extra=documented_body(ActionRequest))
async def admin_rollback(
    actor: AdminActor, req: ActionBody, settings: SettingsDep, reconciler: ReconcilerDep
) -> dict[str, Any]:
    """Drop the challenger; weight 0 (409 without a challenger, or when it is not ``version``
    when given)."""
    return await _write(reconciler, rollback, actor, req.reason, req.metrics, settings, req.version)


@router.post("/restore", openapi_extra=documented_body(RestoreRequest))
async def admin_restore(
    actor: AdminActor, req: RestoreBody, settings: SettingsDep, reconciler: ReconcilerDep
) -> dict[str, Any]:
    """champion <- the version it replaced (recorded at its promotion), or ``to`` (a former
    champion per the audit log); drops any challenger, canary weight and rollout. Audited as
    ``restore`` (from, to). 409 when there is nothing to restore to or ``to`` was never
    champion, 404 when that version no longer exists."""
    return await _write(reconciler, restore, req.to, actor, req.reason, settings)


async def _write(
    reconciler: Reconciler, change: Callable[..., dict[str, Any]], *args: Any
) -> dict[str, Any]:
    """Run a registry writer off the event loop, then reconcile this replica at once (the
    others follow on their interval); returns the audit record."""
    record = await asyncio.to_thread(change, *args)
    await reconciler.reconcile_now()
    return record
