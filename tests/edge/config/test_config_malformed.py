"""Config files that are not config files at all: each gets a located, human message, never a
traceback (the malformed-input catalogue, docs/robustness.md)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from edge.config import ConfigError, load_config

BOMB = "".join(f"{n}: &{n} [{', '.join([f'*{p}' if p else 'x'] * 9)}]\n"
               for n, p in zip("abcdefgh", ["", *"abcdefg"], strict=True))

CASES = [
    ("empty file", b"", "site: Field required"),
    ("a list, not a mapping", b"- a\n- b\n", "valid dictionary"),
    ("a bare word", b"hello\n", "valid dictionary"),
    ("binary bytes", b"\x00\xff\xfe\x01garbage", "make the file readable UTF-8 text"),
    ("tab indentation", b"site:\n\tcode: X\n", ":2:1: (top level): YAML syntax error"),
    ("duplicate key", b"site: {code: HUUNGHI, name: A}\nsite: {code: LAOBAO, name: B}\n",
     'duplicate key "site"'),
    ("alias bomb (billion laughs)", BOMB.encode(), "site: Field required"),
    ("unterminated quote", b'site: {code: "HUUNGHI, name: X}\n', "YAML syntax error"),
]


@pytest.mark.parametrize(("label", "content", "needle"), CASES, ids=[c[0] for c in CASES])
def test_not_a_config_file_gets_a_located_message(tmp_path: Path, label: str, content: bytes,
                                                  needle: str) -> None:
    path = tmp_path / "gate-edge.yaml"
    path.write_bytes(content)
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_config(path)
    rendered = info.value.render()
    assert needle in rendered, rendered
    assert str(path) in rendered and "fix:" in rendered
    assert time.monotonic() - started < 30   # an alias bomb must not expand for minutes
