"""Transport floor: CPU one request/response round trip costs the client, before any HTTP or JSON.

The operator's CPU target (<= 2 ms per session) has to cover ~19 API round trips and ~19 watch
events. This measures what the bare transport costs a Python client on this machine: a server
process on loopback answers every 3-byte request with 3,000 bytes (about a Kubernetes object), and
the client's CPU time (``RUSAGE_SELF``: user + system) per round trip is taken for

- a blocking socket (no event loop: the lower bound for any Python client),
- asyncio streams on asyncio's own event loop and on uvloop, over plain TCP and over TLS;

and, for watch events, the CPU per message the server pushes unasked, one every millisecond so
that each arrives on its own (as watch events do): a wake-up and a read per message. Last, for
reference, the client's request path on the same server: ``ApiClient.get`` of a 3,000-byte JSON
object over TLS on uvloop (orjson, metrics, no token bucket), through the keep-alive pool (the
operator's requests) and through aiohttp (a proxied kubeconfig's), which is what each HTTP stack
adds above the floor.

Figures are the median of 5 rounds of 2,000 round trips (or messages). No cluster needed.
"""

from __future__ import annotations

import asyncio
import datetime
import resource
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

ROUNDS = 5
TRIPS = 2_000
ANSWER = b"x" * 3_000
HTTP_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 3000\r\n\r\n"
    + b'{"x":"'
    + b"x" * (3_000 - 8)
    + b'"}'
)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _serve(port: int, cert: str | None, key: str | None) -> None:
    """The answering server (runs in its own process)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await reader.read(65536):
            if request.startswith(b"GET /"):  # an HTTP request (one read: no body)
                writer.write(HTTP_ANSWER)
            elif request == b"PUSH":
                for _ in range(TRIPS):
                    writer.write(ANSWER)
                    await asyncio.sleep(0.001)
            else:
                writer.write(ANSWER)

    async def main() -> None:
        context = None
        if cert and key:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
        server = await asyncio.start_server(answer, "127.0.0.1", port, ssl=context)
        await server.serve_forever()

    uvloop.run(main())


def _median_cpu_us(trip: Callable[[], None]) -> float:
    per_trip = []
    for _ in range(ROUNDS):
        start = _cpu()
        for _ in range(TRIPS):
            trip()
        per_trip.append((_cpu() - start) / TRIPS * 1e6)
    return statistics.median(per_trip)


async def _median_cpu_us_async(trip: Callable[[], Awaitable[None]]) -> float:
    per_trip = []
    for _ in range(ROUNDS):
        start = _cpu()
        for _ in range(TRIPS):
            await trip()
        per_trip.append((_cpu() - start) / TRIPS * 1e6)
    return statistics.median(per_trip)


def _blocking(port: int) -> float:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def trip() -> None:
        sock.sendall(b"GET")
        got = 0
        while got < len(ANSWER):
            got += len(sock.recv(65536))

    try:
        return _median_cpu_us(trip)
    finally:
        sock.close()


async def _streams(port: int, context: ssl.SSLContext | None) -> float:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost" if context else None
    )

    async def trip() -> None:
        writer.write(b"GET")
        got = 0
        while got < len(ANSWER):
            got += len(await reader.read(65536))

    try:
        return await _median_cpu_us_async(trip)
    finally:
        writer.close()


async def _pushed(port: int, context: ssl.SSLContext | None) -> float:
    """CPU per message for messages that arrive one by one (the watch-event case)."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost" if context else None
    )
    per_message = []
    try:
        for _ in range(ROUNDS):
            start = _cpu()
            writer.write(b"PUSH")
            got = 0
            while got < TRIPS * len(ANSWER):
                got += len(await reader.read(65536))
            per_message.append((_cpu() - start) / TRIPS * 1e6)
    finally:
        writer.close()
    return statistics.median(per_message)


async def _client_get(port: int, context: ssl.SSLContext, *, pool: bool) -> float:
    """CPU per ``ApiClient.get`` against the answering server, through the keep-alive pool (the
    operator's request path) or through aiohttp alone."""
    import aiohttp
    from kubernetes_asyncio.client import Configuration

    from agentic_operator.kube.client import ApiClient
    from agentic_operator.kube.config import KubeConfig
    from agentic_operator.kube.pool import ConnectionPool
    from agentic_operator.kube.resources import Resource

    configmaps = Resource("", "v1", "configmaps", "ConfigMap")
    config = KubeConfig(
        host=f"https://127.0.0.1:{port}",
        source="bench",
        configuration=Configuration(),
        ssl_context=context,
        tls_server_name="localhost",
    )
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    connections = None
    if pool:
        connections = ConnectionPool(config.host, lambda: context, server_hostname="localhost")
    async with ApiClient(config, session, qps=0, pool=connections) as client:

        async def trip() -> None:
            await client.get(configmaps, "x", "default")

        return await _median_cpu_us_async(trip)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(cert: Path | None, key: Path | None) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    argv = [sys.executable, "-m", "bench.floor_bench", "--serve", str(port)]
    if cert and key:
        argv += [str(cert), str(key)]
    proc = subprocess.Popen(argv, cwd=Path(__file__).resolve().parent.parent)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("floor benchmark: the answering server did not start") from None
            time.sleep(0.05)


def run() -> dict[str, float]:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = _self_signed(Path(tmp))
        client_tls = ssl.create_default_context(cafile=str(cert))
        plain, plain_port = _start_server(None, None)
        tls, tls_port = _start_server(cert, key)
        try:
            results["floor_blocking_socket_us"] = round(_blocking(plain_port), 1)
            for loop_name, runner in (("asyncio", asyncio.run), ("uvloop", uvloop.run)):
                results[f"floor_{loop_name}_tcp_us"] = round(runner(_streams(plain_port, None)), 1)
                results[f"floor_{loop_name}_tls_us"] = round(
                    runner(_streams(tls_port, client_tls)), 1
                )
                results[f"floor_{loop_name}_tls_push_us"] = round(
                    runner(_pushed(tls_port, client_tls)), 1
                )
            results["client_get_pool_uvloop_tls_us"] = round(
                uvloop.run(_client_get(tls_port, client_tls, pool=True)), 1
            )
            results["client_get_uvloop_tls_us"] = round(
                uvloop.run(_client_get(tls_port, client_tls, pool=False)), 1
            )
        finally:
            for proc in (plain, tls):
                proc.kill()
                proc.wait()
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        _serve(int(sys.argv[2]), *(sys.argv[3:5] or (None, None)))
    else:
        for name, value in run().items():
            print(f"{name}: {value}")
