"""``mqtt``: the link to the central customs system (MQTT 5, DESIGN-NOTES §7, docs/sync.md).

Secrets (the site's Ed25519 signing key, the TLS client key) are read from files; a relative
file name is looked up in ``$CREDENTIALS_DIRECTORY`` first, which is where systemd's
``LoadCredential=`` puts them, so no secret ever sits in the YAML file.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from pydantic import Field, model_validator

from edge.config.types import Duration, Section


def credential_path(path: Path) -> Path:
    """Resolve a secret's file: relative names live in ``$CREDENTIALS_DIRECTORY`` if set."""
    if path.is_absolute():
        return path
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and (Path(creds) / path).exists():
        return Path(creds) / path
    return path


class BrokerConfig(Section):
    """One broker; several give failover in order."""

    host: str = Field(..., description="broker host name or address")
    port: int = Field(8883, ge=1, le=65535, description="1883 plain, 8883 TLS")
    tls: bool | None = Field(None, description="use TLS; default: true on port 8883, else false")

    @property
    def use_tls(self) -> bool:
        """TLS on unless said otherwise on the standard TLS port."""
        return self.port == 8883 if self.tls is None else self.tls


class TlsConfig(Section):
    """TLS with client certificates (mutual TLS) towards the broker."""

    ca_file: Path | None = Field(None, description="CA bundle that signed the broker certificate; "
                                                   "default: the system trust store")
    cert_file: Path | None = Field(None, description="this checkpoint's client certificate (PEM)")
    key_file: Path | None = Field(
        None, description="private key of the client certificate (PEM); a relative name is "
                          "looked up in $CREDENTIALS_DIRECTORY first")
    insecure_skip_hostname_check: bool = Field(
        False, description="lab use only: accept a broker certificate for another host name")

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give both cert_file and key_file for a client certificate, or neither")
        return self


class CentralKeyConfig(Section):
    """A public key of the centre; several allow key rotation."""

    id: str = Field(..., min_length=1, max_length=64,
                    description="key id the centre puts in each batch's 'kid'")
    public_key: str = Field(..., description="Ed25519 public key: base64 of the 32 raw bytes or "
                                             "of the DER SubjectPublicKeyInfo, or PEM")


class SiteKeyConfig(Section):
    """The checkpoint's own Ed25519 key that signs everything sent up."""

    id: str = Field(..., min_length=1, max_length=64,
                    description="key id sent as 'kid' so the centre picks the right public key")
    private_key_file: Path = Field(
        Path("site-signing.key"),
        description="Ed25519 private key (PEM, PKCS#8, unencrypted), made by 'gate-edge keys "
                    "generate'; a relative name is looked up in $CREDENTIALS_DIRECTORY first")


class MqttConfig(Section):
    """Connection to the central system; disabled means the gate runs on its cache alone."""

    enabled: bool = Field(True, description="false: run without a centre (lab use only)")
    brokers: list[BrokerConfig] = Field(default_factory=list,
                                        description="brokers in failover order")
    client_id: str | None = Field(None, description="MQTT client id; default gate-edge-<site>")
    username: str | None = Field(None, description="broker user name, if the broker wants one")
    password_file: Path | None = Field(
        None, description="file holding the broker password (relative: $CREDENTIALS_DIRECTORY)")
    tls: TlsConfig = Field(default_factory=TlsConfig, description="TLS settings for TLS brokers")
    topic_prefix: str = Field(
        "", pattern=r"^([A-Za-z0-9_-]+/)*$",
        description="prepended to every topic, e.g. 'vn/' when one broker serves several "
                    "countries; empty for the topics of docs/protocols.md as written")
    central_keys: list[CentralKeyConfig] = Field(
        default_factory=list, description="public keys that may sign manifest batches and commands")
    site_key: SiteKeyConfig | None = Field(
        None, description="this checkpoint's signing key; without it nothing is sent up")
    keepalive: Duration = Field(timedelta(seconds=30), description="MQTT keep-alive interval")
    session_expiry: Duration = Field(
        timedelta(days=2),
        description="how long the broker keeps this checkpoint's session (subscriptions and "
                    "queued batches) while it is offline (MQTT 5 Session Expiry Interval)")
    connect_timeout: Duration = Field(timedelta(seconds=10),
                                      description="give up on one broker after this long")
    backoff_min: Duration = Field(timedelta(seconds=1), description="first reconnect delay")
    backoff_max: Duration = Field(timedelta(seconds=60),
                                  description="reconnect delay cap; each delay is random in [cap/2, cap] "
                                              "(equal jitter) so checkpoints do not reconnect in step")
    max_payload_bytes: int = Field(
        4 * 1024 * 1024, ge=1024,
        description="larger incoming messages are rejected unread (alarm PAYLOAD_TOO_LARGE)")
    max_inflight: int = Field(
        20, ge=1, le=65535,
        description="QoS 1 messages in flight; keep at or below the broker's receive maximum "
                    "(Mosquitto: max_inflight_messages, default 20)")
    apply_workers: int = Field(
        1, ge=0, le=4,
        description="worker processes that verify and validate large manifest batches while "
                    "the previous batch is written to the cache (0: all in the sync thread)")
    publish_window: int = Field(
        1000, ge=1, description="outbox rows handed to the client before their PUBACKs return")
    max_clock_skew: Duration = Field(
        timedelta(minutes=5),
        description="a batch or command signed further in the future than this is rejected")
    max_command_ttl: Duration = Field(
        timedelta(minutes=2), description="longest accepted gap between a command's issued_at "
                                          "and its not_after")
    resync_timeout: Duration = Field(timedelta(seconds=30),
                                     description="repeat an unanswered resync request after this")
    alarm_interval: Duration = Field(
        timedelta(minutes=1),
        description="at most one alarm per reason per interval goes up (a flood of bad "
                    "messages cannot flood the outbox); every rejection is still logged")

    @model_validator(mode="after")
    def _backoff(self) -> MqttConfig:
        if self.backoff_max < self.backoff_min:
            raise ValueError("backoff_max must not be below backoff_min")
        return self

    def resolved_client_id(self, site: str) -> str:
        """The client id the broker knows this checkpoint by (and keeps its session under)."""
        return self.client_id or f"gate-edge-{site}"
