"""The feature repo's definitions against the schema contract (imports feast)."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftloop.errors import NotFoundError
from driftloop.schema import FEATURE_COLUMNS
from driftloop.settings import FeatureSettings, Settings

pytestmark = pytest.mark.integration


def test_one_feature_service_serves_exactly_the_schema_features(tmp_path: Path) -> None:
    from driftloop.features.repo import load_definitions

    settings = Settings(state_dir=tmp_path)
    objects = load_definitions(settings)
    assert [s.name for s in objects.services] == ["flight_delay_v1"]
    served = [f.name for p in objects.services[0].feature_view_projections for f in p.features]
    assert sorted(served) == sorted(FEATURE_COLUMNS)
    # Source paths resolve into this state's features folder.
    for view in objects.views:
        assert view.batch_source.path.startswith(str(tmp_path / "features" / "sources"))


def test_unknown_feature_service_setting_is_named(tmp_path: Path) -> None:
    from driftloop.features.repo import load_definitions

    settings = Settings(state_dir=tmp_path, features=FeatureSettings(feature_service="v9"))
    with pytest.raises(NotFoundError, match=r"'v9' is not defined .*flight_delay_v1"):
        load_definitions(settings)
