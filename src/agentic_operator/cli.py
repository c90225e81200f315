"""Command line and environment -> one validated :class:`~agentic_operator.settings.Settings`.

Boolean flags work like Go's ``flag`` package: ``--leader-elect`` alone means true, and
``--leader-elect=false`` is accepted too. Flags and environment variables share one set of value
parsers (:mod:`agentic_operator.envparse`), so ``--leader-elect=t`` and ``DEV_MODE=t`` mean the
same. Precedence: a flag given on the command line wins over its environment variable, which wins
over the default (:data:`PRECEDENCE`). A bad flag or variable value exits with status 2 and a
message naming it, like Go's flag package.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from agentic_operator import __version__
from agentic_operator.envparse import (
    from_env,
    parse_bool,
    parse_duration,
    parse_positive_float,
    parse_positive_int,
)
from agentic_operator.logs import setup_logging
from agentic_operator.sessions.config import SessionConfig
from agentic_operator.settings import Settings

LEASE_NAME = "ambient-code-operator.ambient-code.io"
SESSION_TRIGGER = "session-trigger"
"""The one subcommand, handled before flag parsing: what scheduled-session CronJob pods run."""
DEFAULT_MAX_CONCURRENT_RECONCILES = 10
DEFAULT_NAMESPACE = SessionConfig().operator_namespace

PRECEDENCE = (
    # (flag, environment variable, default when neither is set)
    (
        "--max-concurrent-reconciles",
        "MAX_CONCURRENT_RECONCILES",
        str(DEFAULT_MAX_CONCURRENT_RECONCILES),
    ),
    ("--leader-election-namespace", "NAMESPACE", repr(DEFAULT_NAMESPACE)),
    ("--kubeconfig", "KUBECONFIG", "in-cluster config, then ~/.kube/config"),
)
"""Settings that a flag and an environment variable both set: the flag, when given, wins. Only the
setting is overridden: ``NAMESPACE`` still names the operator namespace for everything else, and
``KUBECONFIG`` is resolved by :mod:`agentic_operator.kube.config` in this same order."""

EVENT_LOOPS = ("uvloop", "asyncio")
"""``EVENT_LOOP`` values: uvloop (default) costs ~9% less CPU per session than asyncio's own loop
(docs/benchmarks.md); ``asyncio`` is there for debugging with asyncio's debug mode and tools."""

_V = TypeVar("_V")


def parse_bind_address(value: str) -> str:
    """``host:port``, ``:port`` (all interfaces) or ``0`` (disabled), as controller-runtime."""
    if value == "0":
        return value
    _, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"invalid address {value!r} (expected host:port, :port, or 0 to disable)")
    return value


def parse_event_loop(value: str) -> str:
    name = value.strip().lower()
    if name not in EVENT_LOOPS:
        raise ValueError(f"{value!r} is not one of {', '.join(EVENT_LOOPS)}")
    return name


def _flag(parse: Callable[[str], _V]) -> Callable[[str], _V]:
    """``parse`` as an argparse ``type``: argparse shows an ArgumentTypeError's own message but
    replaces a ValueError's with a generic one, so the parsers' messages are carried over."""

    def convert(value: str) -> _V:
        try:
            return parse(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


def _epilog() -> str:
    order = "\n".join(f"  {flag} > ${var} > {default}" for flag, var, default in PRECEDENCE)
    return f"""\
precedence: explicit flag > environment variable > default
{order}
  A flag given on the command line wins even when its variable is set (a bad
  MAX_CONCURRENT_RECONCILES is then not looked at). NAMESPACE still names the
  operator namespace when --leader-election-namespace is given.

environment:
  DEV_MODE=true               human-readable logs (JSON lines otherwise)
  EVENT_LOOP=asyncio          asyncio's own event loop instead of uvloop
  NAMESPACE                   operator namespace (default 'default')
  BACKEND_NAMESPACE           backend namespace (default: NAMESPACE)
  AMBIENT_CODE_RUNNER_IMAGE   runner image
  The full list is in the README and docs/sessions.md.

subcommand:
  agentic-operator session-trigger   create or continue a scheduled session (run by
                                     the platform's CronJob pods; see its --help)

values:
  Booleans, in flags and variables alike: 1, t, true, y, yes, on or 0, f,
  false, n, no, off (any case). Durations are seconds (30 or 30s). A bad
  value exits with status 2 and a message naming the flag or variable.
"""


def _bool_flag(help_: str) -> dict[str, Any]:
    """Go-style boolean: the flag alone means true, ``--flag=false`` (any boolean spelling) too."""
    return {
        "type": _flag(parse_bool),
        "nargs": "?",
        "const": True,
        "default": False,
        "metavar": "BOOL",
        "help": help_,
    }


FLAGS: tuple[tuple[str, dict[str, Any]], ...] = (
    # (flag, argparse.add_argument keywords), in --help order.
    ("--version", {"action": "version", "version": f"%(prog)s {__version__}"}),
    (
        "--kubeconfig",
        {
            "default": None,
            "help": (
                "path to a kubeconfig (default: $KUBECONFIG, in-cluster config, ~/.kube/config)"
            ),
        },
    ),
    (
        "--max-concurrent-reconciles",
        {
            "type": _flag(parse_positive_int),
            # None: not given, so $MAX_CONCURRENT_RECONCILES or the default applies
            "default": None,
            "metavar": "N",
            "help": (
                "maximum parallel session reconciles "
                f"(default: $MAX_CONCURRENT_RECONCILES, else {DEFAULT_MAX_CONCURRENT_RECONCILES})"
            ),
        },
    ),
    (
        "--metrics-bind-address",
        {
            "type": _flag(parse_bind_address),
            "default": ":8080",
            "metavar": "ADDR",
            "help": "address of the Prometheus /metrics endpoint, 0 disables (default :8080)",
        },
    ),
    (
        "--health-probe-bind-address",
        {
            "type": _flag(parse_bind_address),
            "default": ":8081",
            "metavar": "ADDR",
            "help": "address of /healthz and /readyz, 0 disables (default :8081)",
        },
    ),
    ("--leader-elect", _bool_flag("enable Lease-based leader election for HA (default false)")),
    (
        "--leader-election-id",
        {
            "default": LEASE_NAME,
            "metavar": "NAME",
            "help": f"name of the Lease (default {LEASE_NAME})",
        },
    ),
    (
        "--leader-election-namespace",
        {
            "default": None,
            "metavar": "NS",
            "help": f"namespace of the Lease (default: $NAMESPACE, else {DEFAULT_NAMESPACE!r})",
        },
    ),
    (
        "--legacy-watch",
        _bool_flag(
            "debugging mode: a plain watch loop that runs the same reconcile inline, one event "
            "at a time, without the work queue (default false)"
        ),
    ),
    (
        "--kube-api-qps",
        {
            "type": _flag(parse_positive_float),
            "default": 100.0,
            "metavar": "QPS",
            "help": "client-side request rate limit (default 100)",
        },
    ),
    (
        "--kube-api-burst",
        {
            "type": _flag(parse_positive_int),
            "default": 200,
            "metavar": "N",
            "help": "client-side request burst (default 200)",
        },
    ),
    (
        "--cache-sync-timeout",
        {
            "type": _flag(parse_duration),
            "default": 120.0,
            "metavar": "SECONDS",
            "help": "how long to wait for informer caches before giving up (default 120)",
        },
    ),
    (
        "--graceful-shutdown-timeout",
        {
            "type": _flag(parse_duration),
            "default": 30.0,
            "metavar": "SECONDS",
            "help": "time in-flight reconciles get to finish on SIGTERM (default 30)",
        },
    ),
)
"""Every command-line flag with its argparse options, in ``--help`` order; :func:`build_parser` adds
them in one loop. Values are read into :class:`Settings` by :func:`parse_settings`."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="agentic-operator",
        description=(
            "Kubernetes operator that runs AgenticSession custom resources as batch/v1 Jobs\n"
            "(work queue with rate limiting, concurrent reconciles, leader election, metrics)."
        ),
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for flag, options in FLAGS:
        p.add_argument(flag, **options)
    return p


def parse_settings(argv: Sequence[str] | None, env: Mapping[str, str]) -> Settings:
    """Parse flags and environment; exits with status 2 and usage on any bad value."""
    parser = build_parser()
    args = parser.parse_args(argv)

    try:
        # Explicit flag > environment variable > default (see PRECEDENCE).
        max_conc: int = args.max_concurrent_reconciles
        if max_conc is None:
            max_conc = from_env(
                env,
                "MAX_CONCURRENT_RECONCILES",
                parse_positive_int,
                DEFAULT_MAX_CONCURRENT_RECONCILES,
            )
        dev_mode = from_env(env, "DEV_MODE", parse_bool, False)
        event_loop = from_env(env, "EVENT_LOOP", parse_event_loop, "uvloop")
        sessions = SessionConfig.from_env(env)
    except ValueError as exc:  # from_env and SessionConfig name the variable first
        parser.error(f"environment variable {exc}")

    return Settings(
        kubeconfig=args.kubeconfig,
        max_concurrent_reconciles=max_conc,
        metrics_bind_address=args.metrics_bind_address,
        health_probe_bind_address=args.health_probe_bind_address,
        leader_elect=args.leader_elect,
        leader_election_id=args.leader_election_id,
        leader_election_namespace=args.leader_election_namespace or sessions.operator_namespace,
        legacy_watch=args.legacy_watch,
        dev_mode=dev_mode,
        event_loop=event_loop,
        qps=args.kube_api_qps,
        burst=args.kube_api_burst,
        cache_sync_timeout=args.cache_sync_timeout,
        graceful_shutdown_timeout=args.graceful_shutdown_timeout,
        sessions=sessions,
    )


def session_trigger_main(args: Sequence[str], env: Mapping[str, str]) -> int:
    """``agentic-operator session-trigger``: no flags but ``--help``; one line on exit."""
    from agentic_operator.projects import trigger

    if list(args) in (["-h"], ["--help"]):
        print(trigger.USAGE, end="")
        return 0
    if args:
        print(
            f"session-trigger: error: takes no arguments, got {' '.join(args)!r}", file=sys.stderr
        )
        return trigger.EXIT_BAD_INPUT
    try:
        print(f"session-trigger: {asyncio.run(trigger.session_trigger(env))}")
        return 0
    except trigger.TriggerError as exc:
        print(f"session-trigger: error: {exc}", file=sys.stderr)
        return exc.code


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == [SESSION_TRIGGER]:
        return session_trigger_main(args[1:], os.environ)
    settings = parse_settings(argv, os.environ)
    setup_logging(dev_mode=settings.dev_mode)
    from agentic_operator.app import run  # imported late: --help must stay fast

    loop_factory = None
    if settings.event_loop == "uvloop":
        import uvloop

        loop_factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(run(settings))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # last resort: one clear line, non-zero exit
        logging.getLogger("agentic_operator").error("fatal: %s", exc, exc_info=settings.dev_mode)
        return 1


if __name__ == "__main__":
    sys.exit(main())
