"""The executor (sessions/apply.py) and the whole reconcile against an in-memory API.

``FakeApi`` keeps objects by (plural, namespace, name) with resourceVersions, answers the way the
API server does (AlreadyExists, NotFound, Conflict on a stale resourceVersion or UID
precondition) and records every call, so the tests can count requests and inject failures.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pytest

from agentic_operator.clock import FakeClock
from agentic_operator.kube.errors import AlreadyExists, ApiError, Conflict, Forbidden, NotFound
from agentic_operator.kube.resources import (
    AGENTIC_SESSIONS,
    JOBS,
    ROLE_BINDINGS,
    ROLES,
    SECRETS,
    SERVICE_ACCOUNTS,
    SERVICES,
    Obj,
    Resource,
)
from agentic_operator.registry import REGISTRY
from agentic_operator.runtime.controller import Result
from agentic_operator.sessions import metrics as m
from agentic_operator.sessions import netpol
from agentic_operator.sessions.apply import Executor
from agentic_operator.sessions.observe import Caches
from agentic_operator.sessions.plan import (
    NEXT_STEP,
    Count,
    Create,
    Delete,
    EnsureIdentity,
    Event,
    Plan,
    ProvisionToken,
    Replace,
    WriteStatus,
)
from agentic_operator.sessions.reconciler import SessionReconciler
from agentic_operator.sessions.running import refresh_token
from tests.unit.sessionfix import CFG, NOW, NS, observe, session


class FakeApi:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.fail: dict[tuple[str, str, str], ApiError] = {}
        self._rv = 100

    def put(self, res: Resource, obj: Obj) -> Obj:
        self._rv += 1
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(self._rv)
        meta.setdefault("uid", f"uid-{meta['name']}")
        self.objects[(res.plural, meta.get("namespace", ""), meta["name"])] = obj
        return copy.deepcopy(obj)

    def _enter(self, verb: str, res: Resource, name: str) -> None:
        self.calls.append((verb, res.plural, name))
        err = self.fail.pop((verb, res.plural, name), None)
        if err is not None:
            raise err

    def _stored(self, res: Resource, name: str, ns: str | None) -> Obj:
        obj = self.objects.get((res.plural, ns or "", name))
        if obj is None:
            raise NotFound(404, "NotFound", f'{res.plural} "{name}" not found')
        return obj

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj:
        self._enter("get", res, name)
        return copy.deepcopy(self._stored(res, name, namespace))

    async def create(self, res: Resource, body: Obj, namespace: str | None = None) -> Obj:
        name = body["metadata"]["name"]
        self._enter("create", res, name)
        if (res.plural, namespace or "", name) in self.objects:
            raise AlreadyExists(409, "AlreadyExists", f'{res.plural} "{name}" already exists')
        return self.put(res, {**body, "metadata": {**body["metadata"], "namespace": namespace}})

    async def replace(
        self,
        res: Resource,
        name: str,
        body: Obj,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> Obj:
        self._enter("replace" + (f"/{subresource}" if subresource else ""), res, name)
        stored = self._stored(res, name, namespace)
        if body["metadata"].get("resourceVersion") != stored["metadata"]["resourceVersion"]:
            raise Conflict(409, "Conflict", "the object has been modified")
        new = copy.deepcopy(stored)
        if subresource == "status":
            new["status"] = body.get("status")
        else:
            new = {**body, "status": stored.get("status")}
        return self.put(res, new)

    async def patch(self, res: Resource, name: str, body: Obj, namespace: str | None = None) -> Obj:
        self._enter("patch", res, name)
        stored = copy.deepcopy(self._stored(res, name, namespace))
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if rv is not None and rv != stored["metadata"]["resourceVersion"]:
            raise Conflict(409, "Conflict", "the object has been modified")
        for key, value in body.items():
            if key == "metadata":
                ann = stored["metadata"].setdefault("annotations", {})
                for k, v in (value.get("annotations") or {}).items():
                    if v is None:
                        ann.pop(k, None)
                    else:
                        ann[k] = v
            else:
                stored[key] = {**(stored.get(key) or {}), **value}
        if "spec" in body:
            stored["metadata"]["generation"] = stored["metadata"].get("generation", 1) + 1
        return self.put(res, stored)

    async def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
        preconditions: Mapping[str, str] | None = None,
    ) -> Any:
        self._enter("delete", res, name)
        stored = self._stored(res, name, namespace)
        if preconditions and preconditions.get("uid") != stored["metadata"].get("uid"):
            raise Conflict(409, "Conflict", "Precondition failed: UID")
        del self.objects[(res.plural, namespace or "", name)]
        return {}

    async def request(self, method: str, path: str, *, body: Obj | None = None) -> Obj:
        sa = path.split("/serviceaccounts/")[1].split("/")[0]
        self.calls.append((method.lower(), "serviceaccounts/token", sa))
        if ("serviceaccounts", NS, sa) not in self.objects:
            raise NotFound(404, "NotFound", f'serviceaccounts "{sa}" not found')
        return {"status": {"token": "tok-123", "expirationTimestamp": "2026-06-02T12:00:00Z"}}

    def writes(self) -> list[tuple[str, str, str]]:
        return [c for c in self.calls if c[0] != "get"]


class DictCache:
    def __init__(self) -> None:
        self.items: dict[str, Obj] = {}

    def get(self, key: str) -> Obj | None:
        return self.items.get(key)

    def replace_if(self, obj: Obj, expected_resource_version: str | None) -> bool:
        key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        held = self.items.get(key)
        if expected_resource_version is not None and (
            held is None or held["metadata"].get("resourceVersion") != expected_resource_version
        ):
            return False
        self.items[key] = obj
        return True

    def store_result(self, obj: Obj) -> bool:
        key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        held = (self.items.get(key) or {}).get("metadata", {}).get("resourceVersion")
        rv = obj["metadata"].get("resourceVersion")
        if held is not None and rv is not None and (held == rv or int(rv) < int(held)):
            return False
        self.items[key] = obj
        return True

    def remove(self, key: str) -> None:
        self.items.pop(key, None)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def normal(self, obj: Obj, reason: str, message: str) -> None:
        self.events.append(("Normal", reason))

    def warning(self, obj: Obj, reason: str, message: str) -> None:
        self.events.append(("Warning", reason))


class Runner:
    def __init__(self) -> None:
        self.posts: list[str] = []
        self.tokens: list[str | None] = []
        self.ports: list[int] = []

    async def post(
        self,
        namespace: str,
        session: str,
        path: str,
        body: Obj,
        *,
        token: str | None = None,
        port: int = 8001,
    ) -> None:
        self.posts.append(path)
        self.tokens.append(token)
        self.ports.append(port)


class World:
    """A fake API with the session stored and caches that see what the informers would."""

    def __init__(self, sess: Obj) -> None:
        self.api = FakeApi()
        self.sessions, self.jobs, self.services, self.namespaces = (DictCache() for _ in range(4))
        self.namespaces.items[NS] = {"metadata": {"name": NS}}
        self.pods: list[Obj] = []
        self.policies = DictCache()
        self.caches = Caches(
            sessions=self.sessions,
            jobs=self.jobs,
            services=self.services,
            namespaces=self.namespaces,
            pods_by_session=lambda ns, name: list(self.pods),
            project_settings=DictCache(),
            network_policies=self.policies,
        )
        self.recorder, self.runner = Recorder(), Runner()
        self.clock = FakeClock(wall_start=NOW)
        stored = self.api.put(AGENTIC_SESSIONS, sess)
        self.sessions.items[f"{NS}/{sess['metadata']['name']}"] = stored
        self.executor = Executor(self.api, self.caches, CFG, self.recorder, self.runner, self.clock)
        self.reconciler = SessionReconciler(
            self.api, self.caches, CFG, self.recorder, self.runner, clock=self.clock
        )

    @property
    def session(self) -> Obj:
        return self.sessions.items[f"{NS}/s1"]

    def stored(self, res: Resource, name: str) -> Obj | None:
        return self.api.objects.get((res.plural, NS, name))


def counter(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def job_body() -> Obj:
    return {"kind": "Job", "metadata": {"name": "s1-job", "namespace": NS}}


TRANSITIONS = "ambient_session_phase_transitions_total"
EDGE = {"namespace": NS, "from_phase": "Pending", "to_phase": "Creating"}


async def test_effects_follow_the_write_that_makes_them_true() -> None:
    w = World(session("Pending"))
    status = {**w.session["status"], "phase": "Creating"}
    then = (Event("Normal", "Creating", "x"),)
    before = counter(TRANSITIONS, EDGE)
    count = Count(m.PHASE_TRANSITIONS, (NS, "Pending", "Creating"))
    result = await w.executor.apply(
        w.session, Plan("t", (WriteStatus(status, then=(*then, count)),))
    )
    assert result is None
    assert w.recorder.events == [("Normal", "Creating")]
    assert counter(TRANSITIONS, EDGE) == before + 1
    assert w.session["status"]["phase"] == "Creating", "the write is in the cache at once"


async def test_conflict_on_the_status_write_is_an_error_and_records_nothing() -> None:
    w = World(session("Pending"))
    w.api.fail[("replace/status", "agenticsessions", "s1")] = Conflict(409, "Conflict", "moved")
    plan = Plan(
        "t", (WriteStatus({"phase": "Creating"}, then=(Event("Normal", "Creating", "x"),)),)
    )
    with pytest.raises(Conflict):
        await w.executor.apply(w.session, plan)
    assert w.recorder.events == []


async def test_notfound_of_the_session_ends_the_reconcile() -> None:
    w = World(session("Pending"))
    del w.api.objects[("agenticsessions", NS, "s1")]
    svc = {"kind": "Service", "metadata": {"name": "session-s1", "namespace": NS}}
    plan = Plan("t", (WriteStatus({"phase": "Creating"}), Create(SERVICES, svc)), requeue_after=5)
    assert await w.executor.apply(w.session, plan) is None
    assert w.stored(SERVICES, "session-s1") is None, "nothing after the session's 404 runs"


async def test_notfound_of_a_child_is_an_error() -> None:
    w = World(session("Pending"))
    body = {"kind": "Secret", "metadata": {"name": "gone", "namespace": NS, "resourceVersion": "1"}}
    with pytest.raises(NotFound):
        await w.executor.apply(w.session, Plan("t", (Replace(SECRETS, body),)))


async def test_reconcile_raises_a_child_error_and_forgets_a_vanished_session() -> None:
    w = World(session("Pending", run=2, conditions=[{"type": "SecretsReady", "status": "True"}]))
    w.api.put(SECRETS, {"metadata": {"name": "ambient-runner-secrets", "namespace": NS}})
    w.api.fail[("create", "serviceaccounts", "ambient-session-s1")] = Forbidden(403, "", "no")
    with pytest.raises(Forbidden):
        await w.reconciler.reconcile(f"{NS}/s1")
    assert ("Warning", "TokenProvisionFailed") in w.recorder.events
    # Deleted from the API server while the cache still has it: the status write's 404 ends it.
    del w.api.objects[("agenticsessions", NS, "s1")]
    w.session["metadata"]["annotations"] = {"ambient-code.io/desired-phase": "Stopped"}
    assert await w.reconciler.reconcile(f"{NS}/s1") is None


async def test_job_alreadyexists_means_the_cache_was_stale() -> None:
    w = World(session("Pending"))
    live = w.api.put(JOBS, {**job_body(), "metadata": {**job_body()["metadata"], "uid": "j1"}})
    plan = Plan(
        "t",
        (
            Create(JOBS, job_body(), exists="stale", cache="jobs"),
            WriteStatus({"phase": "Creating"}),
        ),
    )
    result = await w.executor.apply(w.session, plan)
    assert result == Result(requeue_after=NEXT_STEP)
    assert w.jobs.get(f"{NS}/s1-job") == live, "the live Job is read into the cache"
    assert w.session["status"]["phase"] == "Pending", "the plan stopped before its status write"


async def test_alreadyexists_of_a_create_if_absent_child_is_fine() -> None:
    w = World(session("Pending"))
    w.api.put(SERVICES, {"metadata": {"name": "session-s1", "namespace": NS}})
    svc = {"kind": "Service", "metadata": {"name": "session-s1", "namespace": NS}}
    plan = Plan("t", (Create(SERVICES, svc), WriteStatus({"phase": "Creating"})), requeue_after=3)
    assert await w.executor.apply(w.session, plan) == Result(requeue_after=3)
    assert w.session["status"]["phase"] == "Creating"


async def test_refused_job_create_is_recorded_then_retried() -> None:
    w = World(session("Pending"))
    w.api.fail[("create", "jobs", "s1-job")] = Forbidden(403, "Forbidden", "quota exceeded")

    def on_error(message: str) -> Plan:
        return Plan("e", (WriteStatus({"phase": "Pending", "why": message}),))

    with pytest.raises(Forbidden):
        await w.executor.apply(w.session, Plan("t", (Create(JOBS, job_body(), on_error=on_error),)))
    assert w.session["status"]["why"] == "quota exceeded"


async def test_delete_of_a_gone_object_is_done_and_leaves_the_cache() -> None:
    w = World(session("Completed"))
    w.jobs.items[f"{NS}/s1-job"] = {"metadata": {"name": "s1-job", "namespace": NS}}
    plan = Plan("t", (Delete(JOBS, "s1-job", NS, "j1", "Background", "jobs"),))
    assert await w.executor.apply(w.session, plan) is None
    assert w.jobs.get(f"{NS}/s1-job") is None


async def test_a_foreground_delete_writes_the_deleting_job_through_to_the_cache() -> None:
    """The server keeps a Job deleted in the foreground until its pods are gone and answers with
    it, now carrying a deletionTimestamp; the cache gets that answer, so the reconcile woken by
    the Stopping write sees the Job as being deleted (row S2) instead of deleting it again."""
    w = World(session("Running", ann={"ambient-code.io/desired-phase": "Stopped"}))
    job = {"metadata": {"name": "s1-job", "namespace": NS, "uid": "j1", "resourceVersion": "7"}}
    w.jobs.items[f"{NS}/s1-job"] = job
    deleting = copy.deepcopy(job)
    deleting["metadata"].update(resourceVersion="8", deletionTimestamp="2026-06-02T12:00:00Z")

    async def foreground(*args: Any, **kwargs: Any) -> Obj:
        w.api.calls.append(("delete", "jobs", "s1-job"))
        return copy.deepcopy(deleting)

    w.api.delete = foreground  # type: ignore[method-assign]
    plan = Plan("t", (Delete(JOBS, "s1-job", NS, "j1", "Foreground", "jobs"),))
    assert await w.executor.apply(w.session, plan) is None
    held = w.jobs.get(f"{NS}/s1-job")
    assert held is not None
    assert held["metadata"]["deletionTimestamp"] == "2026-06-02T12:00:00Z"


async def test_token_request_recreates_a_vanished_service_account() -> None:
    w = World(session("Pending", run=2))
    w.api.put(SECRETS, {"metadata": {"name": "ambient-runner-secrets", "namespace": NS}})
    w.session["status"]["conditions"] = [{"type": "SecretsReady", "status": "True"}]
    await w.reconciler.reconcile(f"{NS}/s1")
    assert ("post", "serviceaccounts/token", "ambient-session-s1") in w.api.calls
    assert w.api.calls.count(("create", "serviceaccounts", "ambient-session-s1")) == 1
    token = w.stored(SECRETS, "ambient-runner-token-s1")
    assert token is not None
    assert token["data"]["k8s-token"] == "dG9rLTEyMw=="


async def test_a_session_from_creation_to_creating_and_a_noop() -> None:
    w = World(session())
    w.api.put(SECRETS, {"metadata": {"name": "ambient-runner-secrets", "namespace": NS}})
    key = f"{NS}/s1"
    assert await w.reconciler.reconcile(key) == Result(requeue_after=NEXT_STEP)
    assert w.session["status"]["phase"] == "Pending"
    assert w.api.writes() == [("replace/status", "agenticsessions", "s1")]
    w.api.calls.clear()
    result = await w.reconciler.reconcile(key)
    assert result is not None
    assert 0 < result.requeue_after <= 600
    assert w.session["status"]["phase"] == "Creating"
    assert [c for c in w.api.writes() if c[0] == "replace/status"] == [
        ("replace/status", "agenticsessions", "s1")
    ], "one status write per reconcile"
    assert w.stored(JOBS, "s1-job") is not None
    assert w.jobs.get(f"{NS}/s1-job") is not None
    assert w.stored(SERVICES, "session-s1") is None, "the Service comes once the Job exists"
    # The next reconcile (the Job's event) makes the Service, owned by the Job.
    w.api.calls.clear()
    assert await w.reconciler.reconcile(key) == Result(requeue_after=NEXT_STEP)
    assert w.api.writes() == [("create", "services", "session-s1")]
    svc = w.stored(SERVICES, "session-s1")
    assert svc is not None
    job = w.stored(JOBS, "s1-job")
    assert job is not None
    (owner,) = svc["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["blockOwnerDeletion"]) == (
        "Job",
        job["metadata"]["uid"],
        True,
    )
    assert w.services.get(f"{NS}/session-s1") is not None, "written through to the cache"
    # The runner finishes; the next reconcile completes the session, the one after does nothing.
    w.jobs.items[f"{NS}/s1-job"]["status"] = {
        "conditions": [{"type": "Complete", "status": "True"}]
    }
    w.api.calls.clear()
    await w.reconciler.reconcile(key)
    assert w.session["status"]["phase"] == "Completed"
    assert w.stored(JOBS, "s1-job") is None
    assert ("delete", "services", "session-s1") not in w.api.calls, "the Job's: the GC's to delete"
    del w.services.items[f"{NS}/session-s1"]  # the garbage collector's work
    w.api.calls.clear()
    assert await w.reconciler.reconcile(key) is None
    assert w.api.calls == [], "a no-op reconcile makes no request"


@pytest.mark.parametrize(
    ("namespace", "reconciled"),
    [
        pytest.param({"metadata": {"name": NS}}, True, id="managed"),
        pytest.param(None, False, id="not-managed"),
        pytest.param(
            {"metadata": {"name": NS, "deletionTimestamp": "2026-06-01T12:00:00Z"}},
            False,
            id="deletion-timestamp",
        ),
        pytest.param(
            {"metadata": {"name": NS}, "status": {"phase": "Terminating"}},
            False,
            id="phase-terminating",
        ),
    ],
)
async def test_a_session_in_a_namespace_being_deleted_is_left_alone(
    namespace: Obj | None, reconciled: bool
) -> None:
    """A Running session whose Job is gone: in a managed namespace that is a missing Job to
    report; in one being deleted it is the cleanup's work, and nothing is written."""
    w = World(session("Running"))
    if namespace is None:
        del w.namespaces.items[NS]
    else:
        w.namespaces.items[NS] = namespace
    await w.reconciler.reconcile(f"{NS}/s1")
    assert (w.api.writes() != []) is reconciled
    assert (w.recorder.events != []) is reconciled
    assert (w.session["status"]["phase"] == "Running") is not reconciled


# --- runner identity, token refresh, NetworkPolicy ----------------------------------------------


def user_session(user: str = "u-42") -> Obj:
    return session("Pending", spec={"initialPrompt": "x", "userContext": {"userId": user}})


async def test_identity_is_created_with_the_users_annotation_and_todays_role() -> None:
    w = World(user_session())
    await w.executor.apply(w.session, Plan("t", (EnsureIdentity(),)))
    sa = w.stored(SERVICE_ACCOUNTS, "ambient-session-s1")
    assert sa is not None
    assert sa["metadata"]["annotations"] == {"ambient-code.io/created-by-user-id": "u-42"}
    role = w.stored(ROLES, "ambient-session-s1-role")
    assert role is not None
    assert [(r["apiGroups"], r["resources"], r["verbs"]) for r in role["rules"]] == [
        (
            ["vteam.ambient-code"],
            ["agenticsessions"],
            ["get", "list", "watch", "create", "update", "patch"],
        ),
        (["authorization.k8s.io"], ["selfsubjectaccessreviews"], ["create"]),
        ([""], ["secrets"], ["get"]),
        (["mlflow.kubeflow.org"], ["experiments"], ["get", "list", "update"]),
    ]
    assert w.stored(ROLE_BINDINGS, "ambient-session-s1-rb") is not None


async def test_an_existing_identity_converges_by_writing_only_what_differs() -> None:
    w = World(user_session())
    sa: Obj = {"metadata": {"name": "ambient-session-s1", "namespace": NS}}
    sa["metadata"]["annotations"] = {"ambient-code.io/created-by-user-id": "someone", "keep": "1"}
    w.api.put(SERVICE_ACCOUNTS, sa)
    old_rules = [{"apiGroups": ["vteam.ambient-code"], "resources": ["agenticsessions"]}]
    w.api.put(
        ROLES,
        {"metadata": {"name": "ambient-session-s1-role", "namespace": NS}, "rules": old_rules},
    )
    w.api.put(ROLE_BINDINGS, {"metadata": {"name": "ambient-session-s1-rb", "namespace": NS}})
    await w.executor.apply(w.session, Plan("t", (EnsureIdentity(),)))
    stored = w.stored(SERVICE_ACCOUNTS, "ambient-session-s1")
    assert stored is not None
    assert stored["metadata"]["annotations"] == {
        "ambient-code.io/created-by-user-id": "u-42",
        "keep": "1",
    }
    role = w.stored(ROLES, "ambient-session-s1-role")
    assert role is not None
    assert len(role["rules"]) == 4
    assert ("patch", "serviceaccounts", "ambient-session-s1") in w.api.calls
    assert ("replace", "roles", "ambient-session-s1-role") in w.api.calls
    w.api.calls.clear()
    await w.executor.apply(w.session, Plan("t", (EnsureIdentity(),)))
    assert [c[0] for c in w.api.writes()] == ["create", "create", "create"], (
        "a converged identity is only tried (AlreadyExists), never written"
    )


async def test_the_refresh_changes_only_the_k8s_token() -> None:
    w = World(session("Running"))
    w.api.put(SERVICE_ACCOUNTS, {"metadata": {"name": "ambient-session-s1", "namespace": NS}})
    old = {"k8s-token": "b2xk", "agui-token": "YWd1aQ==", "google-oauth-client-secret": "Zw=="}
    w.api.put(
        SECRETS,
        {
            "metadata": {
                "name": "ambient-runner-token-s1",
                "namespace": NS,
                "annotations": {"ambient-code.io/token-refreshed-at": "2026-06-01T10:00:00Z"},
            },
            "data": dict(old),
        },
    )
    token = ProvisionToken(lifetime=3600, secret=None, refresh=True)
    await w.executor.apply(w.session, Plan("t", (token,)))
    secret = w.stored(SECRETS, "ambient-runner-token-s1")
    assert secret is not None
    assert secret["data"] == {**old, "k8s-token": "dG9rLTEyMw=="}
    assert secret["metadata"]["annotations"] == {
        "ambient-code.io/token-refreshed-at": "2026-06-01T12:00:00Z",
        "ambient-code.io/token-expires-at": "2026-06-02T12:00:00Z",
    }
    assert ("patch", "secrets", "ambient-runner-token-s1") in w.api.calls


async def test_a_refresh_without_its_secret_is_an_error_with_an_event() -> None:
    w = World(session("Running"))
    w.api.put(SERVICE_ACCOUNTS, {"metadata": {"name": "ambient-session-s1", "namespace": NS}})
    job = w.api.put(JOBS, {"metadata": {"name": "s1-job", "namespace": NS}, "spec": {}})
    w.jobs.items[f"{NS}/s1-job"] = job
    plan = refresh_token(observe(w.session, job), "A13", job)
    with pytest.raises(NotFound):
        await w.executor.apply(w.session, plan)
    assert w.recorder.events == [("Warning", "TokenProvisionFailed")]
    assert "ambient-code.io/token-refreshed-at" not in (
        w.jobs.items[f"{NS}/s1-job"]["metadata"].get("annotations") or {}
    ), "the Job's time moves only with the Secret"


async def test_network_policy_failure_is_an_event_and_an_error() -> None:
    w = World(session("Pending"))
    w.api.fail[("create", "networkpolicies", "runner-allow-backend-only")] = Forbidden(
        403, "Forbidden", "networkpolicies is forbidden"
    )
    job: Obj = {"spec": {"template": {"spec": {"containers": []}}}}
    action = netpol.ensure(observe(w.session), job)
    assert action is not None
    with pytest.raises(Forbidden):
        await w.executor.apply(w.session, Plan("t", (action,)))
    assert w.recorder.events == [("Warning", "NetworkPolicyFailed")]
    # The next attempt goes through and lands in the cache.
    await w.executor.apply(w.session, Plan("t", (action,)))
    assert w.policies.get(f"{NS}/runner-allow-backend-only") is not None


async def test_a_create_whose_object_reached_the_cache_since_the_observation_sends_nothing() -> (
    None
):
    w = World(session("Pending"))
    job: Obj = {"spec": {"template": {"spec": {"containers": []}}}}
    action = netpol.ensure(observe(w.session), job)  # observed without the policy
    assert isinstance(action, Create)
    made = w.api.put(action.resource, action.body)
    w.policies.items[f"{NS}/runner-allow-backend-only"] = made  # another reconcile's, cached
    plan = Plan("t", (action, WriteStatus({"phase": "Creating"})))
    assert await w.executor.apply(w.session, plan) is None
    assert [c for c in w.api.calls if c[1] == "networkpolicies"] == []
    stored = w.stored(AGENTIC_SESSIONS, "s1")
    assert stored is not None
    assert stored["status"]["phase"] == "Creating"
