"""Shared fixtures: the Phoenix and Jaeger backends are session-wide servers for every test that asks for them; a
self-signed certificate for TLS tests."""

import subprocess

import pytest

pytest_plugins = ["tests.support.phoenix", "tests.support.jaeger", "tests.support.postgres"]


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(cert file, key file) of a self-signed certificate for localhost and 127.0.0.1."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key
