"""Property: whatever the reads, the matcher never raises and opens only a fully matching truck."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from edge.config.policy import PolicyConfig
from edge.domain.model import (
    ContainerRead,
    HotlistEntry,
    HotlistKind,
    ManifestStatus,
    Outcome,
    PassageReads,
    PlateRead,
    SealRead,
)
from edge.domain.plates import default_grammars, folded_match_allowed
from edge.matching.matcher import decide
from edge.store.cache import ManifestCache
from tests.factories import NOW, manifest

GRAMMARS = default_grammars()
PLATES = ["51C12345", "51C1Z345", "29C73804", "5IC12345", "99C99999", "20C11122", "桂A12345", ""]
TRAILERS = ["51R01234", "51R0I234", "29R04567", "51R99999"]
CONTAINERS = ["MSKU1234565", "MSKU1Z34565", "TGHU7654320", "CSQU3054388", "CSQU3054383"]
SEALS = ["VNS1234567", "ES00012345", "VNS0000001"]


def _cache(path: Path) -> ManifestCache:
    cache = ManifestCache.open(path)
    cache.set_meta(signed_at=(NOW - timedelta(minutes=1)).isoformat())
    cache.upsert_manifests([
        manifest(),
        manifest(declaration_no="105123456781", tractor_plate="29C73804",
                 trailer_plate="29R04567", containers=["TGHU7654320"],
                 seals=[{"seal_id": "ES00012345", "type": "e-seal"}], status="cleared"),
        manifest(declaration_no="105123456784", tractor_plate="20C11122", trailer_plate=None,
                 containers=[], seals=[]),
    ])
    cache.upsert_hotlist([HotlistEntry(kind=HotlistKind.PLATE, value="20C11122", reason="x")], NOW)
    return cache


def _reads(tractor: str, conf: float, trailer: list[str], containers: list[str],
           seals: list[tuple[str, str]], tail: bool) -> PassageReads:
    return PassageReads(
        lane="in-1", at=NOW, tailgating=tail,
        tractor=[PlateRead(lane="in-1", text=tractor, confidence=conf)] if tractor else [],
        trailer=[PlateRead(lane="in-1", role="trailer", text=t, confidence=0.9) for t in trailer],
        containers=[ContainerRead.model_validate({"lane": "in-1", "text": c}) for c in containers],
        seals=[SealRead(lane="in-1", reader="r", seal_id=s, status=status) for s, status in seals],
    )


# Anything at all, mostly wrong...
random_reads = st.builds(
    _reads,
    st.sampled_from(PLATES), st.floats(0.0, 1.0), st.lists(st.sampled_from(TRAILERS), max_size=2),
    st.lists(st.sampled_from(CONTAINERS), max_size=3),
    st.lists(st.tuples(st.sampled_from(SEALS),
                       st.sampled_from(["intact", "intact", "opened", "tampered", "unknown"])),
             max_size=3),
    st.booleans(),
)
# ...and the cleared truck with zero or more small things wrong, so that "open" is exercised.
near_miss_reads = st.builds(
    _reads,
    st.sampled_from(["51C12345", "51C12345", "51C1Z345", "5IC12345", "51C12346"]),
    st.floats(0.6, 1.0),
    st.sampled_from([["51R01234"], ["51R01234"], ["51R0I234"], [], ["51R99999"]]),
    st.sampled_from([["MSKU1234565"], ["MSKU1234565"], ["MSKU1Z34565"], [],
                     ["MSKU1234565", "CSQU3054383"], ["CSQU3054388"]]),
    st.sampled_from([[("VNS1234567", "intact")], [("VNS1234567", "intact")],
                     [("VNS1234567", "unknown")], [("VNS1234567", "tampered")], [],
                     [("VNS1234567", "intact"), ("VNS0000001", "intact")]]),
    st.sampled_from([False, False, False, True]),
)
reads_strategy = st.one_of(random_reads, near_miss_reads, near_miss_reads, near_miss_reads)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManifestCache]:
    cache = _cache(tmp_path_factory.mktemp("matcher") / "cache.db")
    yield cache
    cache.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reads=reads_strategy)
def test_open_only_when_everything_matches(seeded: ManifestCache, reads: PassageReads) -> None:
    cache = seeded
    policy = PolicyConfig()
    decision = decide(reads, cache, policy, GRAMMARS, site="HUUNGHI")
    event(decision.outcome.value)
    if decision.outcome is not Outcome.OPEN:
        assert decision.reasons, "refer/hold must say why"
        return
    assert decision.reasons == ()
    m = cache.by_declaration(decision.declaration_no or "")
    assert m is not None and m.status is ManifestStatus.RELEASED
    assert not reads.tailgating
    best = max(reads.tractor, key=lambda r: r.confidence)
    assert best.confidence >= policy.min_plate_confidence
    assert folded_match_allowed(best.text, m.tractor_plate, GRAMMARS)
    if m.trailer_plate:
        assert any(folded_match_allowed(t.text, m.trailer_plate, GRAMMARS) for t in reads.trailer)
    assert {c.text for c in reads.containers if c.check_digit_ok} == set(m.containers)
    assert all(c.check_digit_ok for c in reads.containers)
    read_seals = {s.seal_id: s.status for s in reads.seals}
    assert set(read_seals) == {s.seal_id for s in m.seals}
    assert all(status in ("intact", "unknown") for status in read_seals.values())
    assert not cache.hotlist_hits(HotlistKind.PLATE, [best.text, m.tractor_plate], NOW)
