"""Lineage of a model version: version -> MLflow run -> data revision + partition hashes ->
feature service -> git commit, with its holdout metrics and the champion it was compared with,
and a check that every reference still resolves.

References: ``flight-delay@champion``, ``flight-delay:3``, ``@challenger`` or ``3`` (the
configured registered model).
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import dataclass, field, replace

from driftloop.data.repo import DataRepo
from driftloop.errors import DriftloopError, InvalidInputError, NotFoundError
from driftloop.features.repo import feature_service_info
from driftloop.registry import client as registry
from driftloop.registry.json_tags import expand_json_tags
from driftloop.settings import Settings, get_settings, project_root

logger = logging.getLogger(__name__)

OK, FAILED, SKIPPED = "ok", "failed", "skipped"


@dataclass(frozen=True)
class Check:
    reference: str
    status: str
    detail: str


@dataclass
class LineageRecord:
    model: str
    version: str
    aliases: tuple[str, ...]
    tags: dict[str, str]
    data_hashes: dict[str, str]
    checks: list[Check] = field(default_factory=list)

    def tag(self, key: str) -> str:
        return self.tags.get(f"driftloop.{key}", "?")

    @property
    def ok(self) -> bool:
        return all(c.status != FAILED for c in self.checks)

    def lines(self) -> list[str]:
        """The chain in words, one reference per line, with each check's outcome."""
        aliases = f" (aliases: {', '.join(self.aliases)})" if self.aliases else ""
        gate = self.tag("gate_decision") if "driftloop.gate_decision" in self.tags else ""
        standing = self.tag("gate") + (f" (gate decided {gate})" if gate else "")
        out = [
            f"model version  {self.model}:{self.version}{aliases}",
            f"  now          {standing}",
            f"  gate         {gate or self.tag('gate')}: {self.tag('gate_reason')}",
            f"  holdout      {self.tag('holdout_month')}: ROC AUC {self.tag('holdout_auc')} "
            f"(baseline {self.tag('baseline_auc')}); compared with champion "
            f"{self.tag('compared_with')}",
            f"  train window {self.tag('train_window')}",
            *(
                [f"  rollout      {self.tag('rollout')}: {self.tag('rollout_reason')}"]
                if "driftloop.rollout" in self.tags
                else []
            ),
            f"-> MLflow run  {self.tag('run_id')}",
            f"-> data rev    {self.tag('data_rev')}",
        ]
        out += [f"     {key:<18} md5 {md5}" for key, md5 in sorted(self.data_hashes.items())]
        out += [
            f"-> features    {self.tag('feature_service')} (Feast FeatureService)",
            f"-> git commit  {self.tag('git_commit')}",
            "checks:",
        ]
        out += [f"  [{c.status:^7}] {c.reference}: {c.detail}" for c in self.checks]
        return out


def parse_ref(ref: str, settings: Settings) -> tuple[str, str | None, str | None]:
    """(model name, alias, version) of a reference."""
    ref = ref.strip()
    if not ref:
        raise InvalidInputError("empty model reference: use NAME@ALIAS or NAME:VERSION")
    default = settings.mlflow.registered_model
    if ref.startswith("models:/"):
        ref = ref.removeprefix("models:/").replace("/", ":", 1)
    if "@" in ref:
        name, alias = ref.rsplit("@", 1)
        return name or default, alias, None
    if ":" in ref:
        name, version = ref.rsplit(":", 1)
        if not version.isdigit():
            raise InvalidInputError(f"model version must be a number in {ref!r}")
        return name or default, None, version
    if ref.isdigit():
        return default, None, ref
    if ref in (registry.CHAMPION, registry.CHALLENGER):
        return default, ref, None
    raise InvalidInputError(f"cannot read model reference {ref!r}: use NAME@ALIAS or NAME:VERSION")


def resolve_version(ref: str, settings: Settings | None = None) -> registry.VersionInfo:
    """The version ``ref`` names, its large JSON tags read back from their run artifacts
    (:mod:`driftloop.registry.json_tags`), so readers see every tag's value."""
    settings = settings or get_settings()
    name, alias, version = parse_ref(ref, settings)
    if alias is not None:
        found = registry.get_alias(alias, settings, name)
        if found is None:
            raise NotFoundError(f"model {name} has no alias {alias!r}")
    else:
        assert version is not None
        found = registry.get_version(version, settings, name)
    return replace(found, tags=expand_json_tags(found.tags, settings))


def _check_run(run_id: str, settings: Settings) -> Check:
    if not run_id or run_id == "?":
        return Check("MLflow run", FAILED, "the version records no run id")
    if registry.run_exists(run_id, settings):
        return Check("MLflow run", OK, f"{run_id} exists on {settings.mlflow.uri}")
    return Check("MLflow run", FAILED, f"{run_id} does not exist on {settings.mlflow.uri}")


def _check_data(rev: str, hashes: dict[str, str], settings: Settings) -> list[Check]:
    repo = DataRepo(settings)
    try:
        commit = repo.resolve(rev)
    except DriftloopError as exc:
        return [Check("data revision", FAILED, str(exc))]
    checks = [Check("data revision", OK, f"{rev} exists in {repo.root}")]
    for key, md5 in sorted(hashes.items()):
        recorded = repo.recorded_md5(f"{key}.parquet", commit)
        if recorded == md5:
            checks.append(Check(f"partition {key}", OK, f"md5 {md5} recorded at {rev[:10]}"))
        else:
            checks.append(
                Check(
                    f"partition {key}",
                    FAILED,
                    f"version records md5 {md5}, revision {rev[:10]} records {recorded}",
                )
            )
    if not hashes:
        checks.append(Check("partitions", FAILED, "the version records no partition hashes"))
    return checks


def _check_feature_service(name: str, settings: Settings) -> Check:
    if not name or name == "?":
        return Check("feature service", FAILED, "the version records no feature service")
    scoped = settings.model_copy(
        update={"features": settings.features.model_copy(update={"feature_service": name})}
    )
    try:
        _, features = feature_service_info(scoped)
    except DriftloopError as exc:
        return Check("feature service", FAILED, str(exc))
    return Check("feature service", OK, f"{name} is registered in Feast ({len(features)} features)")


def _check_git(commit: str) -> Check:

    if not commit or commit in ("?", "unknown"):
        return Check("git commit", SKIPPED, "the training checkout was not a git repository")
    proc = subprocess.run(
        ["git", "-C", str(project_root()), "cat-file", "-e", f"{commit}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode == 0:
        return Check("git commit", OK, f"{commit[:12]} exists in {project_root()}")
    if "not a git repository" in proc.stderr.lower():
        return Check("git commit", SKIPPED, f"{project_root()} is not a git checkout")
    return Check("git commit", FAILED, f"{commit[:12]} is not in the checkout {project_root()}")


def lineage(ref: str, settings: Settings | None = None, check: bool = True) -> LineageRecord:
    """The lineage record of a version; with ``check``, whether every reference resolves."""
    settings = settings or get_settings()
    info = resolve_version(ref, settings)
    tags = dict(info.tags)
    tags.setdefault("driftloop.run_id", info.run_id or "?")
    try:
        hashes = json.loads(tags.get("driftloop.data_hashes", "{}"))
    except json.JSONDecodeError:
        hashes = {}
    record = LineageRecord(
        model=info.name,
        version=info.version,
        aliases=info.aliases,
        tags=tags,
        data_hashes=hashes,
    )
    if check:
        record.checks.append(_check_run(record.tag("run_id"), settings))
        record.checks.extend(_check_data(record.tag("data_rev"), hashes, settings))
        record.checks.append(_check_feature_service(record.tag("feature_service"), settings))
        record.checks.append(_check_git(record.tag("git_commit")))
    return record
