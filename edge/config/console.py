"""``console``: the officer console (FastAPI) served by the daemon.

Secrets never live in the YAML file: the session-signing key comes from an environment variable
or from a systemd credential (``LoadCredential=`` puts it under ``$CREDENTIALS_DIRECTORY``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path

from pydantic import Field, field_validator

from edge.config.types import Duration, Section

log = logging.getLogger(__name__)


#: Who may scrape /metrics by default: this host and the private ranges a checkpoint LAN uses
#: (RFC 1918, IPv6 unique-local), where the site's Prometheus runs; never the internet.
DEFAULT_METRICS_ALLOW = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12",
                         "192.168.0.0/16", "fc00::/7")


class ConsoleConfig(Section):
    """Where the officer console listens, how it protects its sessions, and who may scrape /metrics.

    /metrics is served by the console's web server; with the console off (``enabled: false``,
    e.g. a lane PC whose console runs on another host), ``metrics_port`` starts a web server
    that serves /metrics alone, guarded by the same ``metrics_allow`` and token.
    """

    enabled: bool = Field(True, description="serve the officer console")
    host: str = Field("127.0.0.1", description="listen address; 0.0.0.0 for the officers' LAN")
    port: int = Field(8080, ge=1, le=65535, description="listen port")
    session_secret_env: str = Field(
        "GATE_EDGE_CONSOLE_SECRET",
        description="environment variable holding the session-signing key (≥ 32 characters)")
    session_secret_credential: str = Field(
        "console-session-secret",
        description="file name of the key under $CREDENTIALS_DIRECTORY (systemd LoadCredential=)")
    session_max_age: Duration = Field(
        timedelta(hours=12), description="a login lasts at most this long (one shift)")
    secure_cookies: bool = Field(
        True, description="mark the session cookie Secure (HTTPS only; browsers also accept it "
                          "on http://localhost); set false only behind a TLS-terminating proxy "
                          "that speaks plain HTTP to the console on another host")
    tls_certfile: Path | None = Field(
        None, description="PEM certificate: serve HTTPS directly (needed for Secure cookies on "
                          "the officers' LAN unless a TLS proxy sits in front)")
    tls_keyfile: Path | None = Field(None, description="PEM private key of tls_certfile")
    max_failed_logins: int = Field(
        5, ge=1, le=100, description="consecutive wrong passwords before the account is locked")
    lockout: Duration = Field(
        timedelta(minutes=15), description="how long a locked account stays locked")
    login_attempts_per_minute: int = Field(
        10, ge=1, le=1000, description="login attempts allowed per client address per minute")
    max_body_bytes: int = Field(
        65536, ge=1024, le=10_000_000, description="larger request bodies are refused with 413")
    evidence_dir: Path | None = Field(
        None, description="evidence images; default: storage.dir/evidence")
    watch_interval: Duration = Field(
        timedelta(seconds=1),
        description="how often the console looks for passages other processes wrote to "
                    "records.db (stand-alone console, demo)")
    metrics_enabled: bool = Field(
        True, description="serve Prometheus metrics at GET /metrics (no login: scrapers have no "
                          "browser session; access is limited by metrics_allow instead)")
    metrics_allow: list[str] = Field(
        default_factory=lambda: list(DEFAULT_METRICS_ALLOW),
        description="client networks (CIDR, or single addresses) allowed to scrape /metrics; "
                    "others get 403. Default: loopback and private ranges (10/8, 172.16/12, "
                    "192.168/16, fc00::/7). An empty list refuses everyone")

    metrics_token_env: str = Field(
        "GATE_EDGE_METRICS_TOKEN",
        description="environment variable holding a bearer token scrapers must send "
                    "(Authorization: Bearer ...; Prometheus: authorization.credentials_file); "
                    "when neither it nor the credential is set, metrics_allow alone decides")
    metrics_token_credential: str = Field(
        "metrics-token",
        description="file name of the scrape token under $CREDENTIALS_DIRECTORY (systemd "
                    "LoadCredential=)")
    metrics_host: str = Field(
        "127.0.0.1",
        description="with enabled: false, the listen address of the metrics-only web server "
                    "(0.0.0.0 for the site's Prometheus on the LAN); unused while the console "
                    "runs, which serves /metrics itself")
    metrics_port: int | None = Field(
        None, ge=1, le=65535,
        description="with enabled: false, serve GET /metrics (and nothing else) on this port, "
                    "e.g. 9108, with the same metrics_allow and token; null: no metrics "
                    "without the console")

    @field_validator("metrics_allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=True)
            except ValueError as exc:
                hint = ""
                with contextlib.suppress(ValueError):
                    hint = f"; did you mean {ipaddress.ip_network(item, strict=False)}?"
                raise ValueError(f"{item!r} is not a network ({exc}); write "
                                 f"e.g. 10.20.0.0/16 or 10.20.0.5{hint}") from None
        return value

    def metrics_served(self) -> bool:
        """Whether ``gate-edge run`` serves /metrics: on the console, or on metrics_port."""
        return self.metrics_enabled and (self.enabled or self.metrics_port is not None)

    def metrics_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The parsed allow-list of /metrics."""
        return [ipaddress.ip_network(item) for item in self.metrics_allow]

    def metrics_token(self) -> str | None:
        """The bearer token /metrics requires, from environment or credential; None: no token."""
        value = os.environ.get(self.metrics_token_env, "").strip()
        cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
        if not value and cred_dir:
            path = Path(cred_dir) / self.metrics_token_credential
            if path.is_file():
                value = path.read_text(encoding="utf-8").strip()
        if value and len(value) < 16:
            raise ValueError(f"metrics token from {self.metrics_token_env} or "
                             f"{self.metrics_token_credential} is shorter than 16 characters; "
                             "generate one with: python -c 'import secrets; "
                             "print(secrets.token_urlsafe(32))'")
        return value or None

    def session_secret(self) -> str:
        """The key that signs session cookies: environment, then credential, else a random one.

        A random key is safe but logs everyone out on restart, so it is logged as a warning.
        """
        value = os.environ.get(self.session_secret_env, "")
        cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
        if not value and cred_dir:
            path = Path(cred_dir) / self.session_secret_credential
            if path.is_file():
                value = path.read_text(encoding="utf-8").strip()
        if value and len(value) < 32:
            raise ValueError(f"console session secret from {self.session_secret_env} or "
                             f"{self.session_secret_credential} is shorter than 32 characters; "
                             "generate one with: python -c 'import secrets; "
                             "print(secrets.token_urlsafe(48))'")
        if not value:
            log.warning("no console session secret in $%s or $CREDENTIALS_DIRECTORY/%s; using a "
                        "random one (officers are logged out when gate-edge restarts)",
                        self.session_secret_env, self.session_secret_credential)
            value = secrets.token_urlsafe(48)
        return value
