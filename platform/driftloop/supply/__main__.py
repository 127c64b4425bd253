"""``python -m driftloop.supply licences|vulns|sbom|log-sbom``.

Exit codes: 0 clean; 1 a problem (one line each on stderr: a refused licence, a known
vulnerability, a bad file); 3 ``vulns`` could not audit (advisory database unreachable): never
reported as clean."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from driftloop.errors import DriftloopError
from driftloop.supply import licences, sbom, vulns

EXIT_NOT_AUDITED = 3


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def _licences(args: argparse.Namespace) -> int:
    policy_path = Path(args.policy) if args.policy else None
    policy = licences.load_policy(policy_path)
    dists = licences.installed(args.path)
    report = licences.check(dists, policy, str(policy_path or licences.POLICY_FILE))
    if args.verbose:
        for result in report.results:
            _out(result.line())
    for note in report.stale_exceptions:
        _err(f"note: {note}")
    for result in report.refused:
        _err(result.line())
    counts = {o: sum(r.outcome == o for r in report.results) for o in ("allowed", "exception")}
    summary = (
        f"{len(report.results)} distributions checked: {counts['allowed']} allowed, "
        f"{counts['exception']} by exception, {len(report.refused)} refused"
    )
    if not report.ok:
        _err(summary)
        return 1
    _out(summary)
    return 0


def _vulns(args: argparse.Namespace) -> int:
    try:
        report = vulns.audit(
            service=args.service, ignore_file=Path(args.ignore_file) if args.ignore_file else None
        )
    except vulns.DatabaseUnreachable as exc:
        _err(f"not audited: vulnerability database unreachable: {exc}")
        return EXIT_NOT_AUDITED
    for finding in report.findings:
        if finding.ignored_by is not None:
            _err(f"note: {finding.line()}")
    for line in report.problems():
        _err(line)
    if not report.ok:
        _err(report.summary())
        return 1
    _out(report.summary())
    return 0


def _log(path: Path, image: str) -> None:
    # MLflow (through artifacts) only when asked to log: a start-up cost otherwise
    from driftloop.settings import get_settings

    # MLflow's import, only when an SBOM is to be logged: a start-up cost otherwise
    from driftloop.supply.artifacts import log_sbom

    logged = log_sbom(path, image, get_settings())
    _out(
        f"logged {logged.artifact} ({logged.components} components) to MLflow run "
        f"{logged.run_name!r} ({logged.run_id})"
    )


def _sbom(args: argparse.Namespace) -> int:
    argv = ["--out", args.out, "--name", args.name]
    for path in args.path or []:
        argv += ["--path", path]
    if args.image:
        argv += ["--image", args.image]
    sbom.main(argv)
    if args.mlflow:
        if args.out == "-":
            raise DriftloopError("--mlflow needs --out FILE (the file is the logged artifact)")
        _log(Path(args.out), args.image or args.name)
    elif args.out != "-":
        _out(f"wrote {args.out}")
    return 0


def _log_sbom(args: argparse.Namespace) -> int:
    _log(Path(args.file), args.image)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m driftloop.supply",
        description="Supply chain checks: licences, vulnerabilities, SBOM.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    lic = sub.add_parser(
        "licences", help="licence allow-list check of every installed distribution"
    )
    lic.add_argument("--policy", help="policy file (default requirements/licences.yaml)")
    lic.add_argument(
        "--path",
        action="append",
        help="folder of installed distributions (repeatable; default: this environment)",
    )
    lic.add_argument("-v", "--verbose", action="store_true", help="one line per distribution")
    lic.set_defaults(func=_licences)

    vul = sub.add_parser("vulns", help="vulnerability audit of the pinned set (pip-audit)")
    vul.add_argument("--service", choices=("pypi", "osv"), default="pypi")
    vul.add_argument("--ignore-file", help="default requirements/vuln-ignore.yaml")
    vul.set_defaults(func=_vulns)

    bom = sub.add_parser("sbom", help="CycloneDX 1.5 JSON SBOM of this Python environment")
    bom.add_argument("--out", default="-", help="file to write ('-': standard output)")
    bom.add_argument("--path", action="append", help="folder of installed distributions")
    bom.add_argument("--name", default="driftloop-venv", help="what the SBOM describes")
    bom.add_argument("--image", help="an image NAME:TAG the SBOM describes")
    bom.add_argument(
        "--mlflow",
        action="store_true",
        help="also log the file as an artifact of the MLflow run 'build <image or name>' "
        "(the configured tracking server)",
    )
    bom.set_defaults(func=_sbom)

    log = sub.add_parser("log-sbom", help="log an SBOM file to MLflow (run 'build <image>')")
    log.add_argument("file")
    log.add_argument("--image", required=True, help="the image NAME:TAG it describes")
    log.set_defaults(func=_log_sbom)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except DriftloopError as exc:
        _err(f"error: {exc}")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
