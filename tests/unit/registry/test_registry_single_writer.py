"""Structure: the registry has one writer. Alias and canary-tag writes (MLflow's raw calls and
the registry adapter's private writers) appear only in ``driftloop/registry/client.py`` (which
defines them) and ``driftloop/registry/promotion.py`` (which audits every change)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SOURCE_DIRS = ("platform", "serving", "flows", "benchmarks", "scripts")
REGISTRY = ROOT / "platform" / "driftloop" / "registry"
ALLOWED = {REGISTRY / "client.py", REGISTRY / "promotion.py"}
#: Known writers outside the package, each with the reason it is tolerated (keep this short).
EXEMPT = {
    # Seeds a throwaway sqlite registry inside a k8s-local pod (no MLflow server, no audit log).
    ROOT / "scripts" / "k8s-local" / "seed-champion.py": "set_registered_model_alias",
}

#: MLflow's alias/registered-model-tag writers, the adapter's private writers, and the public
#: raw writers the adapter used to have (a comeback under the old name counts too).
RAW_WRITERS = (
    "set_registered_model_alias",
    "delete_registered_model_alias",
    "set_registered_model_tag",
    "delete_registered_model_tag",
    "_set_alias",
    "_delete_alias",
    "_set_model_tag",
    "_delete_model_tag",
    "_set_version_tag",
    "set_alias",
    "delete_alias",
    "set_model_tag",
    "delete_model_tag",
    "set_canary_weight",
    "set_canary_mode",
)
#: whole names only: ``set_alias`` does not match inside ``_set_alias`` or ``reset_alias``
PATTERN = re.compile(r"\b(" + "|".join(RAW_WRITERS) + r")\b")


def _writer_calls(path: Path) -> set[str]:
    return set(PATTERN.findall(path.read_text(encoding="utf-8", errors="replace")))


def _sources() -> list[Path]:
    return sorted(p for d in SOURCE_DIRS if (ROOT / d).is_dir() for p in (ROOT / d).rglob("*.py"))


def test_only_promotion_and_the_adapter_write_aliases_or_canary_tags() -> None:
    offenders = {}
    for path in _sources():
        if path in ALLOWED or ".venv" in path.parts:
            continue
        calls = _writer_calls(path)
        if path in EXEMPT:
            calls -= {EXEMPT[path]}
        if calls:
            offenders[str(path.relative_to(ROOT))] = sorted(calls)
    assert offenders == {}, (
        "alias/canary-tag writes outside driftloop.registry.promotion bypass the audit log; "
        f"call a writer of driftloop/registry/promotion.py instead: {offenders}"
    )


def test_the_private_writers_are_defined_in_the_adapter_and_called_by_promotion() -> None:
    client = (REGISTRY / "client.py").read_text()
    promotion = (REGISTRY / "promotion.py").read_text()
    for name in (
        "_set_alias",
        "_delete_alias",
        "_set_model_tag",
        "_delete_model_tag",
        "_set_version_tag",
    ):
        assert f"def {name}(" in client
        assert re.search(rf"\b{name}\(", promotion), name
    public = ("set_alias", "delete_alias", "set_model_tag", "delete_model_tag", "set_canary_weight")
    for name in public:
        assert not re.search(rf"^def {name}\(", client, re.MULTILINE), f"{name} is public again"


def test_the_check_catches_a_writer_outside_the_registry(tmp_path: Path) -> None:
    rogue = tmp_path / "rogue.py"
    rogue.write_text(
        "from driftloop.registry.client import _set_alias\n"
        "def go(client, settings):\n"
        "    client.set_registered_model_alias('m', 'champion', '3')\n"
        "    _set_alias('champion', '3', settings)\n"
    )
    assert _writer_calls(rogue) == {"set_registered_model_alias", "_set_alias"}
    benign = tmp_path / "benign.py"
    benign.write_text(
        "from driftloop.registry.promotion import reset_champion, set_mode, set_weight\n"
        "def unset_aliases(): ...\n"
    )
    assert _writer_calls(benign) == set()
