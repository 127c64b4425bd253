"""The chart lints strictly, renders and validates against the Kubernetes schemas for every
ci/*-values.yaml scenario, on a current cluster (1.31) and on an old one (1.20) where the
HPA, PDB and CronJob fall back to their older API versions."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import (
    CHART,
    NEW_KUBE,
    OLD_API_VERSIONS,
    OLD_KUBE,
    ROOT,
    SCENARIOS,
    run_helm,
)

pytestmark = pytest.mark.helm

Doc = dict[str, Any]


def test_every_documented_scenario_exists() -> None:
    assert {"default", "gpu-training", "external-postgres-s3", "ingress-autoscaling"} <= set(
        SCENARIOS
    )
    assert "minimal-kind" in SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lint_strict_passes(helm_bin: Path, scenario: str) -> None:
    values = CHART / "ci" / f"{scenario}-values.yaml"
    proc = run_helm(
        helm_bin, "lint", "--strict", str(CHART), "-f", str(values), "--kube-version", NEW_KUBE
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_render_validates_strictly_on_kubernetes_1_31(
    render_text: Callable[..., str], kubernetes_validate: Path, tmp_path: Path, scenario: str
) -> None:
    manifest = tmp_path / f"{scenario}.yaml"
    manifest.write_text(render_text(scenario, NEW_KUBE))
    proc = subprocess.run(
        [str(kubernetes_validate), "--strict", "-k", NEW_KUBE, "--quiet", str(manifest)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_kubernetes_validate_rejects_an_unknown_field(
    render_text: Callable[..., str], kubernetes_validate: Path, tmp_path: Path
) -> None:
    """The validation step above can fail: a misspelt field is caught."""
    manifest = tmp_path / "bad.yaml"
    bad = render_text("default", NEW_KUBE).replace("readOnlyRootFilesystem", "readOnlyRootFs")
    manifest.write_text(bad)
    proc = subprocess.run(
        [str(kubernetes_validate), "--strict", "-k", NEW_KUBE, "--quiet", str(manifest)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert "readOnlyRootFs" in proc.stdout + proc.stderr


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_render_validates_strictly_on_kubernetes_1_20(
    render: Callable[..., list[Doc]],
    validate_1_20: Callable[[Doc], list[str]],
    scenario: str,
) -> None:
    errors = [e for doc in render(scenario, OLD_KUBE) for e in validate_1_20(doc)]
    assert errors == []


def test_new_apis_do_not_exist_on_kubernetes_1_20(
    render: Callable[..., list[Doc]], validate_1_20: Callable[[Doc], list[str]]
) -> None:
    """Why the fallbacks exist (and that the 1.20 validation can fail): the 1.31 render's
    HPA, PDB and CronJob are not served by a 1.20 cluster."""
    docs = render("ingress-autoscaling", NEW_KUBE)
    by_kind = {d["kind"]: d for d in docs}
    for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "CronJob"):
        assert validate_1_20(by_kind[kind]), f"{kind} {by_kind[kind]['apiVersion']} passed 1.20"


@pytest.mark.parametrize(
    ("kube", "expected"),
    [
        (
            NEW_KUBE,
            {
                "HorizontalPodAutoscaler": "autoscaling/v2",
                "PodDisruptionBudget": "policy/v1",
                "CronJob": "batch/v1",
            },
        ),
        (
            OLD_KUBE,
            {
                "HorizontalPodAutoscaler": "autoscaling/v2beta2",
                "PodDisruptionBudget": "policy/v1beta1",
                "CronJob": "batch/v1beta1",
            },
        ),
    ],
)
def test_api_versions_follow_the_cluster(
    render: Callable[..., list[Doc]], kube: str, expected: dict[str, str]
) -> None:
    docs = render("ingress-autoscaling", kube)
    got = {d["kind"]: d["apiVersion"] for d in docs if d["kind"] in expected}
    assert got == expected


def test_live_cluster_capabilities_pick_the_new_apis(render: Callable[..., list[Doc]]) -> None:
    """A live 1.25 cluster lists group/version/Kind: the kind-level check wins."""
    extra = [
        "--api-versions=autoscaling/v2/HorizontalPodAutoscaler",
        "--api-versions=policy/v1/PodDisruptionBudget",
        "--api-versions=batch/v1/CronJob",
    ]
    docs = render("ingress-autoscaling", "1.25.0", *extra)
    got = {d["kind"]: d["apiVersion"] for d in docs}
    assert got["HorizontalPodAutoscaler"] == "autoscaling/v2"
    assert got["PodDisruptionBudget"] == "policy/v1"
    assert got["CronJob"] == "batch/v1"


def test_values_schema_rejects_unknown_keys(helm_bin: Path) -> None:
    proc = run_helm(helm_bin, "template", "rel", str(CHART), "--set", "serving.replicaz=3")
    assert proc.returncode != 0
    assert "replicaz" in proc.stderr


def test_values_schema_rejects_bad_enum(helm_bin: Path) -> None:
    proc = run_helm(helm_bin, "template", "rel", str(CHART), "--set", "monitoring.mode=hourly")
    assert proc.returncode != 0
    assert "monitoring" in proc.stderr


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            ["postgresql.enabled=false", "postgresql.existingSecret=db"],
            "postgresql.external.host is required",
        ),
        (
            ["postgresql.enabled=false", "postgresql.external.host=db"],
            "postgresql.existingSecret is required",
        ),
        (["redis.enabled=false", "redis.external.host=r"], "redis.existingSecret is required"),
        (["mlflow.artifacts.type=s3"], "mlflow.artifacts.s3.destination is required"),
        (["ingress.enabled=true"], "needs at least one of ingress.servingHost"),
        (["mlflow.enabled=false"], "mlflow.externalTrackingUri is required"),
        (["prefect.enabled=false"], "prefect.externalApiUrl is required"),
    ],
)
def test_incomplete_external_settings_fail_with_a_clear_message(
    helm_bin: Path, settings: list[str], message: str
) -> None:
    args = ["template", "rel", str(CHART)]
    for item in settings:
        args += ["--set", item]
    proc = run_helm(helm_bin, *args)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_the_k8s_e2e_values_render_lint_and_validate_on_kubernetes_1_20(
    helm_bin: Path, validate_1_20: Callable[[Doc], list[str]]
) -> None:
    """`make k8s-e2e` installs with scripts/k8s-local/values-k8s-local.yaml: a chart change that
    breaks it (a new required value) must fail here, not after a 15-minute cluster build."""
    values = ROOT / "scripts" / "k8s-local" / "values-k8s-local.yaml"
    lint = run_helm(helm_bin, "lint", "--strict", str(CHART), "-f", str(values))
    assert lint.returncode == 0, lint.stdout + lint.stderr
    args = ["template", "rel", str(CHART), "-f", str(values), "--kube-version", OLD_KUBE]
    for api in OLD_API_VERSIONS:
        args += ["--api-versions", api]
    proc = run_helm(helm_bin, *args)
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert [e for doc in docs for e in validate_1_20(doc)] == []
    serving = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-serving")
    )
    env = {
        e["name"]: e.get("value")
        for e in serving["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    # The whole platform in the host-network test mode: the chart's own servers on loopback.
    assert env["DRIFTLOOP_MLFLOW__TRACKING_URI"] == "http://127.0.0.1:35000"
    assert env["DRIFTLOOP_PREFECT__API_URL"] == "http://127.0.0.1:34200/api"
