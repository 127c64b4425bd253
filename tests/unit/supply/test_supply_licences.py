"""The licence allow-list check: the real environment passes; planted distributions with a
disallowed or missing licence fail, named; the policy file is validated."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from driftloop.errors import InvalidInputError
from driftloop.supply import licences
from driftloop.supply.licences import Dist

Plant = Callable[..., Path]  # the `plant` fixture of conftest.py
ROOT = Path(__file__).resolve().parents[3]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "driftloop.supply", "licences", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def _policy(tmp_path: Path, **overrides: object) -> Path:
    data = yaml.safe_load((ROOT / "requirements" / "licences.yaml").read_text())
    data.update(overrides)
    path = tmp_path / "licences.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_every_installed_distribution_passes_the_policy() -> None:
    report = licences.check(licences.installed(), licences.load_policy())
    assert [r.line() for r in report.refused] == []
    names = {licences.canonical_name(r.dist.name) for r in report.results}
    assert {"torch", "mlflow", "prefect", "pip-audit"} <= names
    # The exceptions are still needed: none of them passes on its own metadata.
    assert report.stale_exceptions == []


def test_cli_passes_on_the_real_environment() -> None:
    out = _cli()
    assert out.returncode == 0, out.stderr
    assert "0 refused" in out.stdout


def test_planted_disallowed_licence_fails_naming_the_package(plant: Plant) -> None:
    site = plant("copyleft-thing", "1.2.3", License="GPL-3.0-only")
    report = licences.check(
        licences.installed([str(site), *licences.environment_paths()]), licences.load_policy()
    )
    assert [r.dist.name for r in report.refused] == ["copyleft-thing"]
    line = report.refused[0].line()
    assert line.startswith("copyleft-thing 1.2.3: licence GPL-3.0-only (from License)")
    assert "GPL-3.0-only not on the allow-list" in line

    out = _cli("--path", str(site))
    assert out.returncode == 1
    assert "copyleft-thing 1.2.3: licence GPL-3.0-only" in out.stderr
    assert "1 refused" in out.stderr


def test_planted_package_without_licence_fails(plant: Plant) -> None:
    site = plant("mystery", "0.1", Summary="says nothing about its licence")
    report = licences.check(licences.installed([str(site)]), licences.load_policy())
    assert len(report.refused) == 1
    line = report.refused[0].line()
    assert line.startswith("mystery 0.1: licence none found (from none)")
    assert "no licence in its metadata" in line
    assert "add an exception" in line


def test_license_expression_wins_over_classifiers(plant: Plant) -> None:
    site = plant(
        "a",
        "1",
        License_Expression="AGPL-3.0-only",
        Classifier=["License :: OSI Approved :: MIT License"],
    )
    (result,) = licences.check(licences.installed([str(site)]), licences.load_policy()).results
    assert result.outcome == "refused"
    assert result.declared.source == "License-Expression"


def test_unparseable_license_expression_is_refused_not_skipped(plant: Plant) -> None:
    site = plant("b", "1", License_Expression="MIT | GPL", License="MIT")
    (result,) = licences.check(licences.installed([str(site)]), licences.load_policy()).results
    assert result.outcome == "refused"
    assert "unexpected character '|'" in result.why


def test_several_classifiers_must_all_be_allowed(plant: Plant) -> None:
    site = plant(
        "c",
        "1",
        License="Artistic License",  # free text: the classifiers are read
        Classifier=[
            "License :: OSI Approved :: MIT License",
            "License :: OSI Approved :: GNU General Public License v3 (GPLv3)",
        ],
    )
    (result,) = licences.check(licences.installed([str(site)]), licences.load_policy()).results
    assert str(result.declared.expression) == "MIT AND GPL-3.0-only"
    assert result.outcome == "refused"
    assert "GPL-3.0-only not on the allow-list" in result.why


def test_unknown_classifier_is_refused_under_its_own_name(plant: Plant) -> None:
    site = plant("d", "1", Classifier=["License :: OSI Approved :: Sleepycat License"])
    (result,) = licences.check(licences.installed([str(site)]), licences.load_policy()).results
    assert result.outcome == "refused"
    assert "LicenseRef-Sleepycat-License" in result.why


def test_aliases_and_licence_texts() -> None:
    policy = licences.load_policy()
    name = Dist("e", "1", None, "Apache License, Version 2.0", ())
    assert str(licences.declared(name, policy.aliases).expression) == "Apache-2.0"
    text = Dist("f", "1", None, "MIT License\n\nCopyright (c) 2020 Someone\nPermission ...", ())
    found = licences.declared(text, policy.aliases)
    assert str(found.expression) == "MIT"
    assert "(alias)" in found.source
    # A text whose first line is no alias: the classifiers decide, here there are none.
    opaque = Dist("g", "1", None, "Copyright 2018 Someone\nAll rights reserved.", ())
    assert licences.declared(opaque, policy.aliases).expression is None


def test_exception_accepts_only_the_version_it_was_verified_for(
    tmp_path: Path, plant: Plant
) -> None:
    site = plant("odd-licence", "2.0", License="GPLv2 with linking exception")
    exception = {
        "package": "odd-licence",
        "version": "1.0",
        "licence": "GPL-2.0-only WITH GCC-exception-2.0",
        "reason": "read dist-info/licenses/COPYING: GPLv2 with a linking exception",
    }
    policy = licences.load_policy(_policy(tmp_path, exceptions=[exception]))
    (result,) = licences.check(licences.installed([str(site)]), policy).results
    assert result.outcome == "refused"
    assert "verified for version 1.0 only" in result.why

    policy = licences.load_policy(_policy(tmp_path, exceptions=[{**exception, "version": "2.0"}]))
    (result,) = licences.check(licences.installed([str(site)]), policy).results
    assert result.outcome == "exception"
    assert "read dist-info/licenses/COPYING" in result.why


def test_an_exception_needs_a_reason(tmp_path: Path) -> None:
    entry = {"package": "x", "version": "1", "licence": "MIT"}
    with pytest.raises(InvalidInputError, match=r"exceptions\.0\.reason: Field required"):
        licences.load_policy(_policy(tmp_path, exceptions=[entry]))
    with pytest.raises(InvalidInputError, match=r"exceptions\.0\.reason: String should have"):
        licences.load_policy(_policy(tmp_path, exceptions=[{**entry, "reason": "ok"}]))

    out = _cli("--policy", str(_policy(tmp_path, exceptions=[entry])))
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"error: licence policy {tmp_path / 'licences.yaml'}: exceptions.0.reason: Field "
        "required (1 problem(s))"
    ]


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"allowed": []}, "allowed: Tuple should have at least 1 item"),
        ({"aliases": {"Apache 2": "Apache 2.0"}}, "aliases: Value error"),
        ({"unknown_key": 1}, "unknown_key: Extra inputs are not permitted"),
        (
            {"exceptions": [{"package": "x", "version": "1", "licence": "GPLv2 | EPL",
                             "reason": "a reason long enough to pass the length check"}]},
            "exceptions.0.licence: Value error",
        ),
    ],
)  # fmt: skip
def test_malformed_policy_is_an_error_naming_the_field(
    tmp_path: Path, overrides: dict[str, object], problem: str
) -> None:
    with pytest.raises(InvalidInputError, match=problem.replace(".", r"\.")):
        licences.load_policy(_policy(tmp_path, **overrides))
