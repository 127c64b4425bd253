"""The fake repository every lens test starts from (see :mod:`lens_repo`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lens_repo import FakeRepo, build_fake_repo


@pytest.fixture
def fake_repo(tmp_path: Path) -> FakeRepo:
    return build_fake_repo(tmp_path)
