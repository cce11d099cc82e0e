"""The seal_readers config section: new options have safe defaults and clear errors."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from edge.config.seal_readers import BarcodeScannerConfig, ESealReaderConfig, SealReaderConfig

ADAPTER: TypeAdapter[ESealReaderConfig | BarcodeScannerConfig] = TypeAdapter(SealReaderConfig)


def test_type_selects_the_model_and_defaults_are_the_protocol_defaults() -> None:
    eseal = ADAPTER.validate_python({"type": "eseal", "name": "es-1", "port": "/dev/gate-eseal-1"})
    assert isinstance(eseal, ESealReaderConfig)
    assert (eseal.max_payload_bytes, eseal.alarm_after_s, eseal.frame_timeout_s) == (240, 10.0, 0.5)
    scan = ADAPTER.validate_python({"type": "barcode", "name": "bc-1", "port": "/dev/x",
                                    "strip_prefix": "]C0"})
    assert isinstance(scan, BarcodeScannerConfig) and scan.max_line_chars == 64


@pytest.mark.parametrize(("over", "message"), [
    ({"reconnect_min_s": 5, "reconnect_max_s": 1}, "reconnect_max_s must be >= reconnect_min_s"),
    ({"type": "rfid"}, "expected tags: 'eseal', 'barcode'"),
    ({"max_payload_bytes": 4}, "greater than or equal to 16"),
    ({"error_alarm_threshold": 0}, "greater than or equal to 1"),
    ({"crc": "modbus"}, "Extra inputs are not permitted"),
])
def test_bad_values_are_rejected_with_the_reason(over: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ADAPTER.validate_python({"type": "eseal", "name": "es-1", "port": "/dev/x", **over})


def test_every_field_is_described() -> None:
    for model in (ESealReaderConfig, BarcodeScannerConfig):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
