"""Structural facts about deploy/, the Dockerfile and the samples that a careless edit could break.

The server-side dry-run and "the operator works under exactly this RBAC" are end-to-end tests; these
checks need no cluster.
"""

from __future__ import annotations

import copy
import functools
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentic_operator.kube.resources import Obj
from agentic_operator.projects.bindings import (
    ROLE_TO_CLUSTERROLE,
    invalid_entries,
)
from agentic_operator.sessions.model import PROJECT_SETTINGS_NAME

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
NAMESPACE = "ambient-code"
OPERATOR = "agentic-operator"
RBAC = "rbac.authorization.k8s.io"
READ = {"get", "list", "watch"}

Perm = tuple[str, str, str, str | None]  # (apiGroup, resource, verb, resourceName)


def yaml_files(directory: Path = DEPLOY) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml"))


@functools.cache
def _parse(path: Path) -> list[Obj]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def load(path: Path) -> list[Obj]:
    """The documents of a manifest (a fresh copy: tests may mutate what they get)."""
    return copy.deepcopy(_parse(path))


def objects(directory: Path = DEPLOY) -> Iterator[tuple[Path, Obj]]:
    for path in yaml_files(directory):
        for doc in load(path):
            if doc.get("kind") != "Kustomization":
                yield path, doc


def one(kind: str, name: str, namespace: str | None = None) -> Obj:
    found = [
        o
        for _, o in objects()
        if o["kind"] == kind
        and o["metadata"]["name"] == name
        and o["metadata"].get("namespace") == namespace
    ]
    assert len(found) == 1, f"{kind} {namespace}/{name}: found {len(found)}"
    return found[0]


def kustomize_resources(directory: Path) -> list[Path]:
    kust = load(directory / "kustomization.yaml")[0]
    return [directory / r for r in kust.get("resources", [])]


def reachable_files(directory: Path) -> list[Path]:
    """Every manifest file that ``kubectl apply -k directory`` would apply."""
    files: list[Path] = []
    for res in kustomize_resources(directory):
        files += reachable_files(res) if res.is_dir() else [res]
    return files


def perms(rules: list[Obj]) -> set[Perm]:
    out: set[Perm] = set()
    for rule in rules:
        names = rule.get("resourceNames") or [None]
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                for verb in rule.get("verbs", []):
                    for name in names:
                        out.add((group, resource, verb, name))
    return out


def grants(held: set[Perm], perm: Perm) -> bool:
    group, resource, verb, name = perm
    return perm in held or (name is not None and (group, resource, verb, None) in held)


# --- files and kustomizations ----------------------------------------------------------------


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses_with_identity(path: Path) -> None:
    docs = load(path)
    assert docs, "empty manifest"
    for doc in docs:
        assert isinstance(doc, dict)
        assert doc.get("apiVersion")
        assert doc.get("kind")
        if doc["kind"] != "Kustomization":
            assert doc.get("metadata", {}).get("name")


@pytest.mark.parametrize(
    "path", sorted(DEPLOY.rglob("kustomization.yaml")), ids=lambda p: str(p.parent.name)
)
def test_kustomization_resources_exist(path: Path) -> None:
    for res in kustomize_resources(path.parent):
        assert res.is_file() or (res / "kustomization.yaml").is_file(), f"{res} missing"


def test_default_kustomization_applies_on_a_bare_cluster() -> None:
    top = {p.name for p in kustomize_resources(DEPLOY)}
    assert top == {"namespace.yaml", "crds", "rbac", "manager"}
    docs = [d for f in reachable_files(DEPLOY) for d in load(f)]
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    crd_kinds = {(c["spec"]["group"], c["spec"]["names"]["kind"]) for c in crds}
    assert {k for _, k in crd_kinds} >= {"AgenticSession", "ProjectSettings"}
    builtin = {"", "apps", RBAC, "apiextensions.k8s.io"}
    for doc in docs:
        group = doc["apiVersion"].rpartition("/")[0]
        # Anything else (a ServiceMonitor, a sample CR) would fail on a cluster without its CRD.
        assert group in builtin, f"{doc['kind']} {doc['metadata']['name']} needs CRD {group}"
    kinds = {d["kind"] for d in docs}
    assert kinds >= {
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
    }


def test_monitoring_is_optional_and_separate() -> None:
    files = reachable_files(DEPLOY / "monitoring")
    assert [d["kind"] for f in files for d in load(f)] == ["ServiceMonitor"]
    assert not set(files) & set(reachable_files(DEPLOY))


def test_images_transformer_targets_the_deployment_image() -> None:
    images = load(DEPLOY / "kustomization.yaml")[0]["images"]
    container = deployment_container()
    assert [i["name"] for i in images] == [container["image"].split(":")[0]]
    assert f"{images[0]['newName']}:{images[0]['newTag']}" == "agentic-operator:latest"


# --- RBAC ------------------------------------------------------------------------------------

OPERATOR_PERMISSIONS: dict[tuple[str, str], set[str]] = {
    # create: granted to runner Roles (child sessions).
    ("vteam.ambient-code", "agenticsessions"): {
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
    },
    ("vteam.ambient-code", "agenticsessions/status"): {"get", "update", "patch"},
    ("vteam.ambient-code", "projectsettings"): {
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
    },
    ("vteam.ambient-code", "projectsettings/status"): {"get", "update", "patch"},
    ("", "namespaces"): READ,
    ("batch", "jobs"): READ | {"create", "patch", "delete"},
    ("batch", "jobs/finalizers"): {"update"},
    ("", "pods"): READ,
    ("", "configmaps"): READ,
    ("", "services"): READ | {"create", "delete"},
    ("", "serviceaccounts"): {"get", "create", "patch"},
    ("", "serviceaccounts/token"): {"create"},
    # delete on secrets, serviceaccounts and roles: never a request; OwnerReferencesPermission-
    # Enforcement (OpenShift) asks for it on an update that changes ownerReferences.
    ("", "secrets"): {"get", "create", "update", "patch", "delete"},
    ("", "persistentvolumeclaims"): {"get", "create"},
    (RBAC, "roles"): {"get", "create", "update", "patch"},
    (RBAC, "rolebindings"): READ | {"create", "update", "patch", "delete"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
    ("authorization.k8s.io", "selfsubjectaccessreviews"): {"create"},
    ("mlflow.kubeflow.org", "experiments"): {"get", "list", "update"},
    ("networking.k8s.io", "networkpolicies"): {"list", "watch", "create", "update"},
}
PROJECT_OBJECT_PERMISSIONS: dict[tuple[str, str], set[str]] = {
    # The ambient-session-trigger objects and the LimitRange of each project namespace.
    ("vteam.ambient-code", "agenticsessions"): {"create"},
    ("", "serviceaccounts"): {"list", "watch", "update", "delete"},
    (RBAC, "roles"): {"list", "watch", "delete"},
    ("", "limitranges"): {"get", "list", "watch", "create"},
}


def operator_clusterrole() -> Obj:
    return one("ClusterRole", OPERATOR)


def test_operator_clusterrole_is_exactly_least_privilege() -> None:
    expected = {
        (g, r, v, None)
        for table in (OPERATOR_PERMISSIONS, PROJECT_OBJECT_PERMISSIONS)
        for (g, r), verbs in table.items()
        for v in verbs
    } | {(RBAC, "clusterroles", "bind", n) for n in ROLE_TO_CLUSTERROLE.values()}
    assert perms(operator_clusterrole()["rules"]) == expected


def test_bind_only_on_the_project_clusterroles_by_name() -> None:
    for path, obj in objects():
        if obj["kind"] not in ("Role", "ClusterRole"):
            continue
        for rule in obj.get("rules", []):
            if "bind" not in rule.get("verbs", []):
                continue
            assert obj["metadata"]["name"] == OPERATOR, f"{path}: unexpected bind"
            assert rule["verbs"] == ["bind"]
            assert rule["apiGroups"] == [RBAC]
            assert rule["resources"] == ["clusterroles"]
            assert sorted(rule["resourceNames"]) == sorted(ROLE_TO_CLUSTERROLE.values())


@pytest.mark.parametrize(
    ("path", "obj"),
    [(p, o) for p, o in objects() if o["kind"] in ("Role", "ClusterRole")],
    ids=lambda x: x["metadata"]["name"] if isinstance(x, dict) else "",
)
def test_no_wildcards_or_escalation_verbs(path: Path, obj: Obj) -> None:
    for rule in obj["rules"]:
        for key in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
            assert not any("*" in v for v in rule.get(key, [])), f"{path}: wildcard in {key}"
        assert not {"escalate", "impersonate"} & set(rule["verbs"]), path
        assert "nonResourceURLs" not in rule


def test_operator_holds_every_permission_of_the_runner_role() -> None:
    # The API server refuses to create a Role granting anything its creator does not hold.
    from agentic_operator.sessions.objects import build_runner_role

    session = {
        "apiVersion": "vteam.ambient-code/v1alpha1",
        "kind": "AgenticSession",
        "metadata": {"name": "s", "namespace": "p", "uid": "u"},
        "spec": {},
    }
    wanted = perms(build_runner_role(session)["rules"])
    held = perms(operator_clusterrole()["rules"])
    assert wanted
    assert {p for p in wanted if not grants(held, p)} == set()


def test_operator_holds_every_permission_of_the_trigger_role() -> None:
    from agentic_operator.projects.objects import trigger_role

    ps = {"metadata": {"name": PROJECT_SETTINGS_NAME, "namespace": "p", "uid": "u"}}
    wanted = perms(trigger_role(ps)["rules"])
    held = perms(operator_clusterrole()["rules"])
    assert {p[2] for p in wanted} == {"create", "get", "list", "update"}
    assert {p for p in wanted if not grants(held, p)} == set()


def test_operator_bindings() -> None:
    sa = one("ServiceAccount", OPERATOR, NAMESPACE)
    subject = {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}
    crb = one("ClusterRoleBinding", OPERATOR)
    assert crb["roleRef"] == {"apiGroup": RBAC, "kind": "ClusterRole", "name": OPERATOR}
    assert crb["subjects"] == [subject]
    rb = one("RoleBinding", "agentic-operator-leader-election", NAMESPACE)
    assert rb["roleRef"] == {
        "apiGroup": RBAC,
        "kind": "Role",
        "name": "agentic-operator-leader-election",
    }
    assert rb["subjects"] == [subject]
    assert deployment()["spec"]["template"]["spec"]["serviceAccountName"] == OPERATOR


def test_leases_are_a_namespaced_grant() -> None:
    role = one("Role", "agentic-operator-leader-election", NAMESPACE)
    assert perms(role["rules"]) == {
        ("coordination.k8s.io", "leases", v, None) for v in ("get", "create", "update")
    }
    # The Lease lives in the operator's namespace, which is where this Role grants it.
    assert deployment()["metadata"]["namespace"] == NAMESPACE
    for _, obj in objects():
        if obj["kind"] == "ClusterRole":
            assert not any(p[1] == "leases" for p in perms(obj["rules"])), obj["metadata"]["name"]


def project_perms(role: str) -> set[Perm]:
    return perms(one("ClusterRole", ROLE_TO_CLUSTERROLE[role])["rules"])


def test_project_clusterroles_nest_view_edit_admin() -> None:
    # The rules themselves are the platform's, or wider (tests/unit/test_project_clusterroles.py).
    view, edit, admin = (project_perms(r) for r in ("view", "edit", "admin"))
    for smaller, larger in ((view, edit), (edit, admin)):
        assert {p for p in smaller if not grants(larger, p)} == set()
        assert {p for p in larger if not grants(smaller, p)}
    assert {p[2] for p in view} == READ
    for verb in READ:
        assert ("vteam.ambient-code", "agenticsessions", verb, None) in view
        assert ("", "pods", verb, None) in view
    assert ("", "pods/log", "get", None) in view
    # Only admins may change who has access (ProjectSettings).
    assert not {p for p in edit if p[1] == "projectsettings" and p[2] not in READ}
    assert ("vteam.ambient-code", "projectsettings", "update", None) in admin
    assert ("vteam.ambient-code", "agenticsessions", "create", None) in edit
    # RBAC objects in the namespace (sharing, access keys), never cluster-wide ones.
    for perms_ in (view, edit, admin):
        assert {p[1] for p in perms_ if p[0] == RBAC} <= {"roles", "rolebindings"}


# --- Deployment ------------------------------------------------------------------------------


def deployment() -> Obj:
    return one("Deployment", OPERATOR, NAMESPACE)


def deployment_container() -> Obj:
    [container] = deployment()["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


ALLOWED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def restricted_violations(pod_spec: Obj) -> list[str]:
    """Pod Security Standards "restricted" checks (plus our read-only root filesystem rule)."""
    problems: list[str] = []
    pod_sc = pod_spec.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(key):
            problems.append(key)
    for volume in pod_spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUME_TYPES:
            problems.append(f"volume {volume['name']}: {kinds}")
    containers = (pod_spec.get("initContainers") or []) + pod_spec.get("containers", [])
    for c in containers:
        sc = c.get("securityContext") or {}

        def eff(key: str, sc: Obj = sc) -> Any:
            return sc.get(key, pod_sc.get(key))

        if eff("runAsNonRoot") is not True:
            problems.append(f"{c['name']}: runAsNonRoot")
        if eff("runAsUser") in (None, 0):
            problems.append(f"{c['name']}: runAsUser")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{c['name']}: allowPrivilegeEscalation")
        if sc.get("privileged"):
            problems.append(f"{c['name']}: privileged")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{c['name']}: capabilities.drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            problems.append(f"{c['name']}: capabilities.add")
        if (eff("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{c['name']}: seccompProfile")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{c['name']}: readOnlyRootFilesystem")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{c['name']}: hostPort")
    return problems


def test_deployment_security_context_is_restricted() -> None:
    pod = deployment()["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    assert pod["securityContext"]["runAsUser"] == 1001
    assert deployment_container()["securityContext"]["runAsUser"] == 1001


def _set(path: str, value: Any) -> Callable[[Obj], None]:
    def mutate(pod: Obj) -> None:
        *parents, last = path.split(".")
        node: Any = pod
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value

    return mutate


@pytest.mark.parametrize(
    "mutate",
    [
        _set("containers.0.securityContext.allowPrivilegeEscalation", None),
        _set("containers.0.securityContext.capabilities", None),
        _set("containers.0.securityContext.capabilities.add", ["SYS_ADMIN"]),
        _set("containers.0.securityContext.readOnlyRootFilesystem", False),
        _set("containers.0.securityContext.seccompProfile.type", "Unconfined"),
        _set("containers.0.securityContext.runAsUser", 0),
        _set("containers.0.securityContext.privileged", True),
        _set("hostNetwork", True),
        _set("volumes", [{"name": "h", "hostPath": {"path": "/"}}]),
    ],
)
def test_restricted_checker_catches_violations(mutate: Callable[[Obj], None]) -> None:
    pod = copy.deepcopy(deployment()["spec"]["template"]["spec"])
    mutate(pod)
    assert restricted_violations(pod)


def test_deployment_shape() -> None:
    dep = deployment()
    assert dep["spec"]["replicas"] == 1
    template_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= template_labels.items()
    c = deployment_container()
    assert c["image"] == "agentic-operator:latest"
    assert c["resources"] == {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    }
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"metrics": 8080, "health": 8081}


def test_deployment_args_are_the_readme_flags() -> None:
    assert deployment_container()["args"] == [
        "--max-concurrent-reconciles=10",
        "--health-probe-bind-address=:8081",
        "--metrics-bind-address=:8080",
        "--leader-elect=false",
    ]


def container_env(namespace: str) -> dict[str, str]:
    """The container's environment as the kubelet would resolve it in ``namespace``."""
    env: dict[str, str] = {}
    for var in deployment_container()["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            assert var["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
            env[var["name"]] = namespace
    return env


def test_deployment_mounts_the_registry_and_models_where_the_operator_reads_them() -> None:
    from agentic_operator.sessions.config import SessionConfig

    pod = deployment()["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in deployment_container()["volumeMounts"]}
    cfg = SessionConfig()
    for path, config_map in (
        (cfg.agent_registry_path, "ambient-agent-registry"),
        (cfg.models_manifest_path, "ambient-models"),
    ):
        mount = mounts[path.rsplit("/", 1)[0]]
        assert mount["readOnly"] is True
        # Optional: an operator without them runs with the built-in defaults.
        assert volumes[mount["name"]]["configMap"] == {"name": config_map, "optional": True}


def test_deployment_env() -> None:
    assert container_env("ns-x") == {
        "NAMESPACE": "ns-x",
        "BACKEND_NAMESPACE": "ns-x",
        "AMBIENT_CODE_RUNNER_IMAGE": "quay.io/ambient_code/vteam_claude_runner:latest",
        "IMAGE_PULL_POLICY": "IfNotPresent",
        "DEV_MODE": "false",
    }


def test_deployment_args_and_env_are_accepted_by_the_operator() -> None:
    from agentic_operator.cli import parse_settings

    settings = parse_settings(deployment_container()["args"], container_env(NAMESPACE))
    assert settings.max_concurrent_reconciles == 10
    assert settings.metrics_bind_address == ":8080"
    assert settings.health_probe_bind_address == ":8081"
    assert settings.leader_elect is False
    assert settings.dev_mode is False
    # The leader-election Role grants leases in exactly this namespace.
    assert settings.leader_election_namespace == NAMESPACE
    ha = [a for a in deployment_container()["args"] if not a.startswith("--leader-elect")]
    assert parse_settings([*ha, "--leader-elect=true"], container_env(NAMESPACE)).leader_elect


@pytest.mark.parametrize(
    ("probe", "path", "delay", "period"),
    [("livenessProbe", "/healthz", 15, 20), ("readinessProbe", "/readyz", 5, 10)],
)
def test_probes(probe: str, path: str, delay: int, period: int) -> None:
    c = deployment_container()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    get = c[probe]["httpGet"]
    assert get["path"] == path
    assert ports.get(get["port"], get["port"]) == 8081
    assert (c[probe]["initialDelaySeconds"], c[probe]["periodSeconds"]) == (delay, period)


def test_metrics_service_and_servicemonitor_select_the_operator() -> None:
    svc = one("Service", "agentic-operator-metrics", NAMESPACE)
    pod_labels = deployment()["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    [port] = svc["spec"]["ports"]
    container_ports = {p["name"]: p["containerPort"] for p in deployment_container()["ports"]}
    assert (port["name"], port["port"]) == ("metrics", 8080)
    assert container_ports[port["targetPort"]] == 8080
    sm = one("ServiceMonitor", OPERATOR, NAMESPACE)
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]
    [endpoint] = sm["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")


def test_operator_namespace() -> None:
    ns = one("Namespace", NAMESPACE)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for path, obj in objects():
        if "namespace" in obj["metadata"]:
            assert obj["metadata"]["namespace"] == NAMESPACE, path


# --- samples ---------------------------------------------------------------------------------


def schema_errors(value: Any, schema: Obj, where: str = "") -> list[str]:
    """The structural-schema subset our CRDs use (CEL rules are left to the API server)."""
    errors: list[str] = []
    typ = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        ok = isinstance(value, (int, str)) and not isinstance(value, bool)
        return [] if ok else [f"{where}: int-or-string"]
    checks: dict[str, Callable[[Any], bool]] = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    }
    if typ and not checks[typ](value):
        return [f"{where}: expected {typ}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{where}: below minimum")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{where}: above maximum")
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(f"{where}: too short")
    if typ == "object":
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        errors += [f"{where}.{k}: required" for k in schema.get("required", []) if k not in value]
        for key, item in value.items():
            if where == "" and key == "metadata":
                continue  # ObjectMeta is validated by the API server, not by the CRD schema
            if key in props:
                errors += schema_errors(item, props[key], f"{where}.{key}")
            elif isinstance(extra, dict):
                errors += schema_errors(item, extra, f"{where}.{key}")
            elif where != "" or key not in ("apiVersion", "kind"):
                errors.append(f"{where}.{key}: unknown field (the API server would prune it)")
    if typ == "array":
        for i, item in enumerate(value):
            errors += schema_errors(item, schema.get("items") or {}, f"{where}[{i}]")
    return errors


def crd_schema(kind: str) -> Obj:
    for _, obj in objects(DEPLOY / "crds"):
        if obj["kind"] == "CustomResourceDefinition" and obj["spec"]["names"]["kind"] == kind:
            [version] = [v for v in obj["spec"]["versions"] if v.get("storage")]
            schema: Obj = version["schema"]["openAPIV3Schema"]
            return schema
    raise AssertionError(f"no CRD for {kind} under deploy/crds")


@pytest.mark.parametrize(
    ("file", "kind"),
    [("agenticsession.yaml", "AgenticSession"), ("projectsettings.yaml", "ProjectSettings")],
)
def test_samples_match_the_crd_schema(file: str, kind: str) -> None:
    [sample] = load(DEPLOY / "samples" / file)
    assert sample["apiVersion"] == "vteam.ambient-code/v1alpha1"
    assert sample["kind"] == kind
    assert "namespace" not in sample["metadata"]  # applied with -n <project>
    assert schema_errors(sample, crd_schema(kind)) == []


def test_schema_checker_can_fail() -> None:
    schema = crd_schema("AgenticSession")
    bad = {"apiVersion": "x", "kind": "y", "metadata": {}, "spec": {"timeout": "1h", "nope": 1}}
    assert len(schema_errors(bad, schema)) == 2


def test_projectsettings_sample_is_valid_for_the_controller() -> None:
    [sample] = load(DEPLOY / "samples" / "projectsettings.yaml")
    assert sample["metadata"]["name"] == PROJECT_SETTINGS_NAME
    assert sample["spec"]["groupAccess"]
    assert invalid_entries(sample) == []
    assert {e["role"] for e in sample["spec"]["groupAccess"]} == set(ROLE_TO_CLUSTERROLE)


# --- container image -------------------------------------------------------------------------


def dockerfile_stages() -> list[list[str]]:
    stages: list[list[str]] = []
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_dockerfile_is_multistage_non_root_with_the_console_script() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    final = stages[-1]
    assert [line for line in final if line.startswith("USER ")][-1] == "USER 1001"
    entry = [line for line in final if line.startswith("ENTRYPOINT ")][-1]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entry == f'ENTRYPOINT ["{OPERATOR}"]'
    assert OPERATOR in scripts
    exposed = {int(p) for line in final if line.startswith("EXPOSE ") for p in line.split()[1:]}
    assert exposed == {p["containerPort"] for p in deployment_container()["ports"]}
    assert any(re.search(r"PYTHONUNBUFFERED=1", line) for line in final)
    # Dev extras never reach the image.
    assert not any("[dev]" in line for stage in stages for line in stage)


def test_dockerignore_keeps_the_build_context_small() -> None:
    text = (ROOT / ".dockerignore").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip()[:1] not in ("", "#")]
    assert lines[0] == "**"  # everything (.venv, .git, caches, tests) is excluded by default
    assert {"!pyproject.toml", "!README.md", "!src/"} <= set(lines)


# --- render with kustomize (client-side, needs the kubectl from testenv) ----------------------


def kubectl() -> str | None:
    try:
        from testenv.binaries import BinariesError, find_binaries
    except ImportError:
        return shutil.which("kubectl")
    try:
        return str(find_binaries(build=False) / "kubectl")
    except BinariesError:
        return shutil.which("kubectl")


def test_kustomize_renders() -> None:
    binary = kubectl()
    if binary is None:
        pytest.skip("no kubectl (make binaries)")
    out = subprocess.run(
        [binary, "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    expected = {
        (o["kind"], o["metadata"]["name"]) for f in reachable_files(DEPLOY) for o in load(f)
    }
    assert {(d["kind"], d["metadata"]["name"]) for d in docs} == expected
    [dep] = [d for d in docs if d["kind"] == "Deployment"]
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "agentic-operator:latest"
