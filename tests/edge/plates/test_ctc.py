"""Grammar-constrained CTC decoding on hand-made probability matrices."""

from __future__ import annotations

import numpy as np

from edge.plates.ctc import decode_layout, greedy

ALPHA = "0123456789MW"


def frames(seq: list[dict[str, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(T, V) log-probs over ALPHA and blank log-probs from per-frame {char: p} dicts."""
    t = len(seq)
    p = np.full((t, len(ALPHA) + 1), 1e-6)
    for i, f in enumerate(seq):
        for ch, v in f.items():
            p[i, 0 if ch == "_" else ALPHA.index(ch) + 1] = v
    p /= p.sum(axis=1, keepdims=True)
    return np.log(p[:, 1:]), np.log(p[:, 0])


def mask(classes: list[str]) -> np.ndarray:
    m = np.full((len(classes), len(ALPHA)), -1e9)
    for k, cls in enumerate(classes):
        for ch in cls:
            m[k, ALPHA.index(ch)] = 0.0
    return m


def test_constrained_path_prefers_allowed_character() -> None:
    lp, bl = frames([{"5": 0.9}, {"_": 0.9}, {"W": 0.6, "M": 0.3}, {"_": 0.9}, {"1": 0.9}])
    r = decode_layout(lp, bl, mask(["0123456789", "M", "0123456789"]), ALPHA)
    assert r is not None
    assert r.text == "5M1"
    assert 0.25 < r.char_conf[1] < 0.35


def test_repeated_character_needs_a_blank_between() -> None:
    # "1 1" separated by a blank decodes as two ones; without a blank it is one
    lp, bl = frames([{"1": 0.9}, {"_": 0.9}, {"1": 0.9}])
    assert decode_layout(lp, bl, mask(["1", "1"]), ALPHA).text == "11"  # type: ignore[union-attr]
    lp2, bl2 = frames([{"1": 0.9}, {"1": 0.9}, {"_": 0.9}])
    two = decode_layout(lp2, bl2, mask(["1", "1"]), ALPHA)
    assert two is not None
    one = decode_layout(lp2, bl2, mask(["1"]), ALPHA)
    assert one is not None and one.logp > two.logp


def test_layout_longer_than_frames_is_impossible() -> None:
    lp, bl = frames([{"1": 0.9}, {"2": 0.9}])
    assert decode_layout(lp, bl, mask(["1", "2", "3"]), ALPHA) is None


def test_greedy_matches_ppocr_best_path() -> None:
    charset = ["blank", *ALPHA]
    lp, bl = frames([{"5": 0.9}, {"5": 0.9}, {"_": 0.9}, {"W": 0.9}])
    probs = np.exp(np.concatenate([bl[:, None], lp], axis=1))
    text, conf = greedy(probs, charset)
    assert text == "5W"
    assert len(conf) == 2
