"""Constants and helpers of the chart tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "driftloop"
SCENARIOS = sorted(
    p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml")
)
NEW_KUBE = "1.31.0"
OLD_KUBE = "1.20.2"
# What a 1.20 API server lists: the old group/versions, with kinds (helm's own default set only
# knows group/versions, and adds these to it).
OLD_API_VERSIONS = [
    "autoscaling/v2beta2",
    "autoscaling/v2beta2/HorizontalPodAutoscaler",
    "policy/v1beta1",
    "policy/v1beta1/PodDisruptionBudget",
    "batch/v1beta1",
    "batch/v1beta1/CronJob",
    "batch/v1/Job",
]

Doc = dict[str, Any]


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=120, check=False
    )


def template_args(scenario: str, kube: str) -> list[str]:
    args = ["template", "rel", str(CHART), "--namespace", "ml"]
    args += ["-f", str(CHART / "ci" / f"{scenario}-values.yaml"), "--kube-version", kube]
    if kube == OLD_KUBE:
        for api in OLD_API_VERSIONS:
            args += ["--api-versions", api]
    return args


def validate_with_schemas(doc: Doc, folder: Path) -> list[str]:
    """Strict JSON-schema validation of one object against a kubernetes-json-schema folder
    (the same lookup kubernetes-validate does; used for versions it no longer bundles)."""
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", doc["apiVersion"])
    path = folder / f"{doc['kind'].lower()}-{api}.json"
    if not path.is_file():
        return [f"{doc['kind']} {doc['apiVersion']}: not served by this Kubernetes version"]
    base = f"https://schemas.invalid/{folder.name}/"
    definitions = json.loads((folder / "_definitions.json").read_text())
    registry = Registry().with_resource(
        base + "_definitions.json",
        Resource.from_contents(definitions, default_specification=DRAFT202012),
    )
    schema = json.loads(path.read_text())
    schema.pop("$schema", None)
    schema["$id"] = base + path.name
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    return [
        f"{doc['kind']}/{doc['metadata']['name']} {err.json_path}: {err.message[:300]}"
        for err in validator.iter_errors(doc)
    ]
