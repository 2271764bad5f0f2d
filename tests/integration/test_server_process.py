"""The `vask serve` process: health endpoints, graceful shutdown on signals, TLS, the development app."""

from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from raw_helpers import connect_raw, data_of, signed

from conftest import LISTEN_RE, VaskServer
from conftest import TestApp as Credentials  # not named Test*: pytest would try to collect it

APP = {"id": "424242", "key": "test-key", "secret": "test-secret"}


def test_health_endpoints(server: Any) -> None:
    for path in ("/", "/up", "/ready"):
        response = requests.get(f"{server.http_url}{path}", timeout=5)
        assert (response.status_code, response.text) == (200, "OK"), path
    assert requests.head(f"{server.http_url}/up", timeout=5).status_code == 200


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_closes_websockets_with_4200_and_exits_0(server_factory: Any, sig: int) -> None:
    server = server_factory([APP])
    clients = [connect_raw(server) for _ in range(3)]
    clients[0].subscribe("news")
    clients[1].subscribe_private("private-x", APP["key"], APP["secret"])
    clients[2].subscribe_presence("presence-x", APP["key"], APP["secret"], "u1")
    started = time.monotonic()
    server.process.send_signal(sig)
    for client in clients:
        code, frames = client.closed()
        assert code == 4200, (code, frames)
        errors = [f for f in frames if f.get("event") == "pusher:error"]
        assert not errors or data_of(errors[0])["code"] == 4200, frames
    assert server.process.wait(timeout=5) == 0
    assert time.monotonic() - started < 5
    assert any("Vask stopped." in line for line in server.output), server.output[-5:]
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.http_url}/up", timeout=2)


def test_not_ready_while_draining(server_factory: Any) -> None:
    """During a shutdown /ready must not say 200: 503 if the listener still answers, else refused."""
    server = server_factory([APP], env={"VASK_SHUTDOWN_GRACE": "3"})
    # A client that never reads holds the shutdown open until the grace period ends.
    sock = socket.create_connection((server.host, server.port))
    sock.sendall(f"GET /app/{APP['key']}?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    assert b"101" in sock.recv(4096).split(b"\r\n")[0]
    server.process.send_signal(signal.SIGTERM)
    seen: set[str] = set()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and server.process.poll() is None:
        try:
            seen.add(str(requests.get(f"{server.http_url}/ready", timeout=1).status_code))
        except requests.ConnectionError:
            seen.add("refused")
        if seen - {"200"}:
            break
        time.sleep(0.02)
    assert seen - {"200"}, f"/ready kept answering 200 after SIGTERM: {seen}"
    assert server.process.poll() is None, "the process should still be draining the silent client"
    assert server.process.wait(timeout=10) == 0
    sock.close()


# -- TLS -------------------------------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vask test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls(server_factory: Any, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server = server_factory([APP], "--ssl-cert", str(cert), "--ssl-key", str(key))
    assert server.scheme == "wss"
    context = ssl.create_default_context(cafile=str(cert))
    client = connect_raw(server, ssl_context=context)
    client.subscribe("secure-news")
    p = server.pusher()
    assert p._pusher_client.ssl
    # pusher-http-python pins its own CA bundle for ssl=True; point its requests session at our certificate.
    p._pusher_client.http.options["verify"] = str(cert)
    assert p.trigger("secure-news", "over-tls", {"ok": True}) == {}
    assert client.expect("over-tls")["data"] == '{"ok": true}'
    assert p.channel_info("secure-news", ["subscription_count"]) == {"occupied": True, "subscription_count": 1}
    response = signed(server, "GET", f"/apps/{APP['id']}/channels", verify=str(cert))
    assert response.status_code == 200 and "secure-news" in response.json()["channels"]
    assert requests.get(f"{server.http_url}/ready", verify=str(cert), timeout=5).text == "OK"
    # untrusted clients are refused by the TLS handshake; plain HTTP on the TLS port gets no answer
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{server.http_url}/up", timeout=5)
    with pytest.raises(requests.RequestException):
        requests.get(f"http://{server.host}:{server.port}/up", timeout=5)
    assert client.ping()


# -- the development app -------------------------------------------------------------------------


def serve_plain(data_dir: Path, *args: str) -> VaskServer:
    """`vask serve --port 0` exactly as a developer runs it (no --no-default-app)."""
    env = {**os.environ, "VASK_DATA_DIR": str(data_dir)}
    process = subprocess.Popen([sys.executable, "-m", "vask", "serve", "--port", "0", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert process.stdout is not None
    output: list[str] = []
    for line in process.stdout:
        output.append(line)
        match = LISTEN_RE.search(line)
        if match:
            break
    else:
        raise RuntimeError("vask serve exited before listening:\n" + "".join(output))
    stream = process.stdout
    threading.Thread(target=lambda: output.extend(stream), daemon=True).start()
    return VaskServer(match.group(2), int(match.group(3)), match.group(1), data_dir, process,
                      {"100000": Credentials("100000", "app-key", "app-secret")}, output)


def test_default_development_app(tmp_path: Path) -> None:
    server = serve_plain(tmp_path / "fresh")
    try:
        warning = "".join(server.output)
        assert "id=100000" in warning and "app-key" in warning and "app-secret" in warning, warning
        assert "WARNING" in warning.upper()
        client = connect_raw(server, "app-key")
        client.subscribe("dev")
        response = signed(server, "POST", "/apps/100000/events",
                          '{"name": "hello", "channels": ["dev"], "data": "{}"}')
        assert response.status_code == 200, response.text
        assert client.expect("hello")["channel"] == "dev"
        client.close()
    finally:
        server.stop()
    assert server.process.returncode == 0
    # A second start finds the app in the store: no new app, no warning, same credentials.
    again = serve_plain(tmp_path / "fresh")
    try:
        assert not any("development app was created" in line for line in again.output), again.output
        assert connect_raw(again, "app-key").ping()
    finally:
        again.stop()


def test_no_default_app_flag_means_no_app(server_factory: Any, tmp_path: Path) -> None:
    server = serve_plain(tmp_path / "empty", "--no-default-app")
    try:
        assert not any("app-secret" in line for line in server.output)
        client = connect_raw(server, "app-key", established=False)
        assert client.closed()[0] == 4001
    finally:
        server.stop()


def test_port_in_use_fails_cleanly(server: Any) -> None:
    done = subprocess.run([sys.executable, "-m", "vask", "serve", "--port", str(server.port), "--no-default-app"],
                          capture_output=True, text=True, timeout=30,
                          env={**os.environ, "VASK_DATA_DIR": str(server.data_dir)})
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert "cannot start the server" in done.stderr
    assert requests.get(f"{server.http_url}/up", timeout=5).text == "OK"
