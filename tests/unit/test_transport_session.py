"""Connection extras: HttpHook's session settings (proxies, TLS, redirects, timeout) are honoured,
and no other extra key (credentials among them) ever becomes a request header."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from ghl_shift4shop.ghl.hook import GhlHook
from ghl_shift4shop.shift4shop.hook import Shift4ShopHook

SECRETS = {
    "private_key": "pk-never-a-header-1",
    "token": "tk-never-a-header-2",
    "client_secret": "cs-never-a-header-3",
    "refresh_token": "rt-never-a-header-4",
    "location_id": "loc-never-a-header-5",
}


class _Api(BaseHTTPRequestHandler):
    """Answers ``{}``/``[]`` and keeps every request's headers."""

    def _answer(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append({"path": self.path, "headers": dict(self.headers.items())})
        body = b"[]" if "Customers" in self.path else b'{"notes": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args):
        pass


class _Proxy(BaseHTTPRequestHandler):
    """A forwarding HTTP proxy: it gets the absolute URL and sends the request on itself."""

    def _forward(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append({"path": self.path, "headers": dict(self.headers.items())})
        hop = {"proxy-connection", "connection", "host", "content-length"}
        with requests.Session() as s:
            s.trust_env = False  # straight to the target, whatever the environment says
            r = s.request(self.command, self.path, data=body, timeout=5, allow_redirects=False,
                          headers={k: v for k, v in self.headers.items() if k.lower() not in hop})  # fmt: skip
        self.send_response(r.status_code)
        self.send_header("Content-Type", r.headers.get("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(r.content)))
        self.end_headers()
        self.wfile.write(r.content)

    do_GET = do_POST = do_PUT = _forward

    def log_message(self, *args):
        pass


def _serve(handler, tls: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.seen = []
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def api():
    server = _serve(_Api)
    yield server
    server.shutdown()


@pytest.fixture
def proxy():
    server = _serve(_Proxy)
    yield server
    server.shutdown()


def _connection(monkeypatch, conn_id: str, host: str, **extra) -> None:
    conn = {"conn_type": "http", "host": host, "password": "pit-bearer-token", "extra": {**SECRETS, **extra}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def _hooks(tmp_path, conn_id: str):
    kw = {"timeout": 5, "max_attempts": 1, "rate_backend": f"sqlite:///{tmp_path / 'budget.db'}"}
    return (
        GhlHook(conn_id, burst=100, rate_per_s=100, **kw),
        Shift4ShopHook(conn_id, burst=100, rate_per_s=100, **kw),
    )


def _own(hook) -> set[str]:
    """Extra keys whose values the service's API takes as headers (the store's PrivateKey/Token)."""
    return {"private_key", "token"} if isinstance(hook, Shift4ShopHook) else set()


def _assert_no_extra_in_headers(seen: list[dict], hook) -> None:
    assert seen
    for request in seen:
        names = {k.lower() for k in request["headers"]}
        assert not names & ({*SECRETS, "proxies", "proxy", "verify", "cert", "secure_url"} - _own(hook))
        values = " ".join(request["headers"].values())
        for key, secret in SECRETS.items():
            if key not in _own(hook):
                assert secret not in values, f"{key} was sent in a header"


def test_proxy_from_the_extra_carries_every_request(api, proxy, tmp_path, monkeypatch):
    target = f"http://127.0.0.1:{api.server_port}"
    proxy_url = f"http://127.0.0.1:{proxy.server_port}"
    _connection(monkeypatch, "proxied", target, secure_url="store.example", proxies={"http": proxy_url})
    ghl, s4s = _hooks(tmp_path, "proxied")
    assert ghl.session.proxies == {"http": proxy_url} and s4s.session.proxies == {"http": proxy_url}
    assert ghl.request("GET", "/contacts/c1/notes").status_code == 200
    assert s4s.find_customers_by_email("jane@example.com") == []
    # Both went through the proxy (absolute URLs) and on to the API.
    assert [r["path"].startswith(target) for r in proxy.seen] == [True, True]
    assert len(api.seen) == 2
    _assert_no_extra_in_headers(api.seen[:1] + proxy.seen[:1], ghl)
    _assert_no_extra_in_headers(api.seen[1:] + proxy.seen[1:], s4s)
    assert api.seen[0]["headers"]["Authorization"] == "Bearer pit-bearer-token"
    assert api.seen[1]["headers"]["PrivateKey"] == SECRETS["private_key"]


def test_proxy_alias_and_session_settings_are_the_providers(tmp_path, monkeypatch):
    _connection(
        monkeypatch,
        "tuned",
        "http://127.0.0.1:9",
        secure_url="store.example",
        proxy={"https": "http://127.0.0.1:3128"},
        verify_ssl=False,
        cert="/etc/ssl/client.pem",
        max_redirects=3,
        trust_env=False,
        stream=True,
        timeout=7,
        allow_redirects=False,
    )
    ghl, s4s = _hooks(tmp_path, "tuned")
    for hook in (ghl, s4s):
        session = hook.session
        assert session.proxies == {"https": "http://127.0.0.1:3128"}
        assert session.verify is False and session.cert == "/etc/ssl/client.pem"
        assert (session.max_redirects, session.trust_env, session.stream) == (3, False, True)
        assert hook.send_options() == {"check_response": False, "timeout": 7, "allow_redirects": False}
        names = {k.lower() for k in session.headers}
        assert not names & ({*SECRETS, "proxy", "verify_ssl", "cert", "timeout", "stream"} - _own(hook))


def test_tls_defaults_verify_and_the_hooks_timeout(tmp_path, monkeypatch):
    _connection(monkeypatch, "plain", "https://127.0.0.1:9", secure_url="store.example")
    ghl, _ = _hooks(tmp_path, "plain")
    assert ghl.session.verify is True and ghl.session.proxies == {} and ghl.session.cert is None
    assert ghl.send_options() == {"check_response": False, "timeout": 5, "allow_redirects": True}


def _self_signed(tmp_path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "ca.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


@pytest.mark.parametrize("verify", ["ca_bundle", False, None])
def test_tls_verify_from_the_extra_against_a_self_signed_server(verify, tmp_path, monkeypatch):
    cert, key = _self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server = _serve(_Api, tls)
    try:
        extra = {"secure_url": "store.example"}
        if verify is not None:
            extra["verify"] = cert if verify == "ca_bundle" else verify
        _connection(monkeypatch, "tls", f"https://127.0.0.1:{server.server_port}", **extra)
        ghl, _ = _hooks(tmp_path, "tls")
        if verify is None:  # the default verifies, and a self-signed certificate fails it
            with pytest.raises(requests.exceptions.SSLError):
                ghl.request("GET", "/contacts/c1/notes")
            return
        assert ghl.session.verify == extra["verify"]
        assert ghl.request("GET", "/contacts/c1/notes").status_code == 200
        _assert_no_extra_in_headers(server.seen, ghl)
    finally:
        server.shutdown()
