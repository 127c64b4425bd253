"""An SBOM as a build artifact in MLflow: one run named ``build <image>`` per built image, in
the configured experiment, holding the SBOM under ``sbom/`` and what it counts as tags.

Optional: only ``--mlflow`` (``python -m driftloop.supply sbom``/``log-sbom``) or
``SBOM_MLFLOW=1`` (``scripts/sbom.sh``) log anything; the SBOM file next to the build outputs
is the artifact either way."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from driftloop.errors import InvalidInputError
from driftloop.registry import tracking
from driftloop.settings import Settings

#: Folder of the run's artifacts the SBOM goes into.
ARTIFACT_DIR = "sbom"


@dataclass(frozen=True)
class LoggedSbom:
    run_id: str
    run_name: str
    artifact: str
    components: int


def log_sbom(path: Path, image: str, settings: Settings) -> LoggedSbom:
    """Log the CycloneDX file ``path`` as an artifact of a new run ``build <image>``; tags say
    which image, how many components and the SBOM's serial number. The file is checked to be a
    CycloneDX document first (a wrong file is refused, nothing is logged)."""
    try:
        bom = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"SBOM {path}: not a readable JSON file ({exc})") from None
    if not isinstance(bom, dict) or bom.get("bomFormat") != "CycloneDX":
        raise InvalidInputError(f"SBOM {path}: not a CycloneDX document (no bomFormat CycloneDX)")
    components = len(bom.get("components") or [])
    tracking.setup_mlflow(settings)
    run_name = f"build {image}"
    with tracking.start_run(run_name=run_name, log_system_metrics=False) as run:
        tracking.set_tags(
            {
                "driftloop.build.image": image,
                "driftloop.sbom.format": f"CycloneDX {bom.get('specVersion', '?')}",
                "driftloop.sbom.serial": str(bom.get("serialNumber", "")),
                "driftloop.sbom.components": str(components),
            }
        )
        tracking.log_artifact(str(path), ARTIFACT_DIR)
        run_id = str(run.info.run_id)
    return LoggedSbom(run_id, run_name, f"{ARTIFACT_DIR}/{path.name}", components)
