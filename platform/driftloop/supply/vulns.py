"""Vulnerability audit of the pinned set with pip-audit.

The pinned set is every exact pin of ``requirements/constraints.txt`` and of ``pyproject.toml``
(dependencies and extras: torch is pinned only there), the versions the images and the venv are
built from. pip-audit looks each one up in an advisory database (the PyPI JSON API, or OSV).

Three outcomes, never confused:

- audited: every pin was looked up; a known vulnerability fails unless an entry of
  ``requirements/vuln-ignore.yaml`` (advisory id or alias, package, reason, expiry date) covers
  it and has not expired;
- not audited (:class:`DatabaseUnreachable`): the database did not answer. pip-audit itself
  reports a PyPI that answers 404 as "dependency not found" for every package and exits 0 with
  "No known vulnerabilities found", so the database is probed first and a run in which no pin
  could be looked up counts as unreachable, not clean;
- partly audited: pins the database answered for but could not audit are failures, named.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from driftloop.errors import DriftloopError, InvalidInputError
from driftloop.settings import project_root
from driftloop.supply.policyfile import load_policy_file

IGNORE_FILE = Path("requirements/vuln-ignore.yaml")
CONSTRAINTS_FILE = Path("requirements/constraints.txt")
Service = Literal["pypi", "osv"]
#: Where pip-audit's services look a package up (pip_audit/_service/{pypi,osv}.py).
PYPI_JSON = "https://pypi.org/pypi"
OSV_QUERY = "https://api.osv.dev/v1/query"
_PIN = re.compile(
    r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;#,]+)\s*(?:[;#].*)?$"
)


class DatabaseUnreachable(DriftloopError):
    """The advisory database did not answer: nothing was audited."""

    status_code = 503


class AuditError(DriftloopError):
    """pip-audit failed for another reason (its message is kept)."""


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# ---- the pinned set ---------------------------------------------------------------------------
def _pins_of(lines: Sequence[str], origin: str, pins: dict[str, tuple[str, str]]) -> None:
    for line in lines:
        match = _PIN.match(line)
        if not match:
            continue
        name, version = canonical_name(match.group(1)), match.group(2)
        if name in pins and pins[name][0] != version:
            raise InvalidInputError(
                f"{name} is pinned to {pins[name][0]} in {pins[name][1]} but to {version} in "
                f"{origin}: the pinned set disagrees with itself"
            )
        pins[name] = (version, origin)


def pinned_set(root: Path | None = None) -> dict[str, str]:
    """``{name: version}`` of every ``==`` pin in the constraints file and in pyproject.toml
    (dependencies and every extra); a package pinned to two versions is an error."""
    root = root or project_root()
    pins: dict[str, tuple[str, str]] = {}
    constraints = root / CONSTRAINTS_FILE
    _pins_of(constraints.read_text().splitlines(), str(CONSTRAINTS_FILE), pins)
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    declared = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        declared.extend(extra)
    _pins_of(declared, "pyproject.toml", pins)
    return {name: version for name, (version, _) in sorted(pins.items())}


# ---- the ignore file --------------------------------------------------------------------------
class VulnIgnore(BaseModel):
    """An advisory accepted for a while: which, for which package, why, until when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(
        min_length=3, description="Advisory id or alias (GHSA-..., CVE-..., PYSEC-...)."
    )
    package: str = Field(min_length=1)
    reason: str = Field(min_length=20, description="Why it does not affect driftloop (yet).")
    expires: dt.date = Field(description="After this day the advisory fails the audit again.")


class VulnIgnoreFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ignore: tuple[VulnIgnore, ...] = ()


def load_ignores(path: Path | None = None) -> tuple[VulnIgnore, ...]:
    """The entries of ``requirements/vuln-ignore.yaml``; a malformed file raises
    :class:`InvalidInputError` naming the field."""
    path = path or project_root() / IGNORE_FILE
    return load_policy_file(path, VulnIgnoreFile, "vulnerability ignore file", empty={}).ignore


# ---- pip-audit's JSON -------------------------------------------------------------------------
@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    id: str
    aliases: tuple[str, ...]
    fix_versions: tuple[str, ...]
    description: str
    ignored_by: VulnIgnore | None = None
    expired: VulnIgnore | None = None

    def line(self) -> str:
        ids = ", ".join((self.id, *self.aliases))
        fix = f"fixed in {', '.join(self.fix_versions)}" if self.fix_versions else "no fix yet"
        text = f"{self.package} {self.version}: {ids} ({fix})"
        if self.ignored_by is not None:
            return f"{text}: ignored until {self.ignored_by.expires}: {self.ignored_by.reason}"
        if self.expired is not None:
            text += f": its ignore entry expired on {self.expired.expires}"
        summary = " ".join(self.description.split())[:160]
        return f"{text}: {summary}" if summary else text


@dataclass
class AuditReport:
    service: str
    audited: int
    findings: list[Finding] = field(default_factory=list)
    #: ``(package, why)`` of pins the database answered for but could not audit.
    unaudited: list[tuple[str, str]] = field(default_factory=list)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.ignored_by is None]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.unaudited

    def problems(self) -> list[str]:
        lines = [f.line() for f in self.failures]
        lines += [f"{name}: not audited: {why}" for name, why in self.unaudited]
        return lines

    def summary(self) -> str:
        ignored = len(self.findings) - len(self.failures)
        return (
            f"{self.audited} pinned packages audited against {self.service}: "
            f"{len(self.failures)} known vulnerabilities, {ignored} ignored (with reason and "
            f"expiry), {len(self.unaudited)} not audited"
        )


def _ignore_for(
    package: str, ids: set[str], ignores: Sequence[VulnIgnore], today: dt.date
) -> tuple[VulnIgnore | None, VulnIgnore | None]:
    """(the entry that covers it today, else an expired one that would have)."""
    matching = [i for i in ignores if canonical_name(i.package) == package and i.id.upper() in ids]
    live = next((i for i in matching if i.expires >= today), None)
    expired = next((i for i in matching if i.expires < today), None)
    return live, (None if live else expired)


def parse_report(
    data: dict[str, Any],
    service: str,
    ignores: Sequence[VulnIgnore] = (),
    today: dt.date | None = None,
) -> AuditReport:
    """An :class:`AuditReport` from pip-audit's ``-f json`` output. Raises
    :class:`DatabaseUnreachable` when not one dependency could be looked up."""
    today = today or dt.date.today()
    deps = data.get("dependencies")
    if not isinstance(deps, list):
        raise AuditError("pip-audit's JSON has no 'dependencies' list")
    skipped = [(str(d.get("name")), str(d["skip_reason"])) for d in deps if "skip_reason" in d]
    if deps and len(skipped) == len(deps):
        raise DatabaseUnreachable(
            f"no pinned package could be looked up in {service} ({len(deps)} of {len(deps)} "
            f"skipped), e.g. {skipped[0][1]}"
        )
    report = AuditReport(service=service, audited=len(deps) - len(skipped), unaudited=skipped)
    for dep in deps:
        if "skip_reason" in dep:
            continue
        name = canonical_name(str(dep["name"]))
        for vuln in dep.get("vulns", []):
            aliases = tuple(str(a) for a in vuln.get("aliases", []))
            ids = {str(vuln["id"]).upper(), *(a.upper() for a in aliases)}
            live, expired = _ignore_for(name, ids, ignores, today)
            report.findings.append(
                Finding(
                    package=name,
                    version=str(dep.get("version", "")),
                    id=str(vuln["id"]),
                    aliases=aliases,
                    fix_versions=tuple(str(v) for v in vuln.get("fix_versions", [])),
                    description=str(vuln.get("description") or ""),
                    ignored_by=live,
                    expired=expired,
                )
            )
    return report


# ---- reachability and the run -----------------------------------------------------------------
def probe(
    service: Service,
    package: str,
    version: str,
    timeout_s: float = 10.0,
    pypi_url: str = PYPI_JSON,
    osv_url: str = OSV_QUERY,
) -> None:
    """Ask ``service`` about one pinned package the way pip-audit will; raise
    :class:`DatabaseUnreachable` naming the answer when it does not give advisory data."""
    try:
        if service == "pypi":
            url = f"{pypi_url.rstrip('/')}/{package}/{version}/json"
            response = httpx.get(url, timeout=timeout_s, follow_redirects=True)
            key = "vulnerabilities"
        else:
            url = osv_url
            body = {"package": {"name": package, "ecosystem": "PyPI"}, "version": version}
            response = httpx.post(url, json=body, timeout=timeout_s)
            key = ""
    except httpx.HTTPError as exc:
        raise DatabaseUnreachable(f"{service}: {url}: {type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        raise DatabaseUnreachable(f"{service}: {url} answered HTTP {response.status_code}")
    try:
        payload = response.json()
    except ValueError:
        raise DatabaseUnreachable(f"{service}: {url} answered something that is not JSON") from None
    if not isinstance(payload, dict) or (key and key not in payload):
        raise DatabaseUnreachable(f"{service}: {url} answered JSON without advisory data")


def run_pip_audit(
    pins: dict[str, str], service: Service, timeout_s: float = 900.0
) -> dict[str, Any]:
    """pip-audit over ``pins`` (no resolution, no install: ``--no-deps --disable-pip``), its
    JSON report."""
    with tempfile.TemporaryDirectory(prefix="driftloop-vulns-") as tmp:
        requirements = Path(tmp) / "pinned.txt"
        requirements.write_text("".join(f"{n}=={v}\n" for n, v in pins.items()))
        out = Path(tmp) / "report.json"
        cmd = [
            sys.executable, "-m", "pip_audit", "--requirement", str(requirements),
            "--no-deps", "--disable-pip", "--vulnerability-service", service,
            "--format", "json", "--output", str(out), "--desc", "on", "--aliases", "on",
            "--progress-spinner", "off",
        ]  # fmt: skip
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise AuditError(f"pip-audit did not finish within {timeout_s:.0f} s") from None
        if not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            if "ConnectionError" in tail[0] or "NameResolutionError" in tail[0]:
                raise DatabaseUnreachable(f"{service}: {tail[0][:300]}")
            raise AuditError(f"pip-audit exited {proc.returncode}: {tail[0][:300]}")
        data: dict[str, Any] = json.loads(out.read_text())
        return data


def audit(
    service: Service = "pypi",
    root: Path | None = None,
    ignore_file: Path | None = None,
    today: dt.date | None = None,
) -> AuditReport:
    """The audit of the pinned set of the project at ``root`` (see the module docstring)."""
    root = root or project_root()
    pins = pinned_set(root)
    ignores = load_ignores(ignore_file or root / IGNORE_FILE)
    first = next(iter(pins.items()))
    probe(service, *first)
    return parse_report(run_pip_audit(pins, service), service, ignores, today)
