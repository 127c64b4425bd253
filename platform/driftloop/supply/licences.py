"""Licence allow-list check of every installed distribution.

Each distribution's licence is read from its own metadata (``importlib.metadata``), in this
order, the first that gives an answer winning:

1. ``License-Expression`` (PEP 639): an SPDX expression, authoritative; one that does not parse
   is refused.
2. ``License``: a known alias from the policy file (``"Apache 2.0"`` -> ``Apache-2.0``), else
   the value itself when it parses as an SPDX expression. A ``License`` that holds a whole
   licence text is looked up by its first line, as an alias only.
3. ``Classifier: License :: ...``: each mapped to an SPDX id (or a ``LicenseRef-`` family
   where the classifier names no version, e.g. "BSD License"); several classifiers must all be
   allowed (nothing in the metadata says which one applies).

No licence at all is a refusal, never a pass. The policy (allowed SPDX ids, aliases, and
per-package exceptions each with the reason a person verified) is ``requirements/licences.yaml``;
an exception names the version it was verified for, so an upgrade is looked at again."""

from __future__ import annotations

import importlib.metadata as md
import re
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from driftloop.settings import project_root
from driftloop.supply import spdx
from driftloop.supply.policyfile import load_policy_file

#: The policy file, relative to the project root.
POLICY_FILE = Path("requirements/licences.yaml")

#: Trove licence classifiers (their last `` :: `` part) and the SPDX id each one means. Names
#: without a version map to a ``LicenseRef-`` family: the policy decides whether any member of
#: the family is acceptable.
CLASSIFIERS: dict[str, str] = {
    "MIT License": "MIT",
    "MIT No Attribution License (MIT-0)": "MIT-0",
    "Apache Software License": "LicenseRef-Apache",
    "BSD License": "LicenseRef-BSD",
    "Python Software Foundation License": "PSF-2.0",
    "ISC License (ISCL)": "ISC",
    "Mozilla Public License 1.0 (MPL)": "MPL-1.0",
    "Mozilla Public License 1.1 (MPL 1.1)": "MPL-1.1",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "GNU Library or Lesser General Public License (LGPL)": "LicenseRef-LGPL",
    "GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "GNU General Public License (GPL)": "LicenseRef-GPL",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "GNU Affero General Public License v3": "AGPL-3.0-only",
    "GNU Affero General Public License v3 or later (AGPLv3+)": "AGPL-3.0-or-later",
    "Eclipse Public License 1.0 (EPL-1.0)": "EPL-1.0",
    "Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0",
    "Artistic License": "LicenseRef-Artistic",
    "Zope Public License": "LicenseRef-ZPL",
    "The Unlicense (Unlicense)": "Unlicense",
    "zlib/libpng License": "Zlib",
    "Historical Permission Notice and Disclaimer (HPND)": "HPND",
    "Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "Universal Permissive License (UPL)": "UPL-1.0",
    "Academic Free License (AFL)": "LicenseRef-AFL",
    "European Union Public Licence 1.2 (EUPL 1.2)": "EUPL-1.2",
    "CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0",
    "Public Domain": "LicenseRef-Public-Domain",
    "Other/Proprietary License": "LicenseRef-Proprietary",
    "Freely Distributable": "LicenseRef-Freely-Distributable",
}
#: Classifiers that say nothing about which licence applies.
UNINFORMATIVE_CLASSIFIERS = frozenset({"OSI Approved", "DFSG approved"})


def canonical_name(name: str) -> str:
    """PEP 503 normalised project name (``Flask_WTF`` -> ``flask-wtf``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _squash(text: str) -> str:
    return " ".join(text.split())


# ---- the policy file --------------------------------------------------------------------------
class LicenceException(BaseModel):
    """A package accepted after a person read its licence: what they found and why it is
    acceptable. Valid for ``version`` only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    package: str = Field(min_length=1)
    version: str = Field(min_length=1, description="The installed version that was verified.")
    licence: str = Field(min_length=1, description="The licence found (an SPDX expression).")
    reason: str = Field(min_length=20, description="Why it is acceptable; where it was verified.")

    @field_validator("licence")
    @classmethod
    def _spdx(cls, value: str) -> str:
        spdx.parse(value)
        return value


class LicencePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed: tuple[str, ...] = Field(min_length=1)
    aliases: dict[str, str] = Field(default_factory=dict)
    exceptions: tuple[LicenceException, ...] = ()

    @field_validator("aliases")
    @classmethod
    def _alias_targets(cls, value: dict[str, str]) -> dict[str, str]:
        for target in value.values():
            spdx.parse(target)
        return {_squash(k).casefold(): v for k, v in value.items()}

    def exception_for(self, name: str) -> LicenceException | None:
        key = canonical_name(name)
        return next((e for e in self.exceptions if canonical_name(e.package) == key), None)


def load_policy(path: Path | None = None) -> LicencePolicy:
    """The policy file (default ``requirements/licences.yaml`` of the project); a malformed
    one raises :class:`InvalidInputError` naming the file and the field."""
    return load_policy_file(path or project_root() / POLICY_FILE, LicencePolicy, "licence policy")


# ---- installed distributions ------------------------------------------------------------------
@dataclass(frozen=True)
class Dist:
    """The licence-relevant metadata of one installed distribution."""

    name: str
    version: str
    expression: str | None
    license_field: str | None
    classifiers: tuple[str, ...]


def environment_paths() -> list[str]:
    """The install folders of the running interpreter's environment (its site-packages), not
    all of ``sys.path``: a stray ``*.egg-info`` in the working folder is not installed."""
    paths = sysconfig.get_paths()
    return list(dict.fromkeys([paths["purelib"], paths["platlib"]]))


def _field(meta: md.PackageMetadata, key: str) -> str | None:
    values = meta.get_all(key)
    return str(values[0]) if values else None


def installed(paths: Sequence[str] | None = None) -> list[Dist]:
    """Every distribution found on ``paths`` (default :func:`environment_paths`), one per
    project name: the first found wins, as for imports."""
    seen: dict[str, Dist] = {}
    for dist in md.distributions(path=list(paths) if paths is not None else environment_paths()):
        meta = dist.metadata
        name = meta["Name"]
        if not name or canonical_name(name) in seen:
            continue
        license_field = _field(meta, "License")
        seen[canonical_name(name)] = Dist(
            name=name,
            version=meta["Version"] or "",
            expression=_field(meta, "License-Expression"),
            license_field=license_field.strip() if license_field else None,
            classifiers=tuple(
                c.split("::", 1)[1].strip()
                for c in meta.get_all("Classifier") or []
                if c.startswith("License ::")
            ),
        )
    return sorted(seen.values(), key=lambda d: canonical_name(d.name))


# ---- what the metadata declares ---------------------------------------------------------------
@dataclass(frozen=True)
class Declared:
    """The licence a distribution declares: ``expression`` (None: none found or unreadable),
    ``source`` (which metadata field it came from) and ``problem`` (why it could not be read)."""

    expression: spdx.Expression | None
    source: str
    problem: str | None = None


def _classifier_id(classifier: str) -> str | None:
    leaf = classifier.rsplit("::", 1)[-1].strip()
    if leaf in UNINFORMATIVE_CLASSIFIERS:
        return None
    if leaf in CLASSIFIERS:
        return CLASSIFIERS[leaf]
    # An unmapped classifier stays visible (and refused) under its own name.
    return "LicenseRef-" + (re.sub(r"[^A-Za-z0-9.]+", "-", leaf).strip("-") or "unknown")


def declared(dist: Dist, aliases: dict[str, str]) -> Declared:
    """What ``dist``'s metadata says its licence is (see the module docstring for the order)."""
    if dist.expression:
        try:
            return Declared(spdx.parse(dist.expression), "License-Expression")
        except spdx.ExpressionError as exc:
            return Declared(None, "License-Expression", str(exc))
    text = dist.license_field
    if text and text.upper() not in ("UNKNOWN", "NONE"):
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if len(lines) == 1:
            alias = aliases.get(_squash(text).casefold())
            if alias:
                return Declared(spdx.parse(alias), f"License {text!r} (alias)")
            try:
                return Declared(spdx.parse(text), "License")
            except spdx.ExpressionError:
                pass  # free text: the classifiers may say more
        elif lines:
            alias = aliases.get(_squash(lines[0]).casefold())
            if alias:
                return Declared(
                    spdx.parse(alias), f"License text starting {lines[0][:40]!r} (alias)"
                )
    ids = [i for i in (_classifier_id(c) for c in dist.classifiers) if i]
    if ids:
        return Declared(spdx.join_all(ids), "classifiers")
    if text and text.upper() not in ("UNKNOWN", "NONE"):
        first = _squash(text)[:60]
        return Declared(None, "License", f"free text {first!r} that names no SPDX licence")
    return Declared(
        None, "none", "no licence in its metadata (License-Expression, License, classifiers)"
    )


# ---- the check --------------------------------------------------------------------------------
Outcome = Literal["allowed", "exception", "refused"]


@dataclass(frozen=True)
class Result:
    dist: Dist
    declared: Declared
    outcome: Outcome
    why: str

    def line(self) -> str:
        found = str(self.declared.expression) if self.declared.expression else "none found"
        return (
            f"{self.dist.name} {self.dist.version}: licence {found} "
            f"(from {self.declared.source}): {self.why}"
        )


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)
    #: Exceptions whose package passes on its own metadata now (worth removing).
    stale_exceptions: list[str] = field(default_factory=list)

    @property
    def refused(self) -> list[Result]:
        return [r for r in self.results if r.outcome == "refused"]

    @property
    def ok(self) -> bool:
        return not self.refused


def check(
    dists: Iterable[Dist], policy: LicencePolicy, policy_name: str = str(POLICY_FILE)
) -> Report:
    """Each distribution against ``policy``: allowed by its own metadata, accepted by an
    exception written for this version, or refused (with the reason)."""
    report = Report()
    for dist in dists:
        found = declared(dist, policy.aliases)
        verdict = spdx.evaluate(found.expression, policy.allowed) if found.expression else None
        exception = policy.exception_for(dist.name)
        if exception is not None and exception.version == dist.version:
            if verdict is not None and verdict.allowed:
                report.stale_exceptions.append(
                    f"{dist.name} {dist.version}: passes on its metadata; its exception in "
                    f"{policy_name} can go"
                )
            why = f"accepted by exception (verified {exception.licence}): {exception.reason}"
            report.results.append(Result(dist, found, "exception", why))
            continue
        if verdict is not None and verdict.allowed:
            report.results.append(Result(dist, found, "allowed", "allowed"))
            continue
        if verdict is not None:
            why = f"refused: {', '.join(verdict.refused)} not on the allow-list in {policy_name}"
        else:
            why = f"refused: {found.problem}"
        if exception is not None:
            why += (
                f"; its exception was verified for version {exception.version} only: read the "
                f"licence of {dist.version} and update the exception"
            )
        elif verdict is None:
            why += f"; read its bundled licence file and add an exception in {policy_name}"
        report.results.append(Result(dist, found, "refused", why))
    return report
