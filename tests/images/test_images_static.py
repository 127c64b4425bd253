"""Static checks of the container images and the Kubernetes scripts (no Docker needed, < 1 s).

What a build cannot tell quickly: layer order (dependencies before source), non-root user, the
base image and GPU variant switches, what the build context leaves out, that the lean serving
image installs every third-party module the serving code reaches, and that the shell scripts
parse. The real builds and the cluster run in `make images` / `make k8s-e2e`.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILES = {
    "platform": DOCKER / "Dockerfile.platform",
    "serving": DOCKER / "Dockerfile.serving",
}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages(path: Path) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions(path):
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_base_image_is_a_build_argument_defaulting_to_python_slim(kind: str) -> None:
    ins = instructions(DOCKERFILES[kind])
    assert ins[0] == ("ARG", "BASE_IMAGE=python:3.11-slim")
    froms = [args for word, args in ins if word == "FROM"]
    assert len(froms) >= 2, "multi-stage build expected"
    assert all(f.startswith("${BASE_IMAGE}") for f in froms)


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dependencies_are_installed_before_the_source_is_copied(kind: str) -> None:
    builder = stages(DOCKERFILES[kind])[0]
    copies = [i for i, (word, args) in enumerate(builder) if word == "COPY"]
    constraints = next(i for i in copies if "requirements/constraints.txt" in builder[i][1])
    source = next(i for i in copies if builder[i][1].startswith(". "))
    dep_install = next(
        i for i, (word, args) in enumerate(builder) if word == "RUN" and "-c /tmp/build/" in args
    )
    assert constraints < dep_install < source


@pytest.mark.parametrize(
    ("kind", "entrypoint"),
    [("platform", '["driftloop"]'), ("serving", '["python", "-m", "serving"]')],
)
def test_final_stage_runs_as_uid_10001_with_one_entrypoint(kind: str, entrypoint: str) -> None:
    final = stages(DOCKERFILES[kind])[-1]
    users = [args for word, args in final if word == "USER"]
    assert users == ["10001:10001"]
    assert [args for word, args in final if word == "ENTRYPOINT"] == [entrypoint]
    run = " ".join(args for word, args in final if word == "RUN")
    assert "--uid 10001" in run
    # Nothing of the build context but the assembled /app reaches the final image.
    assert not [args for word, args in final if word == "COPY" and "--from=builder" not in args]


def test_platform_gpu_variant_selects_the_pytorch_index() -> None:
    ins = instructions(DOCKERFILES["platform"])
    assert ("ARG", "TORCH_VARIANT=cpu") in ins
    script = (DOCKER / "install-torch.sh").read_text()
    assert "https://download.pytorch.org/whl/$variant" in script
    # The serving image is CPU only.
    assert "TORCH_VARIANT" not in DOCKERFILES["serving"].read_text().split("FROM", 1)[1]


def test_install_torch_prefers_a_local_wheel(tmp_path: Path) -> None:
    """install-torch.sh picks docker/wheels/torch-<ver>+<variant>-*.whl when present (pip is
    replaced by a recorder: this checks the selection, not pip)."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").touch()
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "pip").write_text('#!/bin/sh\necho "pip $*"\n')
    (fake_bin / "pip").chmod(0o755)
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin"}
    script = str(DOCKER / "install-torch.sh")
    local = subprocess.run(
        ["sh", script, "cpu", "2.13.0", str(wheels), "c.txt"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "torch-2.13.0+cpu-cp311" in local
    assert "download.pytorch.org" not in local
    gpu = subprocess.run(
        ["sh", script, "cu128", "2.13.0", str(wheels), "c.txt"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--index-url https://download.pytorch.org/whl/cu128" in gpu
    assert "torch==2.13.0" in gpu


def test_dockerignore_keeps_state_venv_git_and_caches_out() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in (".venv", ".driftloop", ".git", "**/__pycache__", ".pytest_cache", ".mypy_cache"):
        assert needed in patterns
    # The optional build-context folders must stay in the context.
    assert not patterns & {"docker", "docker/wheels", "docker/certs", "requirements"}


def _requirement_names(path: Path) -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(re.split(r"[\[=<>!~ ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_serving_requirements_are_pinned_by_the_constraints_and_lean() -> None:
    names = _requirement_names(DOCKER / "requirements-serving.txt")
    pins = _constraints()
    assert [n for n in names if n not in pins] == []
    heavy = {"prefect", "dvc", "evidently", "optuna", "mlflow", "pytest", "ruff", "mypy", "torch"}
    assert not heavy & set(names)


def test_platform_extras_are_pinned_exactly() -> None:
    for line in (DOCKER / "requirements-platform-extra.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][0-9A-Za-z.]*", line), line


# Top-level module -> distribution, for what the serving code may import.
MODULE_DIST = {
    "fastapi": "fastapi",
    "starlette": "fastapi",
    "uvicorn": "uvicorn",
    "mlflow": "mlflow-skinny",
    "pandas": "pandas",
    "numpy": "numpy",
    "pyarrow": "pyarrow",
    "sklearn": "scikit-learn",
    "cloudpickle": "cloudpickle",
    "pydantic": "pydantic",
    "pydantic_settings": "pydantic-settings",
    "prometheus_client": "prometheus-client",
    "httpx": "httpx",
    "orjson": "orjson",
    "yaml": "pyyaml",
    "feast": "feast",
    "redis": "redis",
    "sqlalchemy": "sqlalchemy",
    "alembic": "alembic",
    "torch": "torch",
    "duckdb": "duckdb",
    "ibis": "ibis-framework",
    "google": "feast",  # google.protobuf: protobuf, a dependency of feast
}


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    base = ROOT / "platform" if parts[0] == "driftloop" else ROOT
    module, package = base.joinpath(*parts).with_suffix(".py"), base.joinpath(*parts, "__init__.py")
    for candidate in (module, package):
        if candidate.exists():
            return candidate
    return None


def _module_level_nodes(tree: ast.Module) -> set[int]:
    """ids of import nodes outside functions (module body, also under if/try), except those
    under ``if TYPE_CHECKING:``, which never run."""
    out: set[int] = set()
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            out.add(id(node))
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            todo.extend(ast.iter_child_nodes(node))
    return out


def _third_party_imports_reached_from(start: str) -> dict[str, str]:
    """Third-party top-level modules imported (lazily too) by `start` and by every first-party
    module it reaches; value: one first-party module that imports it. Every import of a serving
    module is followed; of a driftloop module only the module-level ones (a driftloop function
    serving never calls, e.g. materialization, may import more)."""
    first_party = {"driftloop", "serving"}
    stdlib = set(sys.stdlib_module_names)
    seen: set[str] = set()
    todo = [start]
    found: dict[str, str] = {}
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        path = _module_file(mod)
        if path is None:
            continue
        tree = ast.parse(path.read_text())
        top_level = _module_level_nodes(tree)
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                top = name.split(".")[0]
                if top in first_party:
                    if mod.startswith("serving") or id(node) in top_level:
                        todo.append(name)
                elif top not in stdlib and top != "__future__":
                    found.setdefault(top, mod)
    return found


def test_serving_image_installs_every_module_the_serving_code_reaches() -> None:
    reached = _third_party_imports_reached_from("serving.__main__")
    for mod in ("serving.app", "serving.handles", "serving.features", "serving.capture"):
        reached.update(_third_party_imports_reached_from(mod))
    installed = set(_requirement_names(DOCKER / "requirements-serving.txt")) | {"torch"}
    missing = {
        mod: where
        for mod, where in reached.items()
        if MODULE_DIST.get(mod, f"<unknown:{mod}>") not in installed
    }
    assert missing == {}, f"modules serving reaches but its image lacks (module: by): {missing}"


SCRIPTS = [
    ROOT / "scripts" / "images.sh",
    ROOT / "scripts" / "kind.sh",
    *sorted((ROOT / "scripts" / "k8s-local").glob("*.sh")),
]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_parse_and_are_executable(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True)
    if script.name not in {"common.sh"}:
        assert script.stat().st_mode & 0o111, f"{script} is not executable"


def test_kind_config_and_make_targets() -> None:
    config = yaml.safe_load((DOCKER / "kind-config.yaml").read_text())
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    roles = [n["role"] for n in config["nodes"]]
    assert roles.count("control-plane") == 1
    # Host ports only on loopback.
    for node in config["nodes"]:
        for mapping in node.get("extraPortMappings", []):
            assert mapping["listenAddress"] == "127.0.0.1"
    snippet = (ROOT / "Makefile").read_text()
    for target in ("images", "kind-up", "kind-down", "k8s-e2e"):
        assert re.search(rf"^{target}:", snippet, re.M), target


def test_k8s_local_values_use_local_images_and_exec_probes() -> None:
    """`make k8s-e2e` runs the whole chart from images built on the machine (nothing can be
    pulled there): every image local and never pulled, every component on (the chart's
    defaults), exec probes and the host-network test mode."""
    values = yaml.safe_load((ROOT / "scripts" / "k8s-local" / "values-k8s-local.yaml").read_text())
    for image in ("platform", "serving", "postgresql", "redis"):
        assert values["image"][image]["pullPolicy"] == "Never"
        assert not values["image"][image]["repository"].startswith("docker.io/")
    assert values["probes"]["mode"] == "exec"
    assert values["hostNetwork"]["enabled"] is True
    for component in ("postgresql", "redis", "mlflow", "prefect", "worker", "deploy", "serving"):
        assert values.get(component, {}).get("enabled", True) is True, component


def test_serving_image_runs_in_production_so_auth_is_on() -> None:
    """The image binds 0.0.0.0: it must fail closed (auth on, weak tokens refused), not serve
    a development API to the network."""
    text = (DOCKER / "Dockerfile.serving").read_text()
    assert "DRIFTLOOP_SERVING__HOST=0.0.0.0" in text
    assert "DRIFTLOOP_ENVIRONMENT=production" in text


def test_the_mlflow_database_uris_name_a_driver_the_image_has() -> None:
    """Found live (make k8s-e2e): SQLAlchemy 2.1 maps a plain ``postgresql://`` URI to psycopg 3,
    which the platform image does not carry, so MLflow crashed at start on the chart. The URIs
    the chart gives MLflow must name the driver that docker/requirements-platform-extra.txt
    installs."""
    extra = (DOCKER / "requirements-platform-extra.txt").read_text()
    assert "psycopg2-binary==" in extra
    assert "\npsycopg==" not in extra
    assert "psycopg[" not in extra
    templates = ROOT / "helm" / "driftloop" / "templates" / "mlflow"
    uris = re.findall(
        r"(?:value: \"|database_uri = )(postgresql[+\w]*)://",
        (templates / "deployment.yaml").read_text()
        + (templates / "auth-config-secret.yaml").read_text(),
    )
    assert uris == ["postgresql+psycopg2", "postgresql+psycopg2"]


def test_every_program_the_platform_code_looks_for_is_in_the_platform_image() -> None:
    """Found live (make k8s-e2e): the ingest flow's data repository needs git, which the
    platform image lacked, so the first flow-run Job failed. Every ``shutil.which("<prog>")`` in
    the code the platform image runs must name a program its final stage installs."""
    programs: set[str] = set()
    for folder in ("platform", "flows"):
        for path in (ROOT / folder).rglob("*.py"):
            programs |= set(re.findall(r"shutil\.which\(\"([\w.-]+)\"\)", path.read_text()))
    assert "git" in programs
    text = (DOCKER / "Dockerfile.platform").read_text()
    final = text[text.rindex("\nFROM ") :]
    installed = set(re.findall(r"apt-get install[^&]*?((?:\s+[a-z0-9][\w.+-]*)+)", final))
    packages = {p for group in installed for p in group.split() if not p.startswith("-")}
    missing = sorted(p for p in programs if p not in packages)
    assert missing == [], f"not installed in the platform image: {missing}"


def test_serving_image_installs_what_feast_loads_for_the_configured_stores() -> None:
    """Found live (make k8s-e2e): Feast imports the configured offline store's module by name
    while it reads the repo config, even for online lookups; the serving image lacked duckdb, so
    flight-mode requests got 503. The store modules driftloop configures (the chart's redis
    online store, the local sqlite one) are followed here like serving's own imports."""
    import importlib.util

    from driftloop.features.config import repo_config_dict
    from driftloop.settings import Settings

    installed = set(_requirement_names(DOCKER / "requirements-serving.txt"))
    stores: set[tuple[str, str]] = set()
    for online in ("redis", "sqlite"):
        config = repo_config_dict(Settings(features={"online_store": online}))
        stores |= {("offline", config["offline_store"]["type"])}
        stores |= {("online", config["online_store"]["type"])}
    assert ("offline", "duckdb") in stores
    for kind, store in sorted(stores):
        spec = importlib.util.find_spec(f"feast.infra.{kind}_stores.{store}")
        assert spec is not None, store
        assert spec.origin, store
        tree = ast.parse(Path(spec.origin).read_text())
        top_level = _module_level_nodes(tree)
        tops: set[str] = set()
        for node in ast.walk(tree):
            if id(node) not in top_level:
                continue
            if isinstance(node, ast.Import):
                tops |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops.add(node.module.split(".")[0])
        third = {t for t in tops if t not in sys.stdlib_module_names and t != "__future__"}
        missing = {t for t in third if MODULE_DIST.get(t, f"<unknown:{t}>") not in installed}
        assert missing == set(), f"Feast's {kind} store {store} needs what serving lacks: {missing}"
