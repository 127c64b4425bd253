"""The CycloneDX SBOM: valid against the CycloneDX 1.5 JSON schema, every installed distribution
at its installed version with its purl, the dependency graph, and the image path
(``python -`` fed the generator; scripts/sbom.sh)."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from driftloop.supply import sbom

Plant = Callable[..., Path]  # the `plant` fixture of conftest.py
ROOT = Path(__file__).resolve().parents[3]
GENERATOR = ROOT / "platform" / "driftloop" / "supply" / "sbom.py"


def _assert_valid(text: str) -> dict[str, Any]:
    error = JsonStrictValidator(SchemaVersion.V1_5).validate_str(text)
    assert error is None, getattr(getattr(error, "data", None), "message", error)
    bom: dict[str, Any] = json.loads(text)
    assert bom["bomFormat"] == "CycloneDX"
    assert bom["specVersion"] == "1.5"
    refs = {c["bom-ref"] for c in bom["components"]} | {bom["metadata"]["component"]["bom-ref"]}
    for edge in bom.get("dependencies", []):
        assert edge["ref"] in refs
        assert set(edge["dependsOn"]) <= refs
    return bom


def _by_name(bom: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"].lower(): c for c in bom["components"]}


def test_sbom_of_this_environment_is_valid_and_complete() -> None:
    bom = _assert_valid(json.dumps(sbom.build(name="driftloop-venv")))
    components = _by_name(bom)
    for name in ("torch", "mlflow", "prefect", "fastapi"):
        version = md.version(name)
        assert components[name]["version"] == version
        assert components[name]["purl"] == f"pkg:pypi/{name}@{version.replace('+', '%2B')}"
    assert len(components) == len({c["purl"] for c in bom["components"]})
    assert all(c["purl"].startswith("pkg:pypi/") for c in bom["components"])
    assert components["torch"]["licenses"][0]["expression"].startswith("Apache-2.0")
    graph = {d["ref"]: d["dependsOn"] for d in bom["dependencies"]}
    assert components["pandas"]["purl"] in graph[components["mlflow"]["purl"]]


def test_licences_extras_and_markers(plant: Plant) -> None:
    plant("app", "1.0", License="MIT", Requires_Dist=["lib[fast]>=1", "absent>=1"])
    plant(
        "lib",
        "2.0+local",
        License_Expression="Apache-2.0 OR MIT",
        Requires_Dist=['speedup; extra == "fast"', 'other; python_version < "3"'],
    )
    plant("speedup", "0.1", Classifier=["License :: OSI Approved :: BSD License"])
    site = plant("other", "3", License="Copyright 2020 X\n        All rights reserved.")
    bom = _assert_valid(json.dumps(sbom.build([str(site)], name="t")))
    components = _by_name(bom)
    assert components["app"]["licenses"] == [{"license": {"name": "MIT"}}]
    assert components["lib"]["licenses"] == [{"expression": "Apache-2.0 OR MIT"}]
    assert components["lib"]["purl"] == "pkg:pypi/lib@2.0%2Blocal"
    assert components["speedup"]["licenses"] == [{"license": {"name": "BSD License"}}]
    assert "licenses" not in components["other"]  # a licence text is not a licence name
    graph = {d["ref"]: d["dependsOn"] for d in bom["dependencies"]}
    assert graph["pkg:pypi/app@1.0"] == ["pkg:pypi/lib@2.0%2Blocal"]
    assert graph["pkg:pypi/lib@2.0%2Blocal"] == ["pkg:pypi/speedup@0.1"]  # extra followed
    assert graph["root:t@unversioned"] == ["pkg:pypi/app@1.0", "pkg:pypi/other@3"]


def test_archive_hash_from_direct_url(plant: Plant) -> None:
    site = plant("pinned", "1.0", License="MIT")
    digest = "a" * 64
    (site / "pinned-1.0.dist-info" / "direct_url.json").write_text(
        json.dumps(
            {"url": "file:///w/pinned-1.0.whl", "archive_info": {"hashes": {"sha256": digest}}}
        )
    )
    bom = _assert_valid(json.dumps(sbom.build([str(site)])))
    assert bom["components"][0]["hashes"] == [{"alg": "SHA-256", "content": digest}]


def test_generator_runs_fed_on_stdin_as_inside_an_image(tmp_path: Path) -> None:
    # What scripts/sbom.sh does in the container: `python - ARGS < sbom.py`, from a folder
    # that is not the checkout (the image has no driftloop.supply on the path necessarily).
    out = subprocess.run(
        [sys.executable, "-", "--image", "registry:5000/team/driftloop-serving:1.2",
         "--property", "docker:image:id=sha256:abc", "--out", "-"],
        stdin=GENERATOR.open(), capture_output=True, text=True, cwd=tmp_path, timeout=120,
        check=True, env={**os.environ, "PYTHONPATH": ""},
    )  # fmt: skip
    bom = _assert_valid(out.stdout)
    assert bom["metadata"]["component"] == {
        "type": "container",
        "bom-ref": "root:registry:5000/team/driftloop-serving@1.2",
        "name": "registry:5000/team/driftloop-serving",
        "version": "1.2",
    }
    assert {"name": "docker:image:id", "value": "sha256:abc"} in bom["metadata"]["properties"]
    assert _by_name(bom)["torch"]["version"] == md.version("torch")


def test_cli_writes_the_file(tmp_path: Path) -> None:
    target = tmp_path / "build" / "sbom" / "venv.cdx.json"
    out = subprocess.run(
        [sys.executable, "-m", "driftloop.supply", "sbom", "--out", str(target)],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"wrote {target}"
    bom = _assert_valid(target.read_text())
    assert bom["metadata"]["component"]["name"] == "driftloop-venv"


FAKE_DOCKER = """#!/usr/bin/env bash
# Stand-in for the Docker CLI (no Docker engine here): `image inspect` answers for one image,
# `run ... IMAGE CMD...` runs CMD on this host, standing in for the image's python.
set -euo pipefail
echo "$*" >>"$FAKE_DOCKER_LOG"
case "$1 ${2:-}" in
  "image inspect")
    [[ "${@: -1}" == "driftloop-serving:dev" ]] || exit 1
    case "$*" in *RepoDigests*) echo "" ;; *) echo "sha256:0123abcd" ;; esac ;;
  "run --rm")
    shift
    while [[ "$1" != "driftloop-serving:dev" ]]; do shift; done
    shift
    exec "$FAKE_DOCKER_PYTHON" "$@" ;;
  *) exit 2 ;;
esac
"""


def test_sbom_script_writes_the_image_sbom(tmp_path: Path) -> None:
    # Mocked: the Docker engine (only the k8s run has one); the script, the generator and the
    # output are real.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(docker.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "docker.log"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_DOCKER_LOG": str(log),
        "FAKE_DOCKER_PYTHON": sys.executable,
    }
    outdir = tmp_path / "build" / "sbom"
    run = subprocess.run(
        ["bash", str(ROOT / "scripts" / "sbom.sh"), "driftloop-serving:dev", str(outdir)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    target = outdir / "driftloop-serving-dev.cdx.json"
    assert run.stdout.strip() == str(target)
    bom = _assert_valid(target.read_text())
    assert bom["metadata"]["component"]["name"] == "driftloop-serving"
    assert {"name": "docker:image:id", "value": "sha256:0123abcd"} in bom["metadata"]["properties"]
    assert "run --rm -i --network none --entrypoint python driftloop-serving:dev -" in (
        log.read_text()
    )
    assert sorted(p.name for p in outdir.iterdir()) == [target.name]  # no temp file left

    missing = subprocess.run(
        ["bash", str(ROOT / "scripts" / "sbom.sh"), "nope:1", str(outdir)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode == 1
    assert "image nope:1 not found (build it first: make images)" in missing.stderr
