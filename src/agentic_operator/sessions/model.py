"""AgenticSession vocabulary: API identity, phases, annotation/label keys, child names, conditions.

Everything here is a constant or a pure function of a session object, so the reconciler, the
builders and the tests agree on one spelling of every name. Child-object names are derived from the
session name (never stored in status), which makes them deterministic: a second create of the same
child fails with AlreadyExists instead of producing a duplicate, and that is the duplicate fence.
"""

# Names such as "ambient-runner-token" are object names, not credentials (ruff S105).
# No ``from __future__ import annotations`` here: it would shadow the ``annotations`` helper.
# ruff: noqa: S105

from enum import StrEnum
from typing import Any, Final

from agentic_operator.kube.resources import Obj

GROUP: Final = "vteam.ambient-code"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "AgenticSession"
PROJECT_SETTINGS_KIND: Final = "ProjectSettings"
PROJECT_SETTINGS_NAME: Final = "projectsettings"
"""The one ProjectSettings object a project namespace has (the CRD allows no other name)."""

# --- Annotations on the AgenticSession -----------------------------------------------------------
ANN_DESIRED_PHASE: Final = "ambient-code.io/desired-phase"
"""User intent written by the backend: ``Stopped`` (stop) or ``Running`` (restart)."""
ANN_START_REQUESTED_AT: Final = "ambient-code.io/start-requested-at"
ANN_STOP_REQUESTED_AT: Final = "ambient-code.io/stop-requested-at"
ANN_STOP_REASON: Final = "ambient-code.io/stop-reason"
"""Why a stop was requested: ``inactivity`` (the operator's idle auto-stop) or ``run-finished``
(the backend, for ``spec.stopOnRunFinished``); absent for a user's stop."""
STOP_REASON_INACTIVITY: Final = "inactivity"
STOP_REASON_USER: Final = "user"
ANN_FORCE_EXECUTE_PROMPT: Final = "ambient-code.io/force-execute-prompt"
"""Set (``"true"``) with a restart by the scheduled-session trigger: the next run executes
``spec.initialPrompt`` as a new prompt instead of resuming (the runner's ``IS_RESUME`` is false)."""
ANN_PARENT_SESSION: Final = "vteam.ambient-code/parent-session-id"
"""Continuation lineage; forwarded to the runner as ``PARENT_SESSION_ID``."""
ANN_RUNNER_TOKEN_SECRET: Final = "ambient-code.io/runner-token-secret"
ANN_RUNNER_SA: Final = "ambient-code.io/runner-sa"
"""Both written on the session for the backend (P9) and never read back (see token_secret_name)."""
ANN_CREATED_BY_USER_ID: Final = "ambient-code.io/created-by-user-id"
"""On the runner ServiceAccount: ``spec.userContext.userId``, how the backend tells which user a
runner's token acts for."""

# --- Annotations on children ---------------------------------------------------------------------
ANN_RUN: Final = "ambient-code.io/run"
"""On the Job and its pod template: the run number (``status.run``) the Job belongs to."""
ANN_TOKEN_REFRESHED_AT: Final = "ambient-code.io/token-refreshed-at"
ANN_TOKEN_EXPIRES_AT: Final = "ambient-code.io/token-expires-at"
"""On the token Secret: when its token expires (the TokenRequest's answer)."""

# --- Labels --------------------------------------------------------------------------------------
LABEL_MANAGED: Final = "ambient-code.io/managed"
"""On a Namespace (value ``"true"``): the operator handles sessions in it."""
LABEL_SESSION: Final = "agentic-session"
LABEL_APP: Final = "app"
RUNNER_APP: Final = "ambient-code-runner"
SERVICE_APP: Final = "ambient-code"
RUNNER_SA_APP: Final = "ambient-runner"
TOKEN_SECRET_APP: Final = "ambient-runner-token"
WORKSPACE_APP: Final = "ambient-workspace"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "agentic-operator"
"""Value of ``LABEL_MANAGED_BY`` on every object this operator creates: the one marker that says it
made the object (``ambient-code.io/managed`` and owner references are shared with the backend)."""
LABEL_UPSTREAM_MANAGED_BY: Final = "ambient-code.io/managed-by"
UPSTREAM_MANAGED_BY: Final = "operator"
"""Upstream's operator marks the runner NetworkPolicy ``ambient-code.io/managed-by=operator``: one
carrying it is the same object this operator makes, and is adopted."""

# --- Runner container contract -------------------------------------------------------------------
RUNNER_CONTAINER: Final = "ambient-code-runner"
AGUI_PORT: Final = 8001
AGUI_PORT_NAME: Final = "agui"
TOKEN_SECRET_KEY: Final = "k8s-token"
AGUI_TOKEN_KEY: Final = "agui-token"
"""Key of the runner token Secret holding the per-session AG-UI token: the runner's ``AGUI_TOKEN``,
sent back as ``X-Ambient-Session-Token`` by every caller of the runner but ``/health``."""
SESSION_TOKEN_HEADER: Final = "X-Ambient-Session-Token"
RUNNER_TOKEN_VOLUME: Final = "runner-token"
RUNNER_TOKEN_MOUNT: Final = "/var/run/secrets/ambient"
"""Where the runner reads its API token (the file ``bot-token``, the Secret's ``k8s-token``)."""
RUNNER_TOKEN_FILE: Final = "bot-token"
RUNNER_NETWORK_POLICY: Final = "runner-allow-backend-only"
"""The per-namespace NetworkPolicy that lets only the backend's namespace reach runner pods."""
RUNNER_SECRETS: Final = "ambient-runner-secrets"
INTEGRATION_SECRETS: Final = "ambient-non-vertex-integrations"
VERTEX_SECRET: Final = "ambient-vertex"
OAUTH_SECRET_KEY: Final = "credentials.json"
OAUTH_CLIENT_SECRET_KEY: Final = "google-oauth-client-secret"
"""Key of the runner token Secret that carries ``GOOGLE_OAUTH_CLIENT_SECRET`` to the runner."""
OAUTH_MOUNT: Final = "/app/.google_workspace_mcp/credentials"
GOOGLE_MCP_CREDENTIALS_DIR: Final = "/workspace/.google_workspace_mcp/credentials"
LANGFUSE_SECRET: Final = "ambient-admin-langfuse-secret"
MLFLOW_SECRET: Final = "ambient-admin-mlflow-observability-secret"
S3_ACCESS_KEY_ID_KEY: Final = "s3-access-key-id"
S3_SECRET_ACCESS_KEY_KEY: Final = "s3-secret-access-key"
"""Keys of the runner token Secret that carry the state store's credentials to the helper
containers (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``), when the operator has them."""
TRUSTED_CA_CONFIGMAP: Final = "trusted-ca-bundle"
TRUSTED_CA_KEY: Final = "ca-bundle.crt"
"""A namespace's ConfigMap of extra trusted CAs (OpenShift's injected bundle, a private CA):
mounted into the runner when it exists with this key."""
INIT_HYDRATE_CONTAINER: Final = "init-hydrate"
STATE_SYNC_CONTAINER: Final = "state-sync"

EXIT_PREREQUISITE_FAILED: Final = 2
"""Runner exit code meaning "a prerequisite (credentials, repo access, ...) is missing"."""


class Phase(StrEnum):
    """``status.phase``. An empty phase is treated as Pending by the reconciler."""

    PENDING = "Pending"
    CREATING = "Creating"
    RUNNING = "Running"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    COMPLETED = "Completed"
    FAILED = "Failed"


TERMINAL_PHASES: Final = frozenset({Phase.STOPPED, Phase.COMPLETED, Phase.FAILED})
"""Phases a session only leaves through a restart (``desired-phase=Running``)."""

DESIRED_STOPPED: Final = "Stopped"
DESIRED_RUNNING: Final = "Running"

# --- Conditions: the condition types upstream's Job-era operator wrote ----------------------------
COND_TRUE: Final = "True"
COND_FALSE: Final = "False"
COND_UNKNOWN: Final = "Unknown"

COND_READY: Final = "Ready"
COND_JOB_CREATED: Final = "JobCreated"
COND_RUNNER_STARTED: Final = "RunnerStarted"
COND_SECRETS_READY: Final = "SecretsReady"
COND_INTEGRATION_SECRETS_READY: Final = "IntegrationSecretsReady"
COND_POD_SCHEDULED: Final = "PodScheduled"
COND_REPOS_RECONCILED: Final = "ReposReconciled"
COND_WORKFLOW_RECONCILED: Final = "WorkflowReconciled"
COND_RECONCILED: Final = "Reconciled"
COND_PVC_READY: Final = "PVCReady"
COND_RUNNER_IDENTITY_READY: Final = "RunnerIdentityReady"
COND_VALID_SPEC: Final = "ValidSpec"

# Reasons. Ready=True uses REASON_RUNNING; the others explain why a condition is False/Unknown or
# why a session ended.
REASON_RUNNING: Final = "Running"
REASON_PENDING: Final = "Pending"
REASON_INVALID_SPEC: Final = "InvalidSpec"
REASON_PENDING_TIMEOUT: Final = "PendingTimeout"
REASON_TIMEOUT: Final = "Timeout"
REASON_USER_STOPPED: Final = "UserStopped"
REASON_INACTIVITY_TIMEOUT: Final = "InactivityTimeout"
REASON_STOPPING: Final = "Stopping"
REASON_RESTARTING: Final = "Restarting"
REASON_COMPLETED: Final = "Completed"
REASON_RUNNER_EXIT: Final = "RunnerExit"
REASON_OOM_KILLED: Final = "OOMKilled"
"""The kubelet's reason for a container killed by the kernel for exceeding its memory limit."""
REASON_RUNNER_EXITED: Final = "RunnerExited"
"""The runner container exited non-zero and the Job has not yet said whether it was a timeout."""
REASON_INIT_EXITED: Final = "InitContainerExited"
"""An init container (``init-hydrate``) exited non-zero and the Job has no verdict yet."""
REASON_PREREQUISITE_FAILED: Final = "PrerequisiteFailed"
REASON_POD_FAILED: Final = "PodFailed"
REASON_POD_MISSING: Final = "PodMissing"
REASON_BACKOFF_LIMIT_EXCEEDED: Final = "BackoffLimitExceeded"
REASON_DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
REASON_POD_FAILURE_POLICY: Final = "PodFailurePolicy"
REASON_JOB_FAILED: Final = "JobFailed"
REASON_JOB_CREATED: Final = "JobCreated"
REASON_JOB_EXISTS: Final = "JobExists"
REASON_JOB_MISSING: Final = "JobMissing"
REASON_JOB_CREATION_FAILED: Final = "JobCreationFailed"
REASON_CREATE_FAILED: Final = "CreateFailed"
REASON_TOKEN_PROVISION_FAILED: Final = "TokenProvisionFailed"
REASON_TOKEN_PROVISIONED: Final = "TokenProvisioned"
REASON_RUNNER_SECRET_MISSING: Final = "RunnerSecretMissing"
REASON_SECRET_CHECK_FAILED: Final = "SecretCheckFailed"
REASON_VERTEX_SECRET_MISSING: Final = "VertexSecretMissing"
REASON_VERTEX_SECRET_ERROR: Final = "VertexSecretError"
REASON_ALL_REQUIRED_SECRETS_FOUND: Final = "AllRequiredSecretsFound"
REASON_OPTIONAL_SECRET_FOUND: Final = "OptionalSecretFound"
REASON_OPTIONAL_SECRET_MISSING: Final = "OptionalSecretMissing"
REASON_SCHEDULED: Final = "Scheduled"
REASON_UNSCHEDULABLE: Final = "Unschedulable"
REASON_CONTAINER_RUNNING: Final = "ContainerRunning"
REASON_NO_REPOS: Final = "NoRepos"
REASON_RECONCILED: Final = "Reconciled"
REASON_NOT_CONFIGURED: Final = "NotConfigured"
REASON_UPDATE_FAILED: Final = "UpdateFailed"
REASON_SPEC_APPLIED: Final = "SpecApplied"
REASON_REPO_RECONCILIATION_FAILED: Final = "RepoReconciliationFailed"
REASON_WORKFLOW_RECONCILIATION_FAILED: Final = "WorkflowReconciliationFailed"
REASON_PVC_BOUND: Final = "Bound"
REASON_PVC_PROVISIONING_FAILED: Final = "ProvisioningFailed"

WAITING_FAILURE_REASONS: Final = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "InvalidImageName",
        "CreateContainerError",
    }
)
"""Container waiting reasons that will not resolve on their own: the session fails with them."""


# --- Child names ---------------------------------------------------------------------------------
def job_name(session_name: str) -> str:
    """The runner Job. One name for every run: a run's Job must be gone before the next is made."""
    return f"{session_name}-job"


def service_name(session_name: str) -> str:
    """The AG-UI Service the backend proxies to."""
    return f"session-{session_name}"


def runner_sa_name(session_name: str) -> str:
    return f"ambient-session-{session_name}"


def runner_role_name(session_name: str) -> str:
    return f"ambient-session-{session_name}-role"


def runner_rolebinding_name(session_name: str) -> str:
    return f"ambient-session-{session_name}-rb"


def pvc_name(session_name: str) -> str:
    return f"ambient-workspace-{session_name}"


def oauth_secret_name(session_name: str) -> str:
    """The Google OAuth credentials Secret the backend fills in (the operator creates it empty)."""
    return f"{session_name}-google-oauth"


def token_secret_name(session: Obj) -> str:
    """The runner token Secret, always ``ambient-runner-token-<s>`` (today's platform reads that
    name). The session's ``runner-token-secret`` annotation is written with it for the backend and
    never read back: anyone who may edit the session (its own runner among them) could otherwise
    name any Secret of the namespace, which the operator would then overwrite with the token and
    take as the session's (to be deleted with it)."""
    return f"ambient-runner-token-{(session.get('metadata') or {}).get('name', '')}"


def session_name(session: Obj) -> str:
    return str((session.get("metadata") or {}).get("name", ""))


def session_namespace(session: Obj) -> str:
    return str((session.get("metadata") or {}).get("namespace", ""))


def being_deleted(obj: Obj) -> bool:
    """Whether the object has a deletionTimestamp (waiting on finalizers or dependents)."""
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def namespace_terminating(namespace: Obj) -> bool:
    """Whether the namespace is being deleted (deletionTimestamp set, or phase Terminating): its
    cleanup removes every object in it, and the API server refuses to create new ones."""
    return being_deleted(namespace) or (namespace.get("status") or {}).get("phase") == "Terminating"


def annotations(obj: Obj) -> dict[str, str]:
    """The object's annotations (empty dict when absent); read-only view, do not mutate."""
    ann: Any = (obj.get("metadata") or {}).get("annotations")
    return ann if isinstance(ann, dict) else {}


def owner_reference(session: Obj) -> Obj:
    """Controller ownerReference pointing at the session (always the served ``v1alpha1``).

    ``blockOwnerDeletion`` is false: session deletion must never wait on children, and setting it
    true would require ``update`` on ``agenticsessions/finalizers`` in the operator's RBAC.
    """
    meta = session["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": False,
    }


def job_owner_reference(job: Obj) -> Obj:
    """Controller ownerReference pointing at a run's Job, for what lives exactly as long as the
    run (its AG-UI Service). ``blockOwnerDeletion`` is true, so a foreground delete of the Job
    (a stop) waits for it: setting it takes ``update`` on ``jobs/finalizers``, which the operator's
    ClusterRole grants (enforced where OwnerReferencesPermissionEnforcement is on, as on
    OpenShift)."""
    meta = job["metadata"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(session: Obj, name: str, labels: dict[str, str]) -> Obj:
    """Metadata of an object the session owns: its namespace, ``labels`` plus this operator's
    marker (``LABEL_MANAGED_BY``), the controller ownerReference."""
    return {
        "name": name,
        "namespace": session["metadata"]["namespace"],
        "labels": {**labels, LABEL_MANAGED_BY: MANAGED_BY},
        "ownerReferences": [owner_reference(session)],
    }


def is_owned_by(obj: Obj, session: Obj) -> bool:
    """True when ``obj``'s controller ownerReference is this session (same UID).

    The UID check is what makes AlreadyExists safe to treat as success: an object of the same name
    left over from a deleted session of the same name has a different owner UID.
    """
    uid = (session.get("metadata") or {}).get("uid")
    if not uid:
        return False
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller") and ref.get("uid") == uid:
            return True
    return False


def session_run(session: Obj) -> int:
    """``status.run``: the current run number (0 before the first Job is made)."""
    run = (session.get("status") or {}).get("run")
    return run if isinstance(run, int) and not isinstance(run, bool) and run > 0 else 0


def session_phase(session: Obj) -> Phase:
    """``status.phase`` as a :class:`Phase`; empty or unknown values read as Pending."""
    raw = (session.get("status") or {}).get("phase")
    try:
        return Phase(str(raw))
    except ValueError:
        return Phase.PENDING
