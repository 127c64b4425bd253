"""Every values file that a script, the Makefile or a README names exists, and renders and
validates strictly (Kubernetes 1.31 and 1.20 schemas).

The scanner reads ``scripts/**/*.sh``, ``Makefile``, ``README.md`` and ``helm/driftloop/README.md``
for ``*values*.yaml`` paths and resolves the shell variables in them: ``$HERE`` (the script's
folder unless the script or a file it sources sets it), ``$REPO_ROOT`` / ``$ROOT``, and any
variable the script or a file it sources assigns (``CHART=helm/driftloop``). A path that stays
relative is taken from the repository root (the scripts ``cd`` there; commands in the READMEs run
there), else from the naming file's own folder (a README's links, a script's comments). Globs
(``ci/*-values.yaml``) must match.

Files under ``helm/driftloop/ci`` are the chart's scenarios, rendered and validated by
test_chart_render.py; every other one is rendered here with ``-f <file>``.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from chart_support import (
    CHART,
    NEW_KUBE,
    OLD_API_VERSIONS,
    OLD_KUBE,
    ROOT,
    SCENARIOS,
    Doc,
    run_helm,
)

pytestmark = pytest.mark.helm

VALUES_PATH = re.compile(r"(?:\$\{\w+(?::-[^}]*)?\}|[\w.$/*-])*values[\w.*-]*\.ya?ml")
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::-([^}]*))?\}|(\w+))")
ASSIGNMENT = re.compile(r"^\s*(?:(?:export|local|readonly|declare)\s+)?([A-Za-z_]\w*)=(.*)$")
# REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)": a folder relative to the file.
SCRIPT_DIR = re.compile(r'^\$\(cd "\$\(dirname "\$\{BASH_SOURCE\[0\]\}"\)(/[^"]*)?" && pwd\)$')
SOURCED = re.compile(r"^\s*(?:source|\.)\s+\S*?/?([\w.-]+\.sh)\"?\s*$", re.MULTILINE)


@dataclass
class Reference:
    """One ``*values*.yaml`` path as written in a source file, and what it resolves to."""

    source: str
    line: int
    text: str
    paths: list[Path] = field(default_factory=list)
    error: str | None = None

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}: {self.text}"


def _assigned(value: str) -> str:
    """The value of ``NAME=value``: a whole quoted string, else the first word."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value.split()[0] if value else ""


def shell_variables(text: str, source: Path) -> dict[str, str]:
    """Variables a script (and the files next to it that it sources) assigns, as written, plus
    the folders every script knows: HERE, REPO_ROOT, ROOT."""
    known = {"HERE": str(source.parent), "REPO_ROOT": str(ROOT), "ROOT": str(ROOT)}
    texts = [
        (source.parent / name, (source.parent / name).read_text())
        for name in SOURCED.findall(text)
        if (source.parent / name).is_file()
    ]
    for path, body in [*texts, (source, text)]:
        for line in body.splitlines():
            match = ASSIGNMENT.match(line)
            if not match:
                continue
            name, value = match.group(1), _assigned(match.group(2))
            here = SCRIPT_DIR.match(value)
            if here:
                known[name] = str((path.parent / (here.group(1) or "/").lstrip("/")).resolve())
            elif "$(" not in value and "`" not in value:
                known[name] = value
    return known


def expand(text: str, variables: dict[str, str], depth: int = 0) -> str:
    """``text`` with ``$VAR``, ``${VAR}`` and ``${VAR:-default}`` replaced; KeyError names a
    variable that is not known."""
    if depth > 10 or "$" not in text:
        return text

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        if name in variables:
            return expand(variables[name], variables, depth + 1)
        if match.group(2) is not None:
            return expand(match.group(2), variables, depth + 1)
        raise KeyError(name)

    return VARIABLE.sub(one, text)


def scan_text(text: str, source: Path) -> list[Reference]:
    """Every values-file path named in ``text`` (the content of ``source``), resolved."""
    shell = source.suffix == ".sh"
    variables = shell_variables(text, source) if shell else {}
    bases = [ROOT] if source.name == "Makefile" else [ROOT, source.parent]
    rel = source.relative_to(ROOT) if source.is_relative_to(ROOT) else Path(source.name)
    refs: list[Reference] = []
    for number, line in enumerate(text.splitlines(), start=1):
        for token in dict.fromkeys(VALUES_PATH.findall(line)):
            ref = Reference(str(rel), number, token)
            refs.append(ref)
            try:
                path = expand(token, variables)
            except KeyError as exc:
                ref.error = f"cannot resolve ${exc.args[0]}"
                continue
            if "$" in path:
                ref.error = "cannot resolve its variables"
                continue
            for base in bases:
                if "*" in path:
                    matches = sorted(base.glob(path)) if not Path(path).is_absolute() else []
                    if matches:
                        ref.paths = matches
                        break
                elif (base / path).is_file():
                    ref.paths = [(base / path).resolve()]
                    break
            else:
                ref.error = f"no such file ({path})"
    return refs


def scan_repository() -> list[Reference]:
    sources = sorted((ROOT / "scripts").rglob("*.sh"))
    sources += [ROOT / "Makefile", ROOT / "README.md", CHART / "README.md"]
    return [ref for src in sources if src.is_file() for ref in scan_text(src.read_text(), src)]


def problems(refs: list[Reference]) -> list[str]:
    return [f"{ref.where}: {ref.error}" for ref in refs if ref.error]


REFERENCES = scan_repository()
VALUES_FILES = sorted({path for ref in REFERENCES for path in ref.paths})
OUTSIDE_CI = [p for p in VALUES_FILES if p.parent != CHART / "ci"]


def test_the_scanner_finds_the_values_files_the_scripts_install_with() -> None:
    found = {str(p.relative_to(ROOT)) for p in VALUES_FILES}
    assert "helm/driftloop/ci/minimal-kind-values.yaml" in found  # scripts/kind.sh ($CHART)
    assert "scripts/k8s-local/values-k8s-local.yaml" in found  # scripts/k8s-local/e2e.sh ($HERE)
    by_source = {ref.source for ref in REFERENCES}
    assert {"scripts/kind.sh", "scripts/k8s-local/e2e.sh"} <= by_source


def test_every_values_file_a_script_or_readme_names_exists() -> None:
    assert REFERENCES
    assert problems(REFERENCES) == []


# A values file that does not exist, assembled so that scanners of the test sources
# (test_chart_security.py) do not take this file for a script naming it.
GONE = "kind" + "-values.yaml"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # kind.sh's old defect: a values file under $CHART that is not there.
        (
            f'CHART=helm/driftloop\nhelm install x "$CHART" -f "$CHART/ci/{GONE}"\n',
            [f"fake.sh:2: $CHART/ci/{GONE}: no such file (helm/driftloop/ci/{GONE})"],
        ),
        (
            'helm install x -f "$NOWHERE/values.yaml"\n',
            ["fake.sh:1: $NOWHERE/values.yaml: cannot resolve $NOWHERE"],
        ),
        (
            'VALUES="$HERE/values-k8s-local.yaml"\n',
            ["fake.sh:1: $HERE/values-k8s-local.yaml: no such file"],
        ),
        (
            "ls helm/driftloop/ci/*-nothing-values.yaml\n",
            ["fake.sh:1: helm/driftloop/ci/*-nothing-values.yaml: no such file"],
        ),
        ('CHART=helm/driftloop\nhelm lint "$CHART" -f "$CHART/ci/minimal-kind-values.yaml"\n', []),
        ("helm lint -f ${CHART_DIR:-helm/driftloop}/ci/default-values.yaml\n", []),
        ('R="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"\nls "$R/values.yaml"\n', []),
    ],
)
def test_the_scanner_reports_a_missing_values_file(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    """Fake scripts in a folder without values files (tmp_path/sub): $HERE resolves there."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "values.yaml").write_text("{}\n")
    refs = scan_text(text, tmp_path / "sub" / "fake.sh")
    assert refs, "the scanner found no values path"
    found = problems(refs)
    assert len(found) == len(expected), found
    for got, want in zip(found, expected, strict=True):
        assert got.startswith(want), (got, want)


def test_values_files_under_ci_are_scenarios_of_the_render_tests() -> None:
    in_ci = [p for p in VALUES_FILES if p.parent == CHART / "ci"]
    assert in_ci
    for path in in_ci:
        assert path.name.endswith("-values.yaml"), path
        assert path.name.removesuffix("-values.yaml") in SCENARIOS, path


def _render(helm_bin: Path, values: Path, kube: str) -> str:
    args = ["template", "rel", str(CHART), "--namespace", "ml", "-f", str(values)]
    args += ["--kube-version", kube]
    if kube == OLD_KUBE:
        for api in OLD_API_VERSIONS:
            args += ["--api-versions", api]
    proc = run_helm(helm_bin, *args)
    assert proc.returncode == 0, f"helm template -f {values}: {proc.stderr}"
    assert proc.stdout.strip(), f"helm template -f {values} rendered nothing"
    return proc.stdout


@pytest.mark.parametrize("values", OUTSIDE_CI, ids=lambda p: str(p.relative_to(ROOT)))
def test_values_file_renders_and_validates_on_kubernetes_1_31(
    helm_bin: Path, kubernetes_validate: Path, tmp_path: Path, values: Path
) -> None:
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(_render(helm_bin, values, NEW_KUBE))
    proc = subprocess.run(
        [str(kubernetes_validate), "--strict", "-k", NEW_KUBE, "--quiet", str(manifest)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("values", OUTSIDE_CI, ids=lambda p: str(p.relative_to(ROOT)))
def test_values_file_renders_and_validates_on_kubernetes_1_20(
    helm_bin: Path, validate_1_20: Callable[[Doc], list[str]], values: Path
) -> None:
    docs = [d for d in yaml.safe_load_all(_render(helm_bin, values, OLD_KUBE)) if d]
    assert docs
    assert [e for doc in docs for e in validate_1_20(doc)] == []
