"""Who may do what on the MLflow registry: users and permissions of MLflow's basic auth.

Three users, each with the least permission that works (MLflow's permission levels: READ <
USE < EDIT < MANAGE; the server's ``default_permission`` is ``NO_PERMISSIONS``, so a user can
do nothing without a grant and a request without credentials gets 401):

=========  ============================  ===================================================
user       experiment (training runs)    registered model (versions, aliases, tags)
=========  ============================  ===================================================
flows      MANAGE                        MANAGE: registers versions, removes a failed one
serving    READ (downloads artifacts)    READ: the reconciler reads aliases and tags
rollout    none                          MANAGE: the registry writers set and delete aliases
                                         and canary tags (MLflow counts deleting an alias as
                                         a delete: EDIT is not enough)
=========  ============================  ===================================================

:func:`provision` creates or updates the users and their grants (it pre-creates the experiment
and the registered model, which grants need); running it again changes nothing. The embedded
platform runs it at every ``driftloop up`` with the passwords of ``{state}/secrets/``; the Helm
chart runs ``driftloop auth provision`` as a Job with passwords from a Secret.

MLflow is spoken to over its REST API with ``httpx`` and explicit basic auth: the admin
identity never enters this process's environment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

from driftloop.errors import (
    AuthenticationError,
    ConfigurationError,
    PermissionDeniedError,
    ServiceUnavailableError,
)
from driftloop.settings import (
    MLFLOW_ADMIN,
    MLFLOW_ROLES,
    Settings,
    embedded_mlflow_credentials,
    get_settings,
    mlflow_secret_name,
    secrets_dir,
)

logger = logging.getLogger(__name__)

#: Grants per role: (experiment permission, registered model permission); None: no grant.
GRANTS: dict[str, tuple[str | None, str | None]] = {
    "flows": ("MANAGE", "MANAGE"),
    "serving": ("READ", "READ"),
    "rollout": (None, "MANAGE"),
}
MIN_PASSWORD_LENGTH = 12  # MLflow refuses shorter ones


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    @property
    def auth(self) -> httpx.BasicAuth:
        return httpx.BasicAuth(self.username, self.password)


@dataclass
class ProvisionResult:
    """What :func:`provision` changed (empty lists: everything was already in place)."""

    created_users: list[str] = field(default_factory=list)
    updated_passwords: list[str] = field(default_factory=list)
    granted: list[str] = field(default_factory=list)
    created_resources: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(
            self.created_users or self.updated_passwords or self.granted or self.created_resources
        )

    def line(self) -> str:
        if not self.changed:
            return "MLflow users and permissions already in place"
        parts = [
            f"{label}: {', '.join(items)}"
            for label, items in (
                ("created users", self.created_users),
                ("new passwords", self.updated_passwords),
                ("granted", self.granted),
                ("created", self.created_resources),
            )
            if items
        ]
        return "; ".join(parts)


class _Mlflow:
    """A minimal REST client of one MLflow server acting as one user."""

    def __init__(self, uri: str, creds: Credentials, timeout: float) -> None:
        self.uri = uri.rstrip("/")
        self.creds = creds
        self.http = httpx.Client(base_url=self.uri, auth=creds.auth, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def call(
        self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any
    ) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceUnavailableError(
                f"MLflow is unreachable at {self.uri} ({type(exc).__name__})"
            ) from None
        if response.status_code in ok:
            return response
        if response.status_code == 401:
            raise AuthenticationError(
                f"MLflow at {self.uri} refused the credentials of user {self.creds.username!r}"
            )
        if response.status_code == 403:
            raise PermissionDeniedError(
                f"MLflow user {self.creds.username!r} may not {method} {path}"
            )
        raise ServiceUnavailableError(
            f"MLflow {method} {path} answered HTTP {response.status_code}: "
            f"{_message(response)[:200]}"
        )


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", response.text))
    except ValueError:
        return response.text


def _check_credentials(role: str, creds: Credentials) -> None:
    if not creds.username or not creds.password:
        raise ConfigurationError(f"the {role} user needs a username and a password")
    if len(creds.password) < MIN_PASSWORD_LENGTH:
        raise ConfigurationError(
            f"the password of the {role} user is shorter than {MIN_PASSWORD_LENGTH} characters"
        )


def _authenticates(uri: str, creds: Credentials, timeout: float) -> bool:
    """Whether MLflow accepts ``creds`` (asks for the user itself, which any user may read)."""
    client = _Mlflow(uri, creds, timeout)
    try:
        response = client.call(
            "GET",
            "/api/2.0/mlflow/users/get",
            params={"username": creds.username},
            ok=(200, 401, 403),
        )
    finally:
        client.close()
    return response.status_code == 200


def _ensure_user(admin: _Mlflow, creds: Credentials, out: ProvisionResult, timeout: float) -> None:
    got = admin.call(
        "GET", "/api/2.0/mlflow/users/get", params={"username": creds.username}, ok=(200, 404)
    )
    if got.status_code == 404:
        admin.call(
            "POST",
            "/api/2.0/mlflow/users/create",
            json={"username": creds.username, "password": creds.password},
        )
        out.created_users.append(creds.username)
        return
    if got.json().get("user", {}).get("is_admin"):
        # A role user must never be an administrator: take it back.
        admin.call(
            "PATCH",
            "/api/2.0/mlflow/users/update-admin",
            json={"username": creds.username, "is_admin": False},
        )
    if not _authenticates(admin.uri, creds, timeout):
        admin.call(
            "PATCH",
            "/api/2.0/mlflow/users/update-password",
            json={"username": creds.username, "password": creds.password},
        )
        out.updated_passwords.append(creds.username)


def _ensure_experiment(admin: _Mlflow, name: str, out: ProvisionResult) -> str:
    got = admin.call(
        "GET",
        "/api/2.0/mlflow/experiments/get-by-name",
        params={"experiment_name": name},
        ok=(200, 404),
    )
    if got.status_code == 200:
        experiment = got.json()["experiment"]
        if experiment.get("lifecycle_stage") == "deleted":
            admin.call(
                "POST",
                "/api/2.0/mlflow/experiments/restore",
                json={"experiment_id": experiment["experiment_id"]},
            )
        return str(experiment["experiment_id"])
    created = admin.call("POST", "/api/2.0/mlflow/experiments/create", json={"name": name})
    out.created_resources.append(f"experiment {name}")
    return str(created.json()["experiment_id"])


def _ensure_registered_model(admin: _Mlflow, name: str, out: ProvisionResult) -> None:
    got = admin.call(
        "GET", "/api/2.0/mlflow/registered-models/get", params={"name": name}, ok=(200, 404)
    )
    if got.status_code == 404:
        admin.call(
            "POST",
            "/api/2.0/mlflow/registered-models/create",
            json={
                "name": name,
                "description": "P(arrival delay > 15 min) for NYC flights; served by driftloop.",
            },
        )
        out.created_resources.append(f"registered model {name}")


def _grants_of(admin: _Mlflow, username: str) -> dict[tuple[str, str], str]:
    listed = admin.call(
        "GET", "/api/3.0/mlflow/users/permissions/list", params={"username": username}
    )
    return {
        (str(row.get("resource_type")), str(row.get("resource_pattern"))): str(
            row.get("permission")
        )
        for row in listed.json().get("permissions", [])
    }


def _ensure_grant(
    admin: _Mlflow,
    username: str,
    resource: tuple[str, str],
    permission: str | None,
    current: dict[tuple[str, str], str],
    out: ProvisionResult,
) -> None:
    """Exactly ``permission`` for ``username`` on ``resource`` (None: no grant)."""
    resource_type, resource_id = resource
    have = current.get(resource)
    if have == permission:
        return
    body = {"username": username, "resource_type": resource_type, "resource_id": resource_id}
    if have is not None:
        admin.call("POST", "/api/3.0/mlflow/users/permissions/revoke", json=body)
    if permission is not None:
        admin.call(
            "POST",
            "/api/3.0/mlflow/users/permissions/grant",
            json={**body, "permission": permission},
        )
    out.granted.append(f"{username} {permission or 'nothing'} on {resource_type} {resource_id}")


def provision(
    uri: str,
    admin: Credentials,
    users: dict[str, Credentials],
    experiment: str,
    registered_model: str,
    timeout: float = 10.0,
) -> ProvisionResult:
    """Create or update the ``users`` (role -> credentials, roles of :data:`GRANTS`) on the
    MLflow server at ``uri`` as ``admin``, and give each exactly its grants on ``experiment``
    and ``registered_model`` (both created when missing). Idempotent."""
    unknown = sorted(set(users) - set(GRANTS))
    if unknown:
        raise ConfigurationError(f"unknown MLflow role(s): {', '.join(unknown)}")
    for role, creds in users.items():
        _check_credentials(role, creds)
    names = [c.username for c in users.values()]
    if admin.username in names or len(set(names)) != len(names):
        raise ConfigurationError("the admin and each role need a username of their own")
    out = ProvisionResult()
    client = _Mlflow(uri, admin, timeout)
    try:
        if not _authenticates(uri, admin, timeout):
            raise AuthenticationError(
                f"MLflow at {uri} refused the admin credentials of {admin.username!r} (is it "
                "running with --app-name basic-auth, and is this its admin password?)"
            )
        experiment_id = _ensure_experiment(client, experiment, out)
        _ensure_registered_model(client, registered_model, out)
        for role, creds in users.items():
            _ensure_user(client, creds, out, timeout)
            on_experiment, on_model = GRANTS[role]
            current = _grants_of(client, creds.username)
            _ensure_grant(
                client,
                creds.username,
                ("experiment", experiment_id),
                on_experiment,
                current,
                out,
            )
            _ensure_grant(
                client,
                creds.username,
                ("registered_model", registered_model),
                on_model,
                current,
                out,
            )
    finally:
        client.close()
    logger.info("MLflow access at %s: %s", uri, out.line())
    return out


def rotate_admin_password(uri: str, admin: Credentials, new_password: str) -> None:
    """Give the MLflow admin ``new_password`` (MLflow reads the configured admin password only
    when it first creates the admin, so a rotation goes through its API)."""
    _check_credentials("admin", Credentials(admin.username, new_password))
    client = _Mlflow(uri, admin, 10.0)
    try:
        client.call(
            "PATCH",
            "/api/2.0/mlflow/users/update-password",
            json={
                "username": admin.username,
                "password": new_password,
                "current_password": admin.password,
            },
        )
    finally:
        client.close()


def embedded_users(settings: Settings) -> tuple[Credentials, dict[str, Credentials]]:
    """Admin and role credentials of the embedded platform (generated into the state)."""
    admin = embedded_mlflow_credentials(settings, "admin")
    if admin is None:
        raise ConfigurationError(
            "MLflow auth is off or the tracking URI is external: nothing to provision here "
            "(use `driftloop auth provision` with DRIFTLOOP_AUTH_* variables)"
        )
    users: dict[str, Credentials] = {}
    for role in MLFLOW_ROLES:
        creds = embedded_mlflow_credentials(settings, role)
        assert creds is not None  # same condition as the admin's
        users[role] = Credentials(*creds)
    return Credentials(*admin), users


def provision_embedded(settings: Settings | None = None) -> ProvisionResult:
    """:func:`provision` on the embedded MLflow server with the state folder's passwords."""
    settings = settings or get_settings()
    admin, users = embedded_users(settings)
    try:
        return provision(
            settings.mlflow.uri,
            admin,
            users,
            settings.mlflow.experiment,
            settings.mlflow.registered_model,
            timeout=settings.mlflow.request_timeout_s,
        )
    except AuthenticationError:
        raise AuthenticationError(
            f"the embedded MLflow server refused the admin password in "
            f"{secrets_dir(settings) / mlflow_secret_name('admin')}: it was created with another "
            f"one (restore that file, or stop the platform and delete "
            f"{settings.state / 'mlflow' / 'auth.db'} to re-create the users)"
        ) from None


__all__ = [
    "GRANTS",
    "MLFLOW_ADMIN",
    "Credentials",
    "ProvisionResult",
    "embedded_users",
    "provision",
    "provision_embedded",
    "rotate_admin_password",
]
