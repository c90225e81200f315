"""Where the API server is and how to authenticate to it.

Configuration and authentication are the one place where we lean on ``kubernetes_asyncio``: its
loaders handle kubeconfig merging, client certificates (files or inline data), static tokens and
token files, exec credential plugins of every API version, OIDC/GCP auth providers, and the
in-cluster service account whose token file is re-read as the kubelet rotates it. We only take the
resulting ``Configuration`` (host, CA, client cert/key, verify flag, proxy, bearer token) and build
our own TLS context and Authorization header from it; its generated models and ApiClient are never
used.

Credential refresh:

* in-cluster: the library installs ``refresh_api_key_hook`` which re-reads the token file every
  minute; :meth:`KubeConfig.authorization` calls it through ``get_api_key_with_prefix``.
* exec plugins: the library caches the credential until its ``expirationTimestamp`` (minus a skew)
  but installs no hook, so :meth:`KubeConfig.authorization` re-runs the plugin when it has expired.
* anything else (token file replaced, exec credential without expiry revoked...): a 401 makes the
  client call :meth:`KubeConfig.refresh` once and retry the request.

Tokens are never logged and never appear in ``repr``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio.client import Configuration
from kubernetes_asyncio.config import ConfigException, load_kube_config
from kubernetes_asyncio.config.incluster_config import (
    SERVICE_CERT_FILENAME,
    SERVICE_TOKEN_FILENAME,
    InClusterConfigLoader,
)
from kubernetes_asyncio.config.kube_config import KubeConfigLoader, _is_expired

log = logging.getLogger(__name__)

_BEARER = "BearerToken"  # the api_key identifier kubernetes_asyncio's loaders fill in


class ConfigError(Exception):
    """The configuration could not be loaded; ``str(exc)`` is one line fit for a CLI error."""


@dataclass
class KubeConfig:
    """A loaded client configuration: server URL, TLS context and a source of credentials."""

    host: str
    """Base URL of the API server, without a trailing slash (may carry a path prefix)."""
    source: str
    """Where it came from: the kubeconfig path(s) or ``in-cluster``; for messages."""
    configuration: Any = field(repr=False)
    """The ``kubernetes_asyncio.client.Configuration`` the loader filled in."""
    context: str | None = None
    """The kubeconfig context in use (None in-cluster)."""
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    """TLS settings for https hosts (CA, client certificate, verification); None for http."""
    tls_server_name: str | None = None
    proxy: str | None = None
    _loader: KubeConfigLoader | None = field(default=None, repr=False)
    _incluster: InClusterConfigLoader | None = field(default=None, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    _cert_pair: tuple[str | None, str | None] = field(default=(None, None), repr=False)

    @property
    def uses_exec_plugin(self) -> bool:
        user = self._loader._user if self._loader is not None else None
        return user is not None and "exec" in user

    async def authorization(self) -> str | None:
        """The ``Authorization`` header value for the next request (refreshed when expired)."""
        if self.uses_exec_plugin:
            assert self._loader is not None
            expiry = getattr(self._loader, "exec_plugin_expiry", None)
            if expiry is not None and _is_expired(expiry):
                await self._reload(force=False)
        value = await self.configuration.get_api_key_with_prefix(_BEARER)
        return str(value) if value else None

    async def refresh(self) -> None:
        """Reload credentials after the server rejected them (HTTP 401)."""
        await self._reload(force=True)

    async def _reload(self, *, force: bool) -> None:
        async with self._lock:
            if self._incluster is not None:
                if force:
                    # The library's hook re-reads the token file once its copy has expired.
                    self._incluster.token_expires_at = datetime.min
                return
            if self._loader is None:
                return
            if force and hasattr(self._loader, "exec_plugin_expiry"):
                # Without this the library would keep serving the cached exec credential.
                del self._loader.exec_plugin_expiry
            try:
                await self._loader.load_and_set(self.configuration)
            except Exception as exc:
                # Keep the old credentials; the caller sees the original 401 or retries later.
                log.warning("reloading credentials from %s failed: %s", self.source, exc)
                return
            pair = (self.configuration.cert_file, self.configuration.key_file)
            if pair != self._cert_pair and self.ssl_context is not None:
                # An exec plugin may hand out a new client certificate.
                self.ssl_context = _ssl_context(self.configuration)
                self._cert_pair = pair


def _ssl_context(cfg: Any) -> ssl.SSLContext:
    """TLS context from a Configuration: CA bundle, optional client certificate, verification."""
    verify = bool(cfg.verify_ssl)
    ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert if verify else None)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    return ctx


def _kubeconfig_paths(explicit: str | None) -> tuple[str | None, str]:
    """(path list or None for in-cluster, description) following client-go's precedence.

    ``--kubeconfig`` wins, then ``$KUBECONFIG`` (a path list), then the in-cluster service account
    when ``KUBERNETES_SERVICE_HOST`` is set, then ``~/.kube/config``.
    """
    if explicit:
        return explicit, explicit
    env = os.environ.get("KUBECONFIG")
    if env:
        return env, env
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None, "in-cluster"
    default = str(Path.home() / ".kube" / "config")
    return default, default


def _precheck(paths: str) -> list[str]:
    """Existing files of a kubeconfig path list, each parsed once to give YAML errors a clear text.

    The library would only log a warning for missing files and raise obscure errors for YAML that
    is not a mapping; messages here name the file, line and problem, never the file's content.
    """
    existing = [os.path.expanduser(p) for p in paths.split(os.pathsep) if p]
    existing = [p for p in existing if os.path.exists(p)]
    if not existing:
        raise ConfigError(f"kubeconfig {paths}: file not found")
    for path in existing:
        try:
            with open(path, encoding="utf-8") as f:
                doc = yaml.safe_load(f)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(f"kubeconfig {path}: invalid YAML{where}: {exc.problem}") from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"kubeconfig {path}: cannot read: {type(exc).__name__}") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"kubeconfig {path}: expected a mapping with clusters/contexts/users")
        for section in ("clusters", "contexts", "users"):
            if doc.get(section) is not None and not isinstance(doc[section], list):
                raise ConfigError(f"kubeconfig {path}: '{section}' must be a list")
    return existing


async def load_config(kubeconfig: str | None = None, context: str | None = None) -> KubeConfig:
    """Load the client configuration, or raise :class:`ConfigError` with a one-line message.

    ``kubeconfig`` is an explicit path (``--kubeconfig``); ``context`` overrides the kubeconfig's
    ``current-context``. See :func:`_kubeconfig_paths` for the search order.
    """
    paths, source = _kubeconfig_paths(kubeconfig)
    cfg = Configuration()
    loader: KubeConfigLoader | None = None
    incluster: InClusterConfigLoader | None = None
    try:
        if paths is None:
            incluster = InClusterConfigLoader(SERVICE_TOKEN_FILENAME, SERVICE_CERT_FILENAME)
            incluster.load_and_set(cfg)
        else:
            _precheck(paths)
            loader = await load_kube_config(
                config_file=paths, context=context, client_configuration=cfg, persist_config=False
            )
    except ConfigError:
        raise
    except ConfigException as exc:
        raise ConfigError(f"kubeconfig {source}: {_one_line(exc)}") from None
    except Exception as exc:
        # Malformed entries surface as KeyError/TypeError/AssertionError/binascii.Error inside
        # the library; name the type only (the message could quote credential data).
        raise ConfigError(
            f"kubeconfig {source}: malformed configuration ({type(exc).__name__})"
        ) from None

    if loader is not None:
        cluster = loader._cluster
        if cluster is None or not cluster.safe_get("server"):
            raise ConfigError(f"kubeconfig {source}: the selected cluster has no 'server'")
        context = context or loader.current_context.get("name")

    host = str(cfg.host).rstrip("/")
    if not host.startswith(("https://", "http://")):
        raise ConfigError(f"kubeconfig {source}: server {host!r} is not an http(s) URL")
    ssl_ctx: ssl.SSLContext | None = None
    if host.startswith("https://"):
        try:
            ssl_ctx = _ssl_context(cfg)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConfigError(
                f"kubeconfig {source}: cannot load TLS files: {_one_line(exc)}"
            ) from None
    return KubeConfig(
        host=host,
        source=source,
        configuration=cfg,
        context=context if loader is not None else None,
        ssl_context=ssl_ctx,
        tls_server_name=getattr(cfg, "tls_server_name", None) or None,
        proxy=cfg.proxy or None,
        _loader=loader,
        _incluster=incluster,
        _cert_pair=(cfg.cert_file, cfg.key_file),
    )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
