"""Loading configuration: clear errors for bad input, TLS and credentials actually used.

The servers here are in-process aiohttp apps on 127.0.0.1 (one of them HTTPS with client-cert
verification), so the checks exercise the real TLS context and Authorization header the client
builds, without a cluster.
"""

from __future__ import annotations

import base64
import ssl
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from testenv.pki import PKI, generate_pki

from agentic_operator.kube import errors
from agentic_operator.kube.client import from_config
from agentic_operator.kube.config import ConfigError, load_config


@asynccontextmanager
async def serve(
    app: web.Application, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port: int = runner.addresses[0][1]
    try:
        yield port
    finally:
        await runner.cleanup()


def kubeconfig(
    server: str, user: dict[str, Any], cluster_extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "test",
        "clusters": [{"name": "c", "cluster": {"server": server, **(cluster_extra or {})}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "test", "context": {"cluster": "c", "user": "u"}}],
    }


def write(path: Path, doc: dict[str, Any] | str) -> str:
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return str(path)


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return generate_pki(tmp_path_factory.mktemp("pki"))


# -- bad input -------------------------------------------------------------------------------------

BAD_FILES = [
    ("clusters: [unclosed\n", r"invalid YAML at line 2, column 1"),
    ("- just\n- a list\n", "expected a mapping"),
    ("", "expected a mapping"),
    ("clusters: {}\n", "'clusters' must be a list"),
    (
        "apiVersion: v1\nclusters: []\ncontexts: []\nusers: []\n",
        "Expected key current-context",
    ),
    (
        textwrap.dedent(
            """\
            current-context: nope
            clusters: [{name: c, cluster: {server: https://127.0.0.1:1}}]
            contexts: [{name: test, context: {cluster: c}}]
            users: []
            """
        ),
        "Expected object with name nope",
    ),
    (
        textwrap.dedent(
            """\
            current-context: test
            clusters: [{name: c, cluster: {insecure-skip-tls-verify: true}}]
            contexts: [{name: test, context: {cluster: c}}]
            users: []
            """
        ),
        "has no 'server'",
    ),
    (
        textwrap.dedent(
            """\
            current-context: test
            clusters: [{name: c, cluster: {server: "ftp://x"}}]
            contexts: [{name: test, context: {cluster: c}}]
            users: []
            """
        ),
        "is not an http(s) URL",
    ),
]


@pytest.mark.parametrize(("content", "expected"), BAD_FILES)
async def test_malformed_kubeconfig_gives_one_line_error(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = write(tmp_path / "config", content)
    with pytest.raises(ConfigError) as info:
        await load_config(path)
    message = str(info.value)
    assert expected in message
    assert message.startswith(f"kubeconfig {path}")
    assert "\n" not in message


async def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"kubeconfig .*/absent: file not found"):
        await load_config(str(tmp_path / "absent"))


async def test_error_never_quotes_credentials(tmp_path: Path) -> None:
    doc = kubeconfig(
        "https://127.0.0.1:1",
        {"token": "SECRET-TOKEN-VALUE", "client-certificate-data": "!!!not-base64"},
    )
    with pytest.raises(ConfigError) as info:
        await load_config(write(tmp_path / "config", doc))
    assert "SECRET" not in str(info.value)


async def test_unreadable_tls_files(tmp_path: Path) -> None:
    doc = kubeconfig("https://127.0.0.1:1", {}, {"certificate-authority": str(tmp_path / "no.crt")})
    with pytest.raises(ConfigError, match=r"does not exist|cannot load TLS"):
        await load_config(write(tmp_path / "config", doc))
    junk = tmp_path / "junk.crt"
    junk.write_text("not a certificate")
    doc = kubeconfig("https://127.0.0.1:1", {}, {"certificate-authority": str(junk)})
    with pytest.raises(ConfigError, match="cannot load TLS files"):
        await load_config(write(tmp_path / "config", doc))


async def test_in_cluster_without_service_account_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with pytest.raises(ConfigError, match=r"^kubeconfig in-cluster: Service token file"):
        await load_config()


async def test_search_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = write(tmp_path / "env", kubeconfig("http://127.0.0.1:1", {"token": "a"}))
    explicit = write(tmp_path / "explicit", kubeconfig("http://127.0.0.1:2", {"token": "b"}))
    home = tmp_path / "home" / ".kube"
    home.mkdir(parents=True)
    write(home / "config", kubeconfig("http://127.0.0.1:3", {"token": "c"}))

    assert (await load_config()).host == "http://127.0.0.1:3"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBECONFIG", env_file)
    assert (await load_config()).host == "http://127.0.0.1:1"  # $KUBECONFIG beats in-cluster
    assert (await load_config(explicit)).host == "http://127.0.0.1:2"


async def test_context_override(tmp_path: Path) -> None:
    doc = kubeconfig("http://127.0.0.1:1", {"token": "a"})
    doc["clusters"].append({"name": "other", "cluster": {"server": "http://127.0.0.1:9/"}})
    doc["contexts"].append({"name": "second", "context": {"cluster": "other", "user": "u"}})
    path = write(tmp_path / "config", doc)
    cfg = await load_config(path, context="second")
    assert cfg.host == "http://127.0.0.1:9"
    assert cfg.context == "second"
    assert (await load_config(path)).context == "test"


# -- credentials on the wire ---------------------------------------------------------------------


SEEN = web.AppKey("seen", list[str | None])


def whoami_app(accepted_tokens: set[str] | None = None) -> web.Application:
    """Echoes the Authorization header and the client certificate's CN; 401 for other tokens."""
    seen: list[str | None] = []

    async def whoami(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization")
        seen.append(auth)
        if accepted_tokens is not None and auth not in accepted_tokens:
            return web.json_response(
                {"kind": "Status", "code": 401, "reason": "Unauthorized"}, status=401
            )
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        cn = None
        if peer:
            cn = next(v for rdn in peer["subject"] for k, v in rdn if k == "commonName")
        return web.json_response({"authorization": auth, "cn": cn})

    app = web.Application()
    app.router.add_get("/whoami", whoami)
    app[SEEN] = seen
    return app


def tls_server_context(pki: PKI) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki.serving.cert, pki.serving.key)
    ctx.load_verify_locations(pki.ca.cert)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


@pytest.mark.parametrize("inline", [False, True])
async def test_client_certificate_kubeconfig(tmp_path: Path, pki: PKI, inline: bool) -> None:
    async with serve(whoami_app(), tls_server_context(pki)) as port:
        if inline:
            user = {
                "client-certificate-data": b64(pki.admin.cert),
                "client-key-data": b64(pki.admin.key),
            }
            cluster = {"certificate-authority-data": b64(pki.ca.cert)}
        else:
            user = {"client-certificate": str(pki.admin.cert), "client-key": str(pki.admin.key)}
            cluster = {"certificate-authority": str(pki.ca.cert)}
        path = write(tmp_path / "config", kubeconfig(f"https://127.0.0.1:{port}", user, cluster))
        cfg = await load_config(path)
        assert cfg.ssl_context is not None
        assert cfg.ssl_context.verify_mode == ssl.CERT_REQUIRED
        async with await from_config(cfg) as client:
            answer = await client.request("GET", "/whoami")
        assert answer == {"authorization": None, "cn": "admin"}


async def test_wrong_ca_is_a_transport_error(tmp_path: Path, pki: PKI) -> None:
    other = generate_pki(tmp_path / "other")
    async with serve(whoami_app(), tls_server_context(pki)) as port:
        user = {"client-certificate": str(pki.admin.cert), "client-key": str(pki.admin.key)}
        cluster = {"certificate-authority": str(other.ca.cert)}
        path = write(tmp_path / "config", kubeconfig(f"https://127.0.0.1:{port}", user, cluster))
        async with await from_config(await load_config(path)) as client:
            with pytest.raises(errors.TransportError, match=r"(?i)certificate"):
                await client.request("GET", "/whoami")


async def test_token_kubeconfig_and_repr_hides_it(tmp_path: Path) -> None:
    async with serve(whoami_app()) as port:
        doc = kubeconfig(f"http://127.0.0.1:{port}", {"token": "s3cr3t"})
        cfg = await load_config(write(tmp_path / "config", doc))
        assert "s3cr3t" not in repr(cfg)
        assert await cfg.authorization() == "Bearer s3cr3t"
        async with await from_config(cfg) as client:
            answer = await client.request("GET", "/whoami")
        assert answer["authorization"] == "Bearer s3cr3t"


async def test_rotated_token_file_is_reloaded_after_401(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("old")
    accepted = {"Bearer new"}
    app = whoami_app(accepted_tokens=accepted)
    async with serve(app) as port:
        doc = kubeconfig(f"http://127.0.0.1:{port}", {"tokenFile": str(token_file)})
        cfg = await load_config(write(tmp_path / "config", doc))
        token_file.write_text("new")
        async with await from_config(cfg) as client:
            answer = await client.request("GET", "/whoami")
            assert answer["authorization"] == "Bearer new"
            assert app[SEEN] == ["Bearer old", "Bearer new"]
            accepted.clear()  # revoked: the reload yields the same token, the 401 surfaces
            with pytest.raises(errors.Unauthorized):
                await client.request("GET", "/whoami")
            assert app[SEEN][2:] == ["Bearer new", "Bearer new"]


EXEC_PLUGIN = """\
import json, pathlib, sys
counter = pathlib.Path(sys.argv[1])
n = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(n))
print(json.dumps({
    "apiVersion": "client.authentication.k8s.io/v1",
    "kind": "ExecCredential",
    "status": {"token": f"exec-{n}", "expirationTimestamp": sys.argv[2]},
}))
"""


@pytest.mark.parametrize(
    ("lifetime", "expected"),
    [
        # Valid for an hour: the credential from loading is reused until a 401 forces a rerun.
        (timedelta(hours=1), (1, 2, 2)),
        # Expired (within the library's 5-minute skew): every use runs the plugin again.
        (timedelta(0), (2, 4, 5)),
    ],
)
async def test_exec_plugin_credentials_refresh_on_expiry_and_401(
    tmp_path: Path, lifetime: timedelta, expected: tuple[int, int, int]
) -> None:
    script = tmp_path / "plugin.py"
    script.write_text(EXEC_PLUGIN)
    counter = tmp_path / "count"
    expiry = (datetime.now(UTC) + lifetime).strftime("%Y-%m-%dT%H:%M:%SZ")
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": [str(script), str(counter), expiry],
            "interactiveMode": "Never",
        }
    }
    cfg = await load_config(write(tmp_path / "config", kubeconfig("http://127.0.0.1:1", user)))
    assert cfg.uses_exec_plugin
    first = await cfg.authorization()
    await cfg.refresh()  # what the client does after a 401
    second = await cfg.authorization()
    third = await cfg.authorization()
    assert (first, second, third) == tuple(f"Bearer exec-{n}" for n in expected)
