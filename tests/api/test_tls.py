"""TLS: with --tls-cert/--tls-key (or one PEM with both) envhub speaks HTTPS on --listen;
clients that trust the certificate get answers, plain HTTP to that port gets none, and
API keys work over it. Certificates are self-signed, made with the openssl CLI for
127.0.0.1; every server listens on 127.0.0.1."""

import glob
import os
import shutil
import socket
import ssl
import subprocess
import tempfile

import pytest
import requests

import helpers
from helpers import bearer, create_key, wait_log_line


@pytest.fixture(scope="module")
def cert():
    """(cert.pem, key.pem, combined.pem): a self-signed certificate for IP 127.0.0.1."""
    if not shutil.which("openssl"):
        pytest.skip("the openssl CLI is not installed")
    d = tempfile.mkdtemp(prefix="envhub-certs-")
    c, k, both = (os.path.join(d, n) for n in ("cert.pem", "key.pem", "both.pem"))
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", k, "-out", c,
                        "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    with open(both, "w") as out:
        for part in (c, k):
            with open(part) as f:
                out.write(f.read())
    yield c, k, both
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def tls(envhub_module_factory, envhub_bin, cert):
    """An HTTPS server (separate certificate and key) with an admin and a runner key."""
    c, k, _ = cert
    keys = {}

    def make_keys(server):
        keys["admin"] = create_key(envhub_bin, server.db_path, "tls-admin", "admin")
        keys["runner"] = create_key(envhub_bin, server.db_path, "tls-runner", "runner")

    server = envhub_module_factory("--tls-cert", c, "--tls-key", k, scheme="https", verify=c,
                                   before_start=make_keys)
    server.keys = keys
    return server


def test_https_works_with_the_certificate(tls, cert):
    r = requests.get(f"{tls.url}/health", verify=cert[0], timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers.get("X-Request-Id"), dict(r.headers)
    assert wait_log_line(tls, f"id={r.headers['X-Request-Id']}") is not None


def test_api_keys_work_over_https(tls, cert):
    ca = cert[0]
    r = requests.post(f"{tls.url}/execute", json={"code": "print('over tls')"}, verify=ca, timeout=60,
                      headers=bearer(tls.keys["runner"]))
    assert r.status_code == 200, r.text
    assert r.json()["stdout"] == "over tls\n", r.text
    row = helpers.catalog_row(tls.db_path, r.json()["id"])
    assert row["principal"] == "tls-runner", row
    r = requests.get(f"{tls.url}/keys", verify=ca, timeout=10)
    assert r.status_code == 401, r.text
    r = requests.get(f"{tls.url}/keys", verify=ca, timeout=10, headers=bearer(tls.keys["runner"]))
    assert r.status_code == 403, r.text
    r = requests.get(f"{tls.url}/keys", verify=ca, timeout=10, headers=bearer(tls.keys["admin"]))
    assert r.status_code == 200, r.text


def test_plain_http_to_the_tls_port_fails(tls):
    url = f"http://127.0.0.1:{tls.port}/health"
    try:
        r = requests.get(url, timeout=10)
    except requests.RequestException:
        return  # no HTTP answer: right
    assert r.status_code != 200, f"plain HTTP got an answer from the TLS port: {r.status_code} {r.text[:300]}"
    assert "X-Request-Id" not in r.headers, f"plain HTTP reached the API: {r.status_code} {dict(r.headers)}"


def test_the_certificate_is_the_one_given(tls, cert):
    """The server presents our certificate (a client that does not trust it refuses)."""
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{tls.url}/health", timeout=10)  # verify against the system CAs
    ctx = ssl.create_default_context(cafile=cert[0])
    with socket.create_connection(("127.0.0.1", tls.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            assert s.version() in ("TLSv1.2", "TLSv1.3"), s.version()
            der = s.getpeercert(binary_form=True)
    with open(cert[0]) as f:
        assert ssl.PEM_cert_to_DER_cert(f.read()) == der


def test_one_pem_with_certificate_and_key_in_tls_cert(envhub_factory, cert):
    _, _, both = cert
    server = envhub_factory("--tls-cert", both, scheme="https", verify=cert[0])
    r = requests.get(f"{server.url}/health", verify=cert[0], timeout=10)
    assert r.status_code == 200, r.text
    assert "open mode" in server.log_text(), server.log_tail()  # loopback without keys, over TLS too


def test_the_startup_log_names_https(tls):
    line = wait_log_line(tls, "serving on", within=1)
    assert line is not None, tls.log_tail()
    assert "https://" in line, f"the start-up log announces another scheme than the one served: {line!r}"


def test_the_joined_key_file_is_private_and_removed_at_stop(envhub_factory, cert):
    """The certificate and key given apart are joined into one file for civetweb: it must
    be readable by the server's user only and gone when the server stops."""
    c, k, _ = cert
    with open(k, "rb") as f:
        key_bytes = f.read()
    before = set(glob.glob("/tmp/envhub-tls-*/server.pem"))
    server = envhub_factory("--tls-cert", c, "--tls-key", k, scheme="https", verify=c)
    ours = []
    for path in set(glob.glob("/tmp/envhub-tls-*/server.pem")) - before:
        try:
            with open(path, "rb") as f:
                if key_bytes.strip() in f.read():
                    ours.append(path)
        except OSError:
            pass
    if not ours:
        pytest.skip("the server joins certificate and key somewhere else (no /tmp/envhub-tls-*/server.pem)")
    path = ours[0]
    assert os.stat(path).st_mode & 0o077 == 0, f"{path} mode {oct(os.stat(path).st_mode)}"
    assert os.stat(os.path.dirname(path)).st_mode & 0o077 == 0, f"{os.path.dirname(path)} is not private"
    server.stop()
    assert not os.path.exists(path), f"{path} (with the private key) is left after the server stopped"
