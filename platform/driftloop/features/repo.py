"""The feature repo: load its definitions, write the offline sources, apply to the registry.

``apply`` is the ``feast apply`` equivalent: it imports the definition files of the repo folder
(honouring ``.feastignore``), checks that the configured FeatureService exposes exactly
:data:`driftloop.schema.FEATURE_COLUMNS`, registers the objects and creates the online tables.
Objects registered earlier but no longer defined are deleted, as ``feast apply`` does.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from driftloop.errors import InvalidInputError, NotFoundError
from driftloop.features.config import feature_store, features_dir, repo_path
from driftloop.schema import FEATURE_COLUMNS
from driftloop.settings import Settings, get_settings

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore, FeatureView

logger = logging.getLogger(__name__)

#: Feature views of the repo, by the pipeline table that feeds them.
VIEWS = {
    "weather": "weather_hourly",
    "plane": "plane_attributes",
    "carrier_origin": "carrier_origin_7d",
}


@dataclass
class RepoObjects:
    """Feast objects defined in the repo folder."""

    entities: list[Any] = field(default_factory=list)
    sources: list[Any] = field(default_factory=list)
    views: list[FeatureView] = field(default_factory=list)
    services: list[FeatureService] = field(default_factory=list)

    def all(self) -> list[Any]:
        return [*self.entities, *self.sources, *self.views, *self.services]

    def view(self, name: str) -> FeatureView:
        for v in self.views:
            if v.name == name:
                return v
        raise NotFoundError(f"feature view {name!r} is not defined in the feature repo")

    def service(self, name: str) -> FeatureService:
        for s in self.services:
            if s.name == name:
                return s
        defined = sorted(s.name for s in self.services)
        raise NotFoundError(f"feature service {name!r} is not defined (defined: {defined})")


def load_definitions(settings: Settings | None = None) -> RepoObjects:
    """Import the repo's definition files and collect their Feast objects (imports feast)."""
    from feast import Entity, FeatureService, FeatureView
    from feast.data_source import DataSource
    from feast.repo_operations import get_repo_files

    settings = settings or get_settings()
    root = repo_path(settings)
    objects = RepoObjects()
    seen: set[int] = set()
    for i, path in enumerate(get_repo_files(root)):
        spec = importlib.util.spec_from_file_location(f"_driftloop_feature_repo_{i}", path)
        if spec is None or spec.loader is None:  # pragma: no cover - not a python file
            continue
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for obj in vars(module).values():
            if id(obj) in seen:
                continue
            if isinstance(obj, Entity):
                objects.entities.append(obj)
            elif isinstance(obj, DataSource):
                objects.sources.append(obj)
            elif isinstance(obj, FeatureView):
                objects.views.append(obj)
            elif isinstance(obj, FeatureService):
                objects.services.append(obj)
            else:
                continue
            seen.add(id(obj))
    _resolve_source_paths(objects, settings)
    for name in VIEWS.values():
        objects.view(name)
    _check_service(objects, settings.features.feature_service)
    return objects


def _resolve_source_paths(objects: RepoObjects, settings: Settings) -> None:
    """Relative FileSource paths are relative to the state's features folder: make them absolute
    (the DuckDB offline store reads ``path`` as given)."""
    from feast import FileSource

    base = features_dir(settings)
    sources = [*objects.sources, *(v.batch_source for v in objects.views)]
    for src in sources:
        if not isinstance(src, FileSource):
            continue
        if "://" not in src.path and not Path(src.path).is_absolute():
            src.file_options.uri = str(base / src.path)


def _check_service(objects: RepoObjects, name: str) -> None:
    service = objects.service(name)
    names = [f.name for proj in service.feature_view_projections for f in proj.features]
    if sorted(names) != sorted(FEATURE_COLUMNS):
        raise InvalidInputError(
            f"feature service {name!r} serves {sorted(names)}, expected {sorted(FEATURE_COLUMNS)}"
        )


def source_path(objects: RepoObjects, settings: Settings, table: str) -> Path:
    """Absolute path of the parquet source that feeds the view of pipeline table ``table``."""
    source = objects.view(VIEWS[table]).batch_source
    if source is None or not hasattr(source, "path"):
        raise InvalidInputError(f"feature view {VIEWS[table]!r} has no file source")
    return Path(source.path)


def write_sources(
    tables: dict[str, pd.DataFrame], settings: Settings | None = None
) -> dict[str, Path]:
    """Write pipeline tables (keys of :data:`VIEWS`) to their parquet sources, atomically."""
    settings = settings or get_settings()
    objects = load_definitions(settings)
    written = {}
    for table, frame in tables.items():
        if table not in VIEWS:
            raise InvalidInputError(
                f"unknown feature table {table!r}: expected one of {list(VIEWS)}"
            )
        path = source_path(objects, settings, table)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".parquet.tmp")
        frame.to_parquet(tmp, index=False)
        tmp.replace(path)
        written[table] = path
        logger.info("wrote %s rows of %s to %s", len(frame), table, path)
    return written


def apply(settings: Settings | None = None, store: FeatureStore | None = None) -> list[str]:
    """Register the repo's objects (``feast apply``); returns the names of what was applied."""
    settings = settings or get_settings()
    objects = load_definitions(settings)
    store = store or feature_store(settings)
    defined = {(type(o).__name__, o.name) for o in objects.all()}
    registered: list[Any] = [*store.list_feature_services(), *store.list_feature_views()]
    stale = [o for o in registered if (type(o).__name__, o.name) not in defined]
    store.apply(objects.all(), objects_to_delete=stale, partial=False)
    names = [o.name for o in objects.all()]
    logger.info("applied %d feast objects (%d stale deleted)", len(names), len(stale))
    return names


def registered_service(store: FeatureStore, settings: Settings) -> FeatureService:
    """The configured FeatureService from the registry; NotFoundError before ``apply``."""
    from feast.errors import FeatureServiceNotFoundException

    name = settings.features.feature_service
    try:
        return store.get_feature_service(name)
    except FeatureServiceNotFoundException:
        raise NotFoundError(
            f"feature service {name!r} is not registered: run `driftloop features apply`"
        ) from None


def registered_view(store: FeatureStore, name: str) -> FeatureView:
    """A feature view from the registry; NotFoundError before ``apply``."""
    from feast.errors import FeatureViewNotFoundException

    try:
        return store.get_feature_view(name)
    except FeatureViewNotFoundException:
        raise NotFoundError(
            f"feature view {name!r} is not registered: run `driftloop features apply`"
        ) from None


def feature_service_info(settings: Settings) -> tuple[str, list[str]]:
    """(name, feature names) of the configured FeatureService; NotFoundError when unknown."""
    service = registered_service(feature_store(settings), settings)
    names = [f.name for p in service.feature_view_projections for f in p.features]
    return service.name, names
