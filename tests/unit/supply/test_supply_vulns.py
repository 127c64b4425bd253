"""The vulnerability audit's parts that need no advisory database: the pinned set, the ignore
file, pip-audit's JSON (a recorded sample) and the reachability probe (a real HTTP server on
127.0.0.1 standing in for the database).

fixtures/pip-audit-sample.json was written by pip-audit 2.10.1's own JSON formatter
(``pip_audit._format.json.JsonFormat`` with descriptions and aliases on, as the runner asks for)
from real advisories of old releases (requests 2.31.0, Jinja2 3.1.2), since the PyPI
vulnerability API cannot be reached from the machine the suite runs on."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftloop.errors import InvalidInputError
from driftloop.supply import vulns

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = Path(__file__).parent / "fixtures" / "pip-audit-sample.json"
TODAY = dt.date(2026, 6, 1)


def _sample() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SAMPLE.read_text())
    return data


def _ignore(**fields: Any) -> vulns.VulnIgnore:
    base = {
        "id": "CVE-2024-35195",
        "package": "requests",
        "reason": "driftloop never sets verify=False on a Session",
        "expires": "2026-12-31",
    }
    return vulns.VulnIgnore.model_validate({**base, **fields})


def test_sample_findings_fail_and_the_skipped_package_is_named() -> None:
    report = vulns.parse_report(_sample(), "pypi", today=TODAY)
    assert [(f.package, f.id) for f in report.failures] == [
        ("requests", "GHSA-9wx4-h78v-vm56"),
        ("requests", "GHSA-9hjg-9r4m-mvj7"),
        ("jinja2", "GHSA-h5c8-rqwp-cp95"),
    ]
    assert report.audited == 3
    assert report.unaudited == [
        ("driftloop", "Dependency not found on PyPI and could not be audited: driftloop (0.1.0)")
    ]
    assert not report.ok
    lines = report.problems()
    assert lines[0].startswith(
        "requests 2.31.0: GHSA-9wx4-h78v-vm56, CVE-2024-35195 (fixed in 2.32.0): When making"
    )
    assert lines[-1] == (
        "driftloop: not audited: Dependency not found on PyPI and could not be audited: "
        "driftloop (0.1.0)"
    )


def test_an_ignore_matches_an_alias_and_is_reported_with_its_reason() -> None:
    report = vulns.parse_report(_sample(), "pypi", [_ignore()], today=TODAY)
    (ignored,) = [f for f in report.findings if f.ignored_by is not None]
    assert ignored.id == "GHSA-9wx4-h78v-vm56"
    assert "ignored until 2026-12-31: driftloop never sets verify=False" in ignored.line()
    assert [f.id for f in report.failures] == ["GHSA-9hjg-9r4m-mvj7", "GHSA-h5c8-rqwp-cp95"]


def test_an_ignore_for_another_package_does_not_apply() -> None:
    report = vulns.parse_report(_sample(), "pypi", [_ignore(package="urllib3")], today=TODAY)
    assert len(report.failures) == 3


def test_an_expired_ignore_fails_again_and_says_so() -> None:
    report = vulns.parse_report(_sample(), "pypi", [_ignore(expires="2026-05-31")], today=TODAY)
    first = report.failures[0]
    assert first.id == "GHSA-9wx4-h78v-vm56"
    assert "its ignore entry expired on 2026-05-31" in first.line()


def test_a_clean_report_is_ok() -> None:
    data = {"dependencies": [{"name": "idna", "version": "3.20", "vulns": []}], "fixes": []}
    report = vulns.parse_report(data, "pypi", today=TODAY)
    assert report.ok
    assert report.summary().startswith("1 pinned packages audited against pypi: 0 known")


def test_nothing_looked_up_is_unreachable_not_clean() -> None:
    # What pip-audit prints when PyPI answers 404 for every package (it exits 0 then).
    data = {
        "dependencies": [
            {
                "name": n,
                "skip_reason": f"Dependency not found on PyPI and could not be audited: {n}",
            }
            for n in ("requests", "jinja2")
        ],
        "fixes": [],
    }
    with pytest.raises(vulns.DatabaseUnreachable, match=r"2 of 2 skipped"):
        vulns.parse_report(data, "pypi", today=TODAY)


def test_the_ignore_file_needs_reason_and_expiry(tmp_path: Path) -> None:
    path = tmp_path / "vuln-ignore.yaml"
    path.write_text(yaml.safe_dump({"ignore": [{"id": "CVE-2024-1", "package": "x"}]}))
    with pytest.raises(InvalidInputError, match=r"ignore\.0\.reason: Field required"):
        vulns.load_ignores(path)
    entry = {"id": "CVE-2024-1", "package": "x", "reason": "not reachable from driftloop code"}
    path.write_text(yaml.safe_dump({"ignore": [entry]}))
    with pytest.raises(InvalidInputError, match=r"ignore\.0\.expires: Field required"):
        vulns.load_ignores(path)
    path.write_text(yaml.safe_dump({"ignore": [{**entry, "expires": "soon"}]}))
    with pytest.raises(
        InvalidInputError, match=r"ignore\.0\.expires: Input should be a valid date"
    ):
        vulns.load_ignores(path)


def test_the_project_ignore_file_is_valid() -> None:
    for entry in vulns.load_ignores(ROOT / vulns.IGNORE_FILE):
        assert entry.reason


def test_pinned_set_holds_the_constraints_and_the_pyproject_pins() -> None:
    pins = vulns.pinned_set(ROOT)
    assert pins["torch"] == "2.13.0"  # pinned in pyproject.toml only
    assert pins["pip-audit"] == "2.10.1"
    assert pins["uvicorn"] == "0.54.0"  # "uvicorn[standard]==0.54.0": the extra is dropped
    assert len(pins) > 250


def test_pins_that_disagree_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "constraints.txt").write_text("# c\nPyYAML==6.0.4\n")
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["pyyaml==6.0.3"]\n'
    )
    with pytest.raises(
        InvalidInputError, match=r"pyyaml is pinned to 6\.0\.4 in .* but to 6\.0\.3"
    ):
        vulns.pinned_set(tmp_path)


class _Database(BaseHTTPRequestHandler):
    """Answers like the PyPI JSON API (``/ok/...``) or like a proxy without it (else 404)."""

    def do_GET(self) -> None:
        if self.path.startswith("/ok/"):
            body = json.dumps({"info": {}, "vulnerabilities": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
        else:
            body = b"not found"
            self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def database() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Database)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_probe_names_the_answer_of_a_database_that_is_not_there(database: str) -> None:
    with pytest.raises(vulns.DatabaseUnreachable, match=r"/pypi/idna/3.20/json answered HTTP 404"):
        vulns.probe("pypi", "idna", "3.20", pypi_url=f"{database}/pypi")
    vulns.probe("pypi", "idna", "3.20", pypi_url=f"{database}/ok")  # answers: no error


def test_probe_names_a_connection_failure(database: str) -> None:
    closed = database.rsplit(":", 1)[0] + ":1"  # nothing listens on port 1
    with pytest.raises(vulns.DatabaseUnreachable, match=r"ConnectError"):
        vulns.probe("osv", "idna", "3.20", osv_url=f"{closed}/v1/query", timeout_s=5)
