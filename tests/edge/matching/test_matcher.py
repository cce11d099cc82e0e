"""Every reason code of the matcher, produced from real cache contents."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from edge.config.lanes import LaneConfig
from edge.config.policy import PolicyConfig
from edge.domain.model import (
    HotlistEntry,
    HotlistKind,
    Outcome,
    PassageReads,
    PlateRead,
    ReasonCode,
    SealRead,
)
from edge.domain.plates import default_grammars
from edge.matching.matcher import decide
from edge.store.cache import ManifestCache
from tests.factories import NOW, manifest, reads

GRAMMARS = default_grammars()
POLICY = PolicyConfig()


def run(cache: ManifestCache, r: PassageReads, policy: PolicyConfig = POLICY,
        lane: LaneConfig | None = None, site: str = "HUUNGHI"):  # type: ignore[no-untyped-def]
    return decide(r, cache, policy, GRAMMARS, site=site, lane=lane)


@pytest.fixture
def fresh(cache: ManifestCache) -> ManifestCache:
    cache.set_meta(signed_at=(NOW - timedelta(minutes=5)).isoformat())
    cache.upsert_manifests([manifest()])
    return cache


def test_cleared_truck_opens(fresh: ManifestCache) -> None:
    d = run(fresh, reads())
    assert d.outcome is Outcome.OPEN and d.reasons == ()
    assert d.declaration_no == "105123456780" and d.plate_match == "exact"


def test_folded_read_opens_and_says_so(fresh: ManifestCache) -> None:
    d = run(fresh, reads(tractor="51C1Z345"))
    assert d.outcome is Outcome.OPEN and d.plate_match == "folded"
    assert d.matched_plate == "51C12345"
    assert any("taken as 51C12345" in x for x in d.details)


def test_folded_match_can_be_switched_off(fresh: ManifestCache) -> None:
    d = run(fresh, reads(tractor="51C1Z345"), PolicyConfig(allow_folded_plate_match=False))
    assert d.reasons == (ReasonCode.NO_MANIFEST,)


def test_declaration_number_confirmed_by_the_plate_opens(fresh: ManifestCache) -> None:
    d = run(fresh, reads(tractor="51C12345", declaration_no="105123456780"))
    assert d.outcome is Outcome.OPEN and d.plate_match == "declaration"


Case = tuple[ReasonCode, Callable[[ManifestCache], PassageReads], dict[str, Any]]


def _seed(cache: ManifestCache, **over: Any) -> None:
    cache.upsert_manifests([manifest(version=9, **over)])


CASES: list[tuple[ReasonCode, Callable[[ManifestCache], Any], Outcome]] = [
    (ReasonCode.NO_MANIFEST, lambda c: reads(tractor="99C99999"), Outcome.REFER),
    (ReasonCode.NO_MANIFEST, lambda c: reads(declaration_no="999999999999"), Outcome.REFER),
    (ReasonCode.AMBIGUOUS_MANIFEST, lambda c: (
        c.upsert_manifests([manifest(declaration_no="105123456789")]), reads())[1], Outcome.REFER),
    (ReasonCode.NOT_RELEASED, lambda c: (_seed(c, status="cleared"), reads())[1], Outcome.REFER),
    (ReasonCode.NOT_RELEASED, lambda c: (_seed(c, status="held"), reads())[1], Outcome.REFER),
    (ReasonCode.MANIFEST_CANCELLED, lambda c: (_seed(c, status="cancelled"), reads())[1],
     Outcome.REFER),
    (ReasonCode.CHANNEL_REVIEW, lambda c: (_seed(c, channel="red"), reads())[1], Outcome.REFER),
    (ReasonCode.OUTSIDE_VALIDITY, lambda c: (_seed(
        c, valid_from=(NOW + timedelta(days=1)).isoformat(),
        valid_until=(NOW + timedelta(days=2)).isoformat()), reads())[1], Outcome.REFER),
    (ReasonCode.WRONG_GATE, lambda c: (_seed(c, gates=["LAOBAO"]), reads())[1], Outcome.REFER),
    (ReasonCode.WRONG_LANE, lambda c: (_seed(c, lanes=["in-2"]), reads())[1], Outcome.REFER),
    (ReasonCode.PLATE_NOT_READ, lambda c: reads(tractor=None), Outcome.REFER),
    (ReasonCode.PLATE_NOT_READ, lambda c: reads(tractor=None, declaration_no="105123456780"),
     Outcome.REFER),
    (ReasonCode.PLATE_MISMATCH, lambda c: reads(tractor="29C73804", declaration_no="105123456780"),
     Outcome.REFER),
    (ReasonCode.LOW_CONFIDENCE, lambda c: reads(confidence=0.55), Outcome.REFER),
    (ReasonCode.TRAILER_NOT_READ, lambda c: reads(trailer=None), Outcome.REFER),
    (ReasonCode.TRAILER_MISMATCH, lambda c: reads(trailer="51R99999"), Outcome.REFER),
    (ReasonCode.TRAILER_MISMATCH, lambda c: (_seed(c, trailer_plate=None), reads())[1],
     Outcome.REFER),
    (ReasonCode.CONTAINER_MISSING, lambda c: reads(containers=()), Outcome.REFER),
    (ReasonCode.CONTAINER_UNEXPECTED, lambda c: reads(containers=("MSKU1234565", "CSQU3054383")),
     Outcome.REFER),
    (ReasonCode.CONTAINER_CHECK_DIGIT, lambda c: reads(containers=("MSKU1234565", "CSQU3054388")),
     Outcome.REFER),
    (ReasonCode.SEAL_MISSING, lambda c: reads(seals=()), Outcome.REFER),
    (ReasonCode.SEAL_UNEXPECTED, lambda c: reads(seals=(("VNS1234567", "intact"),
                                                         ("VNS0000001", "intact"))), Outcome.REFER),
    (ReasonCode.SEAL_TAMPERED, lambda c: reads(seals=(("VNS1234567", "tampered"),)), Outcome.REFER),
    (ReasonCode.SEAL_TAMPERED, lambda c: reads(seals=(("VNS1234567", "opened"),)), Outcome.REFER),
    (ReasonCode.SEAL_STATUS_UNKNOWN, lambda c: (_seed(c, seals=[
        {"seal_id": "ES00012345", "type": "e-seal"}]), reads(seals=(("ES00012345", "unknown"),)))[1],
     Outcome.REFER),
    (ReasonCode.SEAL_MALFORMED, lambda c: reads(seals=()).model_copy(update={"seals": (
        SealRead(lane="in-1", reader="bolt-1", seal_id="??", malformed=True),)}), Outcome.REFER),
    (ReasonCode.HOTLIST_PLATE, lambda c: (c.upsert_hotlist([HotlistEntry(
        kind=HotlistKind.PLATE, value="51C-123.45", reason="alert")], NOW), reads())[1],
     Outcome.HOLD),
    (ReasonCode.HOTLIST_PLATE, lambda c: (c.upsert_hotlist([HotlistEntry(
        kind=HotlistKind.PLATE, value="99C99999", reason="watch", action="refer")], NOW),
        reads(tractor="99C99999"))[1], Outcome.REFER),
    (ReasonCode.HOTLIST_CONTAINER, lambda c: (c.upsert_hotlist([HotlistEntry(
        kind=HotlistKind.CONTAINER, value="MSKU1234565", reason="x")], NOW), reads())[1],
     Outcome.HOLD),
    (ReasonCode.HOTLIST_SEAL, lambda c: (c.upsert_hotlist([HotlistEntry(
        kind=HotlistKind.SEAL, value="VNS1234567", reason="stolen batch")], NOW), reads())[1],
     Outcome.HOLD),
    (ReasonCode.HOTLIST_TRADER, lambda c: (c.upsert_hotlist([HotlistEntry(
        kind=HotlistKind.TRADER, value="0301234567", reason="audit", action="refer")], NOW),
        reads())[1], Outcome.REFER),
    (ReasonCode.CACHE_STALE, lambda c: (c.set_meta(
        signed_at=(NOW - timedelta(hours=7)).isoformat()), reads())[1], Outcome.REFER),
    (ReasonCode.TAILGATING, lambda c: reads(tailgating=True), Outcome.REFER),
]


@pytest.mark.parametrize(("reason", "setup", "outcome"), CASES,
                         ids=[f"{c[0].value}-{i}" for i, c in enumerate(CASES)])
def test_reason(fresh: ManifestCache, reason: ReasonCode,
                setup: Callable[[ManifestCache], PassageReads], outcome: Outcome) -> None:
    decision = run(fresh, setup(fresh))
    assert reason in decision.reasons, decision.details
    assert decision.outcome is outcome
    assert any(d.startswith(reason.value) for d in decision.details)


def test_not_aeo_lane(fresh: ManifestCache) -> None:
    lane = LaneConfig(id="in-1", direction="inbound", aeo_priority=True)
    d = run(fresh, reads(), lane=lane)
    assert d.reasons == (ReasonCode.NOT_AEO_LANE,)
    _seed(fresh, trader={"tax_code": "0301234567", "name": "AEO Co", "aeo": True})
    d = run(fresh, reads(), lane=lane)
    assert d.outcome is Outcome.OPEN and d.priority


def test_cache_never_signed_is_stale(cache: ManifestCache) -> None:
    cache.upsert_manifests([manifest()])
    assert run(cache, reads()).reasons == (ReasonCode.CACHE_STALE,)


def test_every_reason_code_is_covered() -> None:
    # CLOCK_SKEW is the lane's, not the matcher's: gate-controller refused the open token
    # (tests/reliability/test_disk_and_clock.py, tests/edge/store/test_records.py)
    covered = {c[0] for c in CASES} | {ReasonCode.NOT_AEO_LANE, ReasonCode.CLOCK_SKEW}
    assert covered == set(ReasonCode)


def test_all_reasons_are_reported_together(fresh: ManifestCache) -> None:
    _seed(fresh, status="cleared", channel="red")
    d = run(fresh, reads(trailer="51R99999", seals=(("VNS1234567", "tampered"),), containers=()))
    assert set(d.reasons) >= {ReasonCode.NOT_RELEASED, ReasonCode.CHANNEL_REVIEW,
                              ReasonCode.TRAILER_MISMATCH, ReasonCode.SEAL_TAMPERED,
                              ReasonCode.CONTAINER_MISSING}


def test_several_trips_of_one_tractor_pick_the_valid_released_one(fresh: ManifestCache) -> None:
    fresh.upsert_manifests([manifest(declaration_no="105123456799", status="cleared",
                                     containers=["CSQU3054383"], seals=[])])
    d = run(fresh, reads())
    assert d.outcome is Outcome.OPEN and d.declaration_no == "105123456780"


def test_candidates_beyond_the_voted_text_are_tried(fresh: ManifestCache) -> None:
    r = reads()
    odd = PlateRead(lane="in-1", text="51C12846", confidence=0.9,
                    candidates=[{"text": "51C12345", "confidence": 0.85}])  # type: ignore[list-item]
    d = run(fresh, r.model_copy(update={"tractor": (odd,)}))
    # Found, but only through a lower-ranked reading: an officer confirms.
    assert d.declaration_no == "105123456780" and d.outcome is Outcome.REFER
    assert d.reasons == (ReasonCode.LOW_CONFIDENCE,)


def test_bolt_seal_without_status_is_fine_but_eseal_is_not(fresh: ManifestCache) -> None:
    assert run(fresh, reads(seals=(("VNS1234567", "unknown"),))).outcome is Outcome.OPEN


def test_two_confident_different_plates_in_one_passage_never_open(fresh: ManifestCache) -> None:
    r = reads()
    other = PlateRead(lane="in-1", text="29C99999", confidence=0.95)
    d = run(fresh, r.model_copy(update={"tractor": (*r.tractor, other)}))
    assert d.outcome is Outcome.REFER and ReasonCode.PLATE_MISMATCH in d.reasons


def test_declaration_path_does_not_accept_a_candidate_only_plate(fresh: ManifestCache) -> None:
    odd = PlateRead(lane="in-1", text="29C99999", confidence=0.97,
                    candidates=[{"text": "51C12345", "confidence": 0.01}])  # type: ignore[list-item]
    r = reads(declaration_no="105123456780")
    d = run(fresh, r.model_copy(update={"tractor": (odd,)}))
    assert d.outcome is Outcome.REFER and d.reasons == (ReasonCode.LOW_CONFIDENCE,)


def test_trailer_only_among_candidates_is_low_confidence(fresh: ManifestCache) -> None:
    r = reads()
    trailer = PlateRead(lane="in-1", role="trailer", text="29R99999", confidence=0.99,
                        candidates=[{"text": "51R01234", "confidence": 0.01}])  # type: ignore[list-item]
    d = run(fresh, r.model_copy(update={"trailer": (trailer,)}))
    assert d.outcome is Outcome.REFER and d.reasons == (ReasonCode.LOW_CONFIDENCE,)


def test_a_valid_plate_is_never_folded_into_another(fresh: ManifestCache) -> None:
    _seed(fresh, tractor_plate="51LD12345")
    assert run(fresh, reads(tractor="51L012345")).reasons == (ReasonCode.NO_MANIFEST,)


def test_cache_signed_in_the_future_is_distrusted(fresh: ManifestCache) -> None:
    fresh.set_meta(signed_at=(NOW + timedelta(days=30)).isoformat())
    d = run(fresh, reads())
    assert d.reasons == (ReasonCode.CACHE_STALE,) and "future" in d.details[0]


def test_container_one_lookalike_from_declared_is_taken_with_a_note(fresh: ManifestCache) -> None:
    # MSKU1234S65 -> class fix S->5 is forced (repair); MSKU1284565 (3 read as 8) fails the
    # check digit and is one look-alike from the declared number.
    d = run(fresh, reads(containers=("MSKU1284565",)))
    assert d.outcome is Outcome.OPEN and any("taken as declared MSKU1234565" in x for x in d.details)
    d = run(fresh, reads(containers=("MSKU1134565",)))  # 1 for 2 is no look-alike
    assert ReasonCode.CONTAINER_CHECK_DIGIT in d.reasons


def test_hotlisted_plate_misread_still_stops_the_truck(fresh: ManifestCache) -> None:
    fresh.upsert_hotlist([HotlistEntry(kind=HotlistKind.PLATE, value="29C88888", reason="AS-7")],
                         NOW)
    d = run(fresh, reads(tractor="29C8B888"))  # B cannot be a serial digit: certainly 8
    assert d.outcome is Outcome.HOLD and ReasonCode.HOTLIST_PLATE in d.reasons
    odd = PlateRead(lane="in-1", text="29C66666", confidence=0.9,
                    candidates=[{"text": "29C88888", "confidence": 0.2}])  # type: ignore[list-item]
    d = run(fresh, reads().model_copy(update={"tractor": (odd,)}))
    assert d.outcome is Outcome.REFER and ReasonCode.HOTLIST_PLATE in d.reasons


def test_shared_transit_mrn_is_ambiguous(fresh: ManifestCache) -> None:
    mrn = "26VN000012345678T2"
    fresh.upsert_manifests([manifest(version=5, transit_mrn=mrn),
                            manifest(declaration_no="105123456781", transit_mrn=mrn,
                                     tractor_plate="29C73804")])
    d = run(fresh, reads(declaration_no=mrn))
    assert ReasonCode.AMBIGUOUS_MANIFEST in d.reasons and d.outcome is Outcome.REFER
