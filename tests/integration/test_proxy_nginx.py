"""The nginx and Caddy recipes (deploy/nginx/vask.conf, deploy/caddy/Caddyfile), run by the real Debian nginx and
Caddy with a private CA made here.

pusher-js connects with forceTLS through it, pusher-http-python publishes with ssl=True through it (trusting the
private CA as docs/deploy/nginx.md says), and the client's address reaches Vask's log through X-Forwarded-For
only from the trusted proxy (nginx connects from 127.0.0.2, the one address in VASK_TRUSTED_PROXIES).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import pusher
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from js_helpers import JsClient, node_env_fixture  # noqa: F401  (fixture)
from pusher.requests import RequestsBackend
from websockets.sync.client import connect as ws_connect

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
RECIPE = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "vask.conf"
CADDY = shutil.which("caddy")
CADDYFILE = Path(__file__).resolve().parents[2] / "deploy" / "caddy" / "Caddyfile"
APP = {"id": "4242", "key": "tls-key", "secret": "tls-secret"}


def make_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A private CA and a certificate it signed for localhost and 127.0.0.1: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Vask test private CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Nginx:
    """The recipe with this test's ports and certificate, under a private prefix; stopped by ``stop``."""

    def __init__(self, directory: Path, upstream_port: int, cert: Path, key: Path) -> None:
        self.port = _free_port()
        recipe = RECIPE.read_text()
        for old, new in (("127.0.0.1:6001", f"127.0.0.1:{upstream_port}"),
                         ("listen 443 ssl;", f"listen 127.0.0.1:{self.port} ssl;"),
                         ("/etc/ssl/vask/fullchain.pem", str(cert)), ("/etc/ssl/vask/privkey.pem", str(key))):
            assert old in recipe, old
            recipe = recipe.replace(old, new)
        recipe = recipe[:recipe.rindex("server {")]  # the port-80 redirect is not needed here
        (directory / "logs").mkdir()
        (directory / "vask.conf").write_text(recipe)
        user = "user root;" if os.geteuid() == 0 else ""
        temp = "\n".join(f"    {name}_temp_path {directory / name};" for name in
                         ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (directory / "nginx.conf").write_text(f"""{user}
worker_processes 1;
pid {directory / 'nginx.pid'};
error_log {directory / 'logs' / 'error.log'} info;
events {{ worker_connections 256; }}
http {{
    access_log {directory / 'logs' / 'access.log'};
{temp}
    # Vask trusts only this address (VASK_TRUSTED_PROXIES): nginx is the one client connecting from it.
    proxy_bind 127.0.0.2;
    include {directory / 'vask.conf'};
}}
""")
        self.directory = directory
        checked = subprocess.run([NGINX, "-t", "-p", str(directory), "-c", str(directory / "nginx.conf")],
                                 capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
        self.process = subprocess.Popen([NGINX, "-p", str(directory), "-c", str(directory / "nginx.conf"),
                                         "-g", "daemon off;"], stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and self.process.poll() is None, "nginx did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class Caddy:
    """The Caddyfile with this test's ports and certificate (and no admin endpoint); stopped by ``stop``."""

    def __init__(self, directory: Path, upstream_port: int, cert: Path, key: Path) -> None:
        self.port = _free_port()
        recipe = CADDYFILE.read_text()
        for old, new in (("127.0.0.1:6001", f"127.0.0.1:{upstream_port}"),
                         ("realtime.example.com {", f"https://localhost:{self.port} {{"),
                         ("# tls /etc/ssl/vask/fullchain.pem /etc/ssl/vask/privkey.pem", f"tls {cert} {key}")):
            assert old in recipe, old
            recipe = recipe.replace(old, new)
        (directory / "Caddyfile").write_text("{\n\tadmin off\n\tauto_https disable_redirects\n}\n" + recipe)
        env = {**os.environ, "XDG_DATA_HOME": str(directory / "data"), "XDG_CONFIG_HOME": str(directory / "config"),
               "HOME": str(directory)}
        self.process = subprocess.Popen([str(CADDY), "run", "--config", str(directory / "Caddyfile"),
                                         "--adapter", "caddyfile"], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and self.process.poll() is None, "caddy did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class PrivateCABackend(RequestsBackend):  # type: ignore[misc]
    """pusher-http-python with ssl=True verifies against its own bundled CA file (it ignores REQUESTS_CA_BUNDLE);
    this backend, as docs/deploy/nginx.md shows, makes it trust a private CA instead."""

    ca_file = ""

    def __init__(self, client: Any, **options: Any) -> None:
        super().__init__(client, **options)
        self.options["verify"] = self.ca_file


@pytest.fixture
def behind_nginx(server_factory: Any, tmp_path: Path) -> Any:
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed (Debian: apt-get install nginx-light)")
    ca, cert, key = make_ca(tmp_path)
    server = server_factory([APP], env={"VASK_TRUSTED_PROXIES": "127.0.0.2", "VASK_LOG_LEVEL": "debug"})
    (tmp_path / "nginx").mkdir()
    nginx = Nginx(tmp_path / "nginx", server.port, cert, key)
    yield server, nginx, ca
    nginx.stop()


def _log_has(server: Any, text: str, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in line for line in server.output):
            return True
        time.sleep(0.05)
    return False


def test_pusher_js_force_tls_and_pusher_http_python_ssl_through_nginx(
        behind_nginx: Any, node_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    server, nginx, ca = behind_nginx
    monkeypatch.setenv("NODE_EXTRA_CA_CERTS", str(ca))  # Node's way to trust a private CA
    client = JsClient(node_env, server, name="tls")
    try:
        client.connect(wsHost="localhost", wssPort=nginx.port, forceTLS=True)
        client.call("subscribe", channel="secure")
        client.wait_for(type="event", event="pusher:subscription_succeeded", channel="secure")
        PrivateCABackend.ca_file = str(ca)
        backend = pusher.Pusher(app_id=APP["id"], key=APP["key"], secret=APP["secret"], host="localhost",
                                port=nginx.port, ssl=True, backend=PrivateCABackend)
        assert backend.trigger("secure", "over-nginx", {"tls": True}) == {}
        assert client.wait_for(type="event", event="over-nginx")["data"] == {"tls": True}
        assert backend.channel_info("secure", ["subscription_count"]) == {"occupied": True, "subscription_count": 1}
        # Without the private CA, pusher-http-python's own bundle refuses the certificate.
        default = pusher.Pusher(app_id=APP["id"], key=APP["key"], secret=APP["secret"], host="localhost",
                                port=nginx.port, ssl=True)
        with pytest.raises(requests.exceptions.SSLError):
            default.trigger("secure", "refused", {})
        assert requests.get(f"https://localhost:{nginx.port}/ready", verify=str(ca), timeout=5).text == "OK"
    finally:
        client.close()
    # nginx connects from 127.0.0.2, which is trusted, so Vask logs the address nginx saw: the real client's.
    assert _log_has(server, "WebSocket upgrade for app key tls-key from 127.0.0.1"), server.output[-10:]
    assert not _log_has(server, "from 127.0.0.2", timeout=0.2)


def test_forwarded_for_is_believed_only_from_the_trusted_proxy(behind_nginx: Any) -> None:
    server, nginx, ca = behind_nginx
    context = ssl.create_default_context(cafile=str(ca))
    # Through nginx: the client says it forwards for 203.0.113.7, nginx appends what it saw (127.0.0.1).
    with ws_connect(f"wss://localhost:{nginx.port}/app/{APP['key']}?protocol=7", ssl=context,
                    additional_headers={"X-Forwarded-For": "203.0.113.7"}) as ws:
        assert "connection_established" in str(ws.recv(timeout=5))
    # The header's rightmost untrusted entry is the client: 127.0.0.1, not what the client claimed.
    assert _log_has(server, "WebSocket upgrade for app key tls-key from 127.0.0.1")
    assert not _log_has(server, "from 203.0.113.7", timeout=0.2)
    # Straight to Vask from an untrusted peer (127.0.0.1): a forged header is ignored.
    response = requests.get(f"{server.http_url}/apps/{APP['id']}/channels", timeout=5,
                            headers={"X-Forwarded-For": "198.51.100.9"})
    assert response.status_code == 401
    assert _log_has(server, f"GET /apps/{APP['id']}/channels 401 from 127.0.0.1")
    assert not _log_has(server, "198.51.100.9", timeout=0.2)
    # Through nginx, from 127.0.0.2 (trusted), an HTTP API call is logged with the client's address.
    response = requests.get(f"https://localhost:{nginx.port}/apps/{APP['id']}/channels", verify=str(ca), timeout=5)
    assert response.status_code == 401
    assert _log_has(server, f"GET /apps/{APP['id']}/channels 401 from 127.0.0.1")
    assert not _log_has(server, "from 127.0.0.2", timeout=0.2)  # the proxy's own address is never the client


def test_caddy_recipe_with_pusher_js_force_tls_and_pusher_http_python_ssl(
        server_factory: Any, tmp_path: Path, node_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if CADDY is None:
        pytest.skip("caddy is not installed (Debian: apt-get install caddy)")
    ca, cert, key = make_ca(tmp_path)
    server = server_factory([APP], env={"VASK_TRUSTED_PROXIES": "127.0.0.1", "VASK_LOG_LEVEL": "debug"})
    (tmp_path / "caddy").mkdir()
    caddy = Caddy(tmp_path / "caddy", server.port, cert, key)
    monkeypatch.setenv("NODE_EXTRA_CA_CERTS", str(ca))
    client = JsClient(node_env, server, name="caddy")
    try:
        client.connect(wsHost="localhost", wssPort=caddy.port, forceTLS=True)
        client.call("subscribe", channel="secure")
        client.wait_for(type="event", event="pusher:subscription_succeeded", channel="secure")
        PrivateCABackend.ca_file = str(ca)
        backend = pusher.Pusher(app_id=APP["id"], key=APP["key"], secret=APP["secret"], host="localhost",
                                port=caddy.port, ssl=True, backend=PrivateCABackend)
        assert backend.trigger("secure", "over-caddy", {"tls": True}) == {}
        assert client.wait_for(type="event", event="over-caddy")["data"] == {"tls": True}
        # Caddy replaces a client's own X-Forwarded-For with the address it saw.
        context = ssl.create_default_context(cafile=str(ca))
        with ws_connect(f"wss://localhost:{caddy.port}/app/{APP['key']}?protocol=7", ssl=context,
                        additional_headers={"X-Forwarded-For": "203.0.113.7"}) as ws:
            assert "connection_established" in str(ws.recv(timeout=5))
        assert not _log_has(server, "from 203.0.113.7", timeout=0.5)
    finally:
        client.close()
        caddy.stop()
