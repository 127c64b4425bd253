"""scripts/kind.sh (``make kind-up`` / ``make kind-down``) against stub binaries.

kind cannot run on this machine (its node image comes from a container registry), so ``kind``,
``docker``, ``kubectl`` and ``helm`` are stubs first on a PATH that holds nothing else but bash,
dirname, grep and cat: each stub appends its argv (and working directory) as one JSON line to a
log and prints what the script parses (``kind get clusters`` lists the clusters the stub created).

The script runs from a copy of the repository layout in ``tmp_path``: ``scripts/kind.sh`` is
copied, ``docker/`` and ``helm/`` are links to the real folders, and ``scripts/images.sh`` (which
would build the images with Docker) and, in one test, ``scripts/helm-tools.sh`` are stubs that
log like the others. Every path the script hands to a stub is checked against the real repository.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "kind.sh"
MINIMAL = "helm/driftloop/ci/minimal-kind-values.yaml"
SYSTEM_TOOLS = ("bash", "dirname", "grep", "cat")

STUB = f"""#!{sys.executable}
import json, os, signal, sys
from pathlib import Path

# Like a real binary: killed by SIGPIPE when its reader goes away.
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
name, args = Path(sys.argv[0]).name, sys.argv[1:]
state = Path(os.environ["STUB_STATE"])
with open(state / "calls.jsonl", "a") as log:
    call = {{"prog": name, "path": sys.argv[0], "argv": args, "cwd": os.getcwd(),
            "tag": os.environ.get("TAG")}}
    log.write(json.dumps(call) + "\\n")
clusters_file = state / "clusters"
clusters = clusters_file.read_text().split() if clusters_file.exists() else []
if name == "kind" and args[:2] == ["get", "clusters"]:
    if not clusters:
        print("No kind clusters found.", file=sys.stderr)
    padding = int(os.environ.get("STUB_KIND_PADDING", "0"))
    sys.stdout.write("".join(c + "\\n" for c in clusters))
    sys.stdout.write("".join(f"other-{{i}}\\n" for i in range(padding)))
elif name == "kind" and args[:2] == ["create", "cluster"]:
    clusters.append(args[args.index("--name") + 1])
elif name == "kind" and args[:2] == ["delete", "cluster"]:
    clusters.remove(args[args.index("--name") + 1])
elif name == "kubectl" and args[-2:] == ["get", "pods"]:
    print("NAME READY STATUS")
clusters_file.write_text("\\n".join(clusters))
"""

HELM_TOOLS_STUB = f"""#!{sys.executable}
# Stub of scripts/helm-tools.sh: "installs" helm into .tools/bin (no virtualenv in this copy).
import os, shutil, sys
from pathlib import Path

target = Path(sys.argv[0]).resolve().parents[1] / ".tools" / "bin" / "helm"
target.parent.mkdir(parents=True)
shutil.copy(os.environ["STUB_HELM_SOURCE"], target)
target.chmod(0o755)
print(f"helm-tools: installed helm into {{target.parent}}", file=sys.stderr)
print(target)
"""


@dataclass
class Sandbox:
    repo: Path
    stubs: Path
    state: Path
    home: Path

    def calls(self) -> list[dict[str, Any]]:
        log = self.state / "calls.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def commands(self) -> list[list[str]]:
        return [[c["prog"], *c["argv"]] for c in self.calls()]

    def set_clusters(self, *names: str) -> None:
        (self.state / "clusters").write_text("\n".join(names))

    def run(
        self, *args: str, cwd: Path | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        sysbin = self.stubs.parent / "sysbin"
        environ = {
            "PATH": f"{self.stubs}:{sysbin}",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "STUB_STATE": str(self.state),
            "STUB_HELM_SOURCE": str(self.stubs.parent / "stub.py"),
            **env,
        }
        return subprocess.run(
            [str(self.repo / "scripts" / "kind.sh"), *args],
            cwd=cwd or self.repo,
            env=environ,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(SCRIPT, repo / "scripts" / "kind.sh")
    for folder in ("docker", "helm"):
        (repo / folder).symlink_to(ROOT / folder, target_is_directory=True)
    stubs, sysbin, state, home = (tmp_path / d for d in ("stubs", "sysbin", "state", "home"))
    for folder in (stubs, sysbin, state, home):
        folder.mkdir()
    for tool in SYSTEM_TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run scripts/kind.sh"
        (sysbin / tool).symlink_to(found)
    (tmp_path / "stub.py").write_text(STUB)
    for name in ("kind", "docker", "kubectl", "helm"):
        (stubs / name).write_text(STUB)
        (stubs / name).chmod(0o755)
    images = repo / "scripts" / "images.sh"
    images.write_text(STUB)
    images.chmod(0o755)
    return Sandbox(repo=repo, stubs=stubs, state=state, home=home)


def helm_install(tag: str, *values: str) -> list[str]:
    files = [arg for path in (MINIMAL, *values) for arg in ("-f", path)]
    return [
        "helm",
        "upgrade",
        "--install",
        "driftloop",
        "helm/driftloop",
        "--namespace",
        "driftloop",
        "--create-namespace",
        *files,
        "--set",
        f"image.platform.tag={tag},image.platform.pullPolicy=Never",
        "--set",
        f"image.serving.tag={tag},image.serving.pullPolicy=Never",
        "--wait",
        "--timeout",
        "10m",
    ]


def test_up_creates_the_cluster_builds_loads_and_installs(sandbox: Sandbox) -> None:
    proc = sandbox.run("up", TAG="1.2.3")
    assert proc.returncode == 0, proc.stderr
    assert sandbox.commands() == [
        ["kind", "get", "clusters"],
        [
            "kind",
            "create",
            "cluster",
            "--name",
            "driftloop",
            "--config",
            "docker/kind-config.yaml",
            "--wait",
            "120s",
        ],
        ["kubectl", "config", "use-context", "kind-driftloop"],
        ["images.sh"],
        [
            "kind",
            "load",
            "docker-image",
            "--name",
            "driftloop",
            "driftloop-platform:1.2.3",
            "driftloop-serving:1.2.3",
        ],
        helm_install("1.2.3"),
        ["kubectl", "-n", "driftloop", "get", "pods"],
    ]
    (images,) = [c for c in sandbox.calls() if c["prog"] == "images.sh"]
    assert images["tag"] == "1.2.3"
    assert "kubectl -n driftloop port-forward svc/driftloop-serving" in proc.stderr


def test_every_path_handed_to_a_stub_exists_in_the_repository(sandbox: Sandbox) -> None:
    """The defect this catches: kind.sh once passed a values file that did not exist."""
    assert sandbox.run("up", SKIP_BUILD="1").returncode == 0
    checked = set()
    for call in sandbox.calls():
        argv = call["argv"]
        for flag, value in itertools.pairwise(argv):
            if flag in ("-f", "--values", "--config"):
                checked.add((call["cwd"], value))
        for arg in argv:
            if "/" in arg and not arg.startswith("-") and ":" not in arg and "=" not in arg:
                checked.add((call["cwd"], arg))
    paths = set()
    for cwd, arg in checked:
        path = Path(cwd, arg).resolve()
        copy = sandbox.repo.resolve()
        # The copy links docker/ and helm/ to the repository: map back to the real tree.
        rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.relative_to(copy)
        assert (ROOT / rel).exists(), f"{arg} (from {cwd}) does not exist in the repository"
        paths.add(str(rel))
    assert {"docker/kind-config.yaml", "helm/driftloop", MINIMAL} <= paths


def test_values_adds_a_second_values_file_relative_to_the_callers_directory(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "extra.yaml").write_text("serving:\n  replicas: 2\n")
    proc = sandbox.run("up", cwd=work, VALUES="extra.yaml", SKIP_BUILD="1", TAG="t1")
    assert proc.returncode == 0, proc.stderr
    (helm,) = [c for c in sandbox.commands() if c[0] == "helm"]
    assert helm == helm_install("t1", str(work / "extra.yaml"))


def test_a_missing_values_file_fails_before_anything_is_created(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    proc = sandbox.run("up", cwd=tmp_path, VALUES="nope.yaml")
    assert proc.returncode == 1
    assert f"VALUES file {tmp_path / 'nope.yaml'} not found" in proc.stderr
    assert sandbox.commands() == []


def test_skip_build_does_not_build_the_images(sandbox: Sandbox) -> None:
    proc = sandbox.run("up", SKIP_BUILD="1")
    assert proc.returncode == 0, proc.stderr
    progs = [c[0] for c in sandbox.commands()]
    assert "images.sh" not in progs
    assert ["kind", "load", "docker-image", "--name", "driftloop"] in [
        c[:5] for c in sandbox.commands()
    ]
    assert helm_install("dev") in sandbox.commands()


@pytest.mark.parametrize("other_clusters", [0, 200_000], ids=["alone", "long-list"])
def test_an_existing_cluster_is_reused(sandbox: Sandbox, other_clusters: int) -> None:
    """With a long cluster list, grep -q stops reading at the first match and kind dies of
    SIGPIPE: under pipefail, ``kind get clusters | grep -q`` then said "no cluster"."""
    sandbox.set_clusters("driftloop")
    proc = sandbox.run("up", SKIP_BUILD="1", STUB_KIND_PADDING=str(other_clusters))
    assert proc.returncode == 0, proc.stderr
    assert [c for c in sandbox.commands() if c[:2] == ["kind", "create"]] == []
    assert "kind cluster driftloop exists" in proc.stderr
    assert any(c[0] == "helm" for c in sandbox.commands())


def test_helm_comes_from_helm_tools_when_not_on_path(sandbox: Sandbox) -> None:
    """Without helm on PATH and without a virtualenv, helm-tools.sh installs into .tools/bin:
    the script must use the path it prints, not assume .venv/bin/helm."""
    (sandbox.stubs / "helm").unlink()
    tools = sandbox.repo / "scripts" / "helm-tools.sh"
    tools.write_text(HELM_TOOLS_STUB)
    tools.chmod(0o755)
    proc = sandbox.run("up", SKIP_BUILD="1")
    assert proc.returncode == 0, proc.stderr
    (helm,) = [c for c in sandbox.calls() if c["prog"] == "helm"]
    assert helm["path"] == str(sandbox.repo / ".tools" / "bin" / "helm")
    assert helm["argv"] == helm_install("dev")[1:]


def test_down_uninstalls_then_deletes_the_cluster(sandbox: Sandbox) -> None:
    sandbox.set_clusters("driftloop")
    proc = sandbox.run("down")
    assert proc.returncode == 0, proc.stderr
    assert sandbox.commands() == [
        ["kind", "get", "clusters"],
        [
            "helm",
            "uninstall",
            "driftloop",
            "--namespace",
            "driftloop",
            "--kube-context",
            "kind-driftloop",
            "--wait",
        ],
        ["kind", "delete", "cluster", "--name", "driftloop"],
    ]
    assert (sandbox.state / "clusters").read_text() == ""


def test_down_without_a_cluster_does_nothing(sandbox: Sandbox) -> None:
    (sandbox.stubs / "helm").unlink()  # helm is not needed (nor installed) for nothing to do
    proc = sandbox.run("down")
    assert proc.returncode == 0, proc.stderr
    assert sandbox.commands() == [["kind", "get", "clusters"]]
    assert "no kind cluster driftloop" in proc.stderr
    assert not (sandbox.repo / ".tools").exists()


@pytest.mark.parametrize("command", ["up", "down"])
def test_a_missing_kind_binary_fails_with_one_readable_line(sandbox: Sandbox, command: str) -> None:
    (sandbox.stubs / "kind").unlink()
    proc = sandbox.run(command)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "ERROR: kind not found on PATH" in lines[0]
    assert "kind.sigs.k8s.io" in lines[0]
    assert sandbox.commands() == []


def test_an_unknown_command_prints_the_usage(sandbox: Sandbox) -> None:
    proc = sandbox.run("sideways")
    assert proc.returncode == 2
    assert "usage:" in proc.stderr
    assert sandbox.commands() == []


def test_the_stubs_are_first_on_path(sandbox: Sandbox) -> None:
    """The sandbox cannot reach a real kind, helm, kubectl or docker."""
    path = f"{sandbox.stubs}:{sandbox.stubs.parent / 'sysbin'}"
    for name in ("kind", "helm", "kubectl", "docker"):
        assert shutil.which(name, path=path) == str(sandbox.stubs / name)
    assert os.access(sandbox.repo / "scripts" / "kind.sh", os.X_OK)
