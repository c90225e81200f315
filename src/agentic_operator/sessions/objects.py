"""Builders of the objects a run owns besides its Job: the AG-UI Service, the runner identity
(ServiceAccount, Role, RoleBinding, token Secret), the Google OAuth placeholder Secret and the
workspace PVC; and of the namespace's runner NetworkPolicy.

Pure functions from a session (and the config) to plain dicts, each with a controller
ownerReference to the session (:func:`.model.child_metadata`), except the Service, a dependent of
the run's Job, and the NetworkPolicy, which belongs to the namespace.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Final

from agentic_operator.kube.resources import Obj
from agentic_operator.sessions.builders import runner_labels
from agentic_operator.sessions.config import SessionConfig
from agentic_operator.sessions.model import (
    AGUI_PORT,
    AGUI_PORT_NAME,
    AGUI_TOKEN_KEY,
    ANN_CREATED_BY_USER_ID,
    ANN_TOKEN_REFRESHED_AT,
    GROUP,
    LABEL_APP,
    LABEL_MANAGED_BY,
    LABEL_SESSION,
    LABEL_UPSTREAM_MANAGED_BY,
    MANAGED_BY,
    OAUTH_CLIENT_SECRET_KEY,
    OAUTH_SECRET_KEY,
    RUNNER_APP,
    RUNNER_NETWORK_POLICY,
    RUNNER_SA_APP,
    S3_ACCESS_KEY_ID_KEY,
    S3_SECRET_ACCESS_KEY_KEY,
    SERVICE_APP,
    TOKEN_SECRET_APP,
    TOKEN_SECRET_KEY,
    UPSTREAM_MANAGED_BY,
    WORKSPACE_APP,
    child_metadata,
    job_owner_reference,
    oauth_secret_name,
    pvc_name,
    runner_role_name,
    runner_rolebinding_name,
    runner_sa_name,
    service_name,
    token_secret_name,
)
from agentic_operator.sessions.status import now_rfc3339

NAMESPACE_NAME_LABEL: Final = "kubernetes.io/metadata.name"
"""The label the API server puts on every Namespace with its own name."""


def build_service(session: Obj, job: Obj, *, port: int = AGUI_PORT) -> Obj:
    """AG-UI Service ``session-<s>``, a dependent of the run's ``job``: it exists while the run's
    runner can, and goes with the Job (the garbage collector removes it; a foreground delete of the
    Job waits for it, ``blockOwnerDeletion``). It selects by the session's labels, so a Service of
    an earlier run still being collected serves the new run's pod meanwhile. ``port``: the
    runner's (its agent registry entry's, 8001 by default), on the Service too."""
    name = str(session["metadata"]["name"])
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(name),
            "namespace": session["metadata"]["namespace"],
            "labels": {LABEL_APP: SERVICE_APP, LABEL_SESSION: name, LABEL_MANAGED_BY: MANAGED_BY},
            "ownerReferences": [job_owner_reference(job)],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": runner_labels(name),
            "ports": [
                {
                    "name": AGUI_PORT_NAME,
                    "port": port,
                    "targetPort": AGUI_PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }


def build_runner_service_account(session: Obj) -> Obj:
    """``ambient-session-<s>``, annotated with the session's ``spec.userContext.userId``
    (``created-by-user-id``): the backend resolves a runner's token to that user (child sessions
    get the user's context)."""
    name = str(session["metadata"]["name"])
    meta = child_metadata(session, runner_sa_name(name), {LABEL_APP: RUNNER_SA_APP})
    user = ((session.get("spec") or {}).get("userContext") or {}).get("userId")
    if isinstance(user, str) and user:
        meta["annotations"] = {ANN_CREATED_BY_USER_ID: user}
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta,
        "automountServiceAccountToken": False,
    }


RUNNER_ROLE_RULES: Final = (
    # The session itself and child sessions (the backend creates those with the runner's token);
    # update is what the backend's AG-UI proxy asks of its caller.
    (GROUP, "agenticsessions", ("get", "list", "watch", "create", "update", "patch")),
    ("authorization.k8s.io", "selfsubjectaccessreviews", ("create",)),
    # The backend reads ambient-runner-secrets with the runner's token before making a child.
    ("", "secrets", ("get",)),
    ("mlflow.kubeflow.org", "experiments", ("get", "list", "update")),
)
"""What the runner may do with its token, as the platform's runner and backend need it."""


def build_runner_role(session: Obj) -> Obj:
    name = str(session["metadata"]["name"])
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": child_metadata(session, runner_role_name(name), {LABEL_APP: RUNNER_SA_APP}),
        "rules": [
            {"apiGroups": [group], "resources": [resource], "verbs": list(verbs)}
            for group, resource, verbs in RUNNER_ROLE_RULES
        ],
    }


def build_runner_role_binding(session: Obj) -> Obj:
    meta = session["metadata"]
    name = str(meta["name"])
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": child_metadata(
            session, runner_rolebinding_name(name), {LABEL_APP: RUNNER_SA_APP}
        ),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": runner_role_name(name),
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": runner_sa_name(name), "namespace": meta["namespace"]}
        ],
    }


def build_token_secret(
    session: Obj, token: str, now: datetime, *, google_oauth_client_secret: str = ""
) -> Obj:
    """The runner token Secret (``k8s-token``), stamped with when it was minted for refresh.

    With ``google_oauth_client_secret`` it also carries that value
    (``google-oauth-client-secret``), which the runner gets as ``GOOGLE_OAUTH_CLIENT_SECRET``.
    """
    meta = child_metadata(session, token_secret_name(session), {LABEL_APP: TOKEN_SECRET_APP})
    meta["annotations"] = {ANN_TOKEN_REFRESHED_AT: now_rfc3339(now)}
    data = {TOKEN_SECRET_KEY: _b64(token)}
    if google_oauth_client_secret:
        data[OAUTH_CLIENT_SECRET_KEY] = _b64(google_oauth_client_secret)
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": meta, "data": data}


def add_runner_keys(body: Obj, previous: Obj | None, cfg: SessionConfig) -> None:
    """Complete a token Secret ``body`` with the keys the runner pod refers to: ``agui-token``,
    the runner's per-session AG-UI token, generated (a random UUID) when the Secret is first made
    and kept from ``previous`` (the Secret it replaces) afterwards, since a running pod holds it;
    and the S3 keys when the operator has them (``s3-access-key-id``, ``s3-secret-access-key``:
    the helper containers' ``AWS_*`` variables refer to them instead of carrying the values)."""
    data = body.setdefault("data", {})
    kept = ((previous or {}).get("data") or {}).get(AGUI_TOKEN_KEY)
    data[AGUI_TOKEN_KEY] = kept if isinstance(kept, str) and kept else _b64(str(uuid.uuid4()))
    if cfg.s3_credentials:
        data[S3_ACCESS_KEY_ID_KEY] = _b64(cfg.s3_access_key_id)
        data[S3_SECRET_ACCESS_KEY_KEY] = _b64(cfg.s3_secret_access_key)


def runner_keys_current(secret: Obj, cfg: SessionConfig) -> bool:
    """The token Secret has an ``agui-token`` and exactly the operator's current S3 keys."""
    data = secret.get("data") or {}
    want = {}
    if cfg.s3_credentials:
        want = {
            S3_ACCESS_KEY_ID_KEY: _b64(cfg.s3_access_key_id),
            S3_SECRET_ACCESS_KEY_KEY: _b64(cfg.s3_secret_access_key),
        }
    have = {k: data.get(k) for k in (S3_ACCESS_KEY_ID_KEY, S3_SECRET_ACCESS_KEY_KEY) if k in data}
    return bool(data.get(AGUI_TOKEN_KEY)) and have == want


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode("ascii")


def build_oauth_placeholder_secret(session: Obj) -> Obj:
    """The empty Google OAuth credentials Secret (``credentials.json``) the runner mounts and the
    backend fills in after the user's consent; created only when absent, never overwritten."""
    name = str(session["metadata"]["name"])
    labels = {
        LABEL_APP: SERVICE_APP,
        "ambient-code.io/session": name,
        "ambient-code.io/provider": "google",
        "ambient-code.io/oauth": "placeholder",
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": child_metadata(session, oauth_secret_name(name), labels),
        "data": {OAUTH_SECRET_KEY: ""},
    }


def build_workspace_pvc(session: Obj, cfg: SessionConfig | None = None) -> Obj:
    """Per-session workspace PVC (when ``RUNNER_WORKSPACE_PVC`` is on); kept across restarts."""
    name = str(session["metadata"]["name"])
    size = (cfg or SessionConfig()).workspace_pvc_size
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": child_metadata(
            session, pvc_name(name), {LABEL_APP: WORKSPACE_APP, LABEL_SESSION: name}
        ),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    }


def build_runner_network_policy(namespace: str, cfg: SessionConfig, ports: Iterable[int]) -> Obj:
    """``runner-allow-backend-only``: runner pods of ``namespace`` admit TCP on ``ports`` (the
    runner ports) from the backend's namespace only, and from the operator's own when it is
    another one (the operator's spec pushes would be blocked otherwise). Namespace-wide and
    shared by every session, so it has no owner and outlives them."""
    peers = [cfg.backend_namespace]
    if cfg.operator_namespace != cfg.backend_namespace:
        peers.append(cfg.operator_namespace)
    labels = {
        LABEL_APP: SERVICE_APP,
        LABEL_UPSTREAM_MANAGED_BY: UPSTREAM_MANAGED_BY,
        LABEL_MANAGED_BY: MANAGED_BY,
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": RUNNER_NETWORK_POLICY, "namespace": namespace, "labels": labels},
        "spec": {
            "podSelector": {"matchLabels": {LABEL_APP: RUNNER_APP}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: ns}}}
                        for ns in peers
                    ],
                    "ports": [{"protocol": "TCP", "port": p} for p in sorted(set(ports))],
                }
            ],
        },
    }
