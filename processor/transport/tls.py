"""TLS settings in the Collector's shape (`tls:` under a receiver protocol or an exporter)."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass

import grpc

from tracejudge.processor.component.errors import ConfigError


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _check_files(path: str, **files: str) -> list[str]:
    return [f"{path}.{key}: file {value!r} does not exist or is not readable"
            for key, value in files.items() if value and not os.access(value, os.R_OK)]


@dataclass(frozen=True)
class TlsServerConfig:
    cert_file: str = ""
    key_file: str = ""
    client_ca_file: str = ""  # when set, clients must present a certificate signed by this CA

    def validate(self, path: str) -> None:
        problems = _check_files(path, cert_file=self.cert_file, key_file=self.key_file,
                                client_ca_file=self.client_ca_file)
        if not (self.cert_file and self.key_file):
            problems.append(f"{path}: cert_file and key_file are both required to serve TLS")
        if problems:
            raise ConfigError(problems)

    def grpc_credentials(self) -> grpc.ServerCredentials:
        ca = _read(self.client_ca_file) if self.client_ca_file else None
        return grpc.ssl_server_credentials([(_read(self.key_file), _read(self.cert_file))],
                                           root_certificates=ca, require_client_auth=ca is not None)

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        if self.client_ca_file:
            context.load_verify_locations(self.client_ca_file)
            context.verify_mode = ssl.CERT_REQUIRED
        return context


@dataclass(frozen=True)
class TlsClientConfig:
    insecure: bool = False  # gRPC only: plaintext instead of TLS (an http:// endpoint says the same)
    ca_file: str = ""
    cert_file: str = ""  # client certificate for mutual TLS
    key_file: str = ""

    def validate(self, path: str) -> None:
        problems = _check_files(path, ca_file=self.ca_file, cert_file=self.cert_file, key_file=self.key_file)
        if bool(self.cert_file) != bool(self.key_file):
            problems.append(f"{path}: cert_file and key_file go together (mutual TLS)")
        if problems:
            raise ConfigError(problems)

    def grpc_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file) if self.ca_file else None,
            private_key=_read(self.key_file) if self.key_file else None,
            certificate_chain=_read(self.cert_file) if self.cert_file else None,
        )

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file or None)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context
