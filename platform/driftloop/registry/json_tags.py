"""Large JSON tags of a model version become artifacts of its run, with a short tag pointing at
them: MLflow's version page lists tags in one alphabetical table, where a JSON blob of a few
hundred characters buries the tags around it.

A version tag whose value is a JSON object or array longer than :data:`MAX_INLINE_CHARS` is
logged as ``version_tags/<key>.json`` in the version's run (the exact text the tag would have
held) and the tag holds ``runs:/<run id>/version_tags/<key>.json`` instead
(:func:`offload_json_tags`, at registration, by the process that owns the run). Readers that need
the value call :func:`expand_json_tags` (``driftloop lineage`` and ``reproduce`` do, through
:func:`driftloop.training.lineage.resolve_version`); versions registered before keep their inline
JSON, which it leaves as it is.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from driftloop.registry.client import download_run_artifact, log_run_files
from driftloop.settings import Settings

#: JSON values longer than this leave the tag table.
MAX_INLINE_CHARS = 200
ARTIFACT_DIR = "version_tags"


def pointer(run_id: str, key: str) -> str:
    return f"runs:/{run_id}/{ARTIFACT_DIR}/{key}.json"


def _parse_pointer(value: str) -> tuple[str, str] | None:
    """(run id, artifact path) of a pointer tag value, else None."""
    if not value.startswith("runs:/") or not value.endswith(".json"):
        return None
    run_id, _, path = value.removeprefix("runs:/").partition("/")
    if (
        not run_id
        or not path.startswith(f"{ARTIFACT_DIR}/")
        or "/" in path[len(ARTIFACT_DIR) + 1 :]
    ):
        return None
    return run_id, path


def _is_large_json(value: str) -> bool:
    if len(value) <= MAX_INLINE_CHARS or value.lstrip()[:1] not in ("{", "["):
        return False
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def offload_json_tags(run_id: str, tags: dict[str, str], settings: Settings) -> dict[str, str]:
    """``tags`` with every large JSON value logged to run ``run_id`` and replaced by its
    pointer (the others unchanged)."""
    large = {k: v for k, v in tags.items() if _is_large_json(v)}
    if not large:
        return dict(tags)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for key, value in large.items():
            path = Path(tmp) / f"{key}.json"
            path.write_text(value, encoding="utf-8")
            files.append(path)
        log_run_files(run_id, files, ARTIFACT_DIR, settings)
    return {k: pointer(run_id, k) if k in large else v for k, v in tags.items()}


def expand_json_tags(tags: dict[str, str], settings: Settings) -> dict[str, str]:
    """``tags`` with every pointer replaced by the JSON it points at. NotFoundError when an
    artifact is gone (a lineage whose record is lost must say so)."""
    out = dict(tags)
    with tempfile.TemporaryDirectory() as tmp:
        for key, value in tags.items():
            parsed = _parse_pointer(value)
            if parsed is None:
                continue
            run_id, path = parsed
            local = download_run_artifact(run_id, path, Path(tmp), settings)
            out[key] = local.read_text(encoding="utf-8")
    return out
