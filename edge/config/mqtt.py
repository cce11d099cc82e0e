"""``mqtt``: the link to the central customs system (MQTT 5)."""

from __future__ import annotations

from pydantic import Field

from edge.config.types import Section


class BrokerConfig(Section):
    """One broker; several give failover in order."""

    host: str = Field(..., description="broker host name or address")
    port: int = Field(8883, ge=1, le=65535, description="1883 plain, 8883 TLS")


class CentralKeyConfig(Section):
    """A public key of the centre; several allow key rotation."""

    id: str = Field(..., description="key id the centre puts in each batch's 'kid'")
    public_key: str = Field(..., description="Ed25519 public key, base64 (32 bytes) or PEM")


class MqttConfig(Section):
    """Connection to the central system; disabled means the gate runs on its cache alone."""

    enabled: bool = Field(True, description="false: run without a centre (lab use only)")
    brokers: list[BrokerConfig] = Field(default_factory=list,
                                        description="brokers in failover order")
    client_id: str | None = Field(None, description="MQTT client id; default gate-edge-<site>")
    central_keys: list[CentralKeyConfig] = Field(
        default_factory=list, description="public keys that may sign manifest batches")
