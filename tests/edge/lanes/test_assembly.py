from __future__ import annotations

from datetime import timedelta

import pytest

from edge.domain.model import ContainerRead, PlateRead, SealRead
from edge.lanes.assembly import AssemblyTiming, LaneAssembler
from tests.factories import NOW

T = AssemblyTiming(pre_roll=timedelta(seconds=8), settle=timedelta(milliseconds=300),
                   deadline=timedelta(seconds=6), trailer_wait=timedelta(seconds=3))


def s(sec: float):  # type: ignore[no-untyped-def]
    return NOW + timedelta(seconds=sec)


def plate(text: str, role: str = "tractor") -> PlateRead:
    return PlateRead(lane="in-1", role=role, text=text, confidence=0.95)  # type: ignore[arg-type]


def seal(seal_id: str, status: str = "intact") -> SealRead:
    return SealRead(lane="in-1", reader="eseal-1", seal_id=seal_id, status=status)  # type: ignore[arg-type]


def test_reads_before_the_loop_join_the_passage_within_pre_roll() -> None:
    a = LaneAssembler("in-1", T)
    a.add(plate("99C99999"), s(-20))  # another truck, long gone
    a.add(plate("51C12345"), s(-2))
    session = a.vehicle_present(s(0), event_id="ev-1")
    assert [p.text for p in session.tractor] == ["51C12345"]
    assert session.controller_event == "ev-1"


def test_due_after_settle_once_tractor_and_trailer_are_read() -> None:
    a = LaneAssembler("in-1", T)
    a.vehicle_present(s(0))
    assert a.due(s(0.5)) is None  # nothing read yet
    a.add(plate("51C12345"), s(0.6))
    assert a.due(s(0.8)) is None  # waiting for the trailer camera
    a.add(plate("51R01234", "trailer"), s(1.0))
    assert a.due(s(1.2)) is None  # settling
    session = a.due(s(1.31))
    assert session is not None and [p.text for p in session.trailer] == ["51R01234"]


def test_without_trailer_decides_after_trailer_wait_and_at_deadline_with_nothing() -> None:
    a = LaneAssembler("in-1", T)
    a.vehicle_present(s(0))
    a.add(plate("15C56789"), s(0.2))
    assert a.due(s(2.9)) is None and a.due(s(3.0)) is not None
    b = LaneAssembler("in-1", T)
    b.vehicle_present(s(0))
    assert b.due(s(5.9)) is None
    late = b.due(s(6.0))
    assert late is not None and late.reads(s(6)).tractor == ()


def test_seal_duplicates_collapse_and_keep_the_worst_status() -> None:
    a = LaneAssembler("in-1", T)
    session = a.vehicle_present(s(0))
    for status in ("intact", "tampered", "intact"):
        a.add(seal("ES00012345", status), s(0.1))
    [only] = session.seals
    assert only.count == 3 and only.status == "tampered"
    a.add(ContainerRead.model_validate({"lane": "in-1", "text": "MSKU1234565"}), s(0.2))
    a.add(ContainerRead.model_validate({"lane": "in-1", "text": "MSKU1234565"}), s(0.3))
    assert len(session.containers) == 1


def test_after_decision_plates_wait_for_the_next_truck_but_seals_stay() -> None:
    a = LaneAssembler("in-1", T)
    first = a.vehicle_present(s(0))
    a.add(plate("51C12345"), s(0.1))
    a.decided(first, s(1))
    a.add(plate("29C73804"), s(2))  # the next truck approaching
    a.add(seal("VNS1234567"), s(2))  # still the first truck's trailer
    assert [p.text for p in first.tractor] == ["51C12345"] and len(first.seals) == 1
    assert a.cleared(s(5)) is first and first.cleared_at == s(5)
    second = a.vehicle_present(s(6))
    assert [p.text for p in second.tractor] == ["29C73804"] and second.id != first.id


def test_loop_retrigger_before_decision_keeps_one_passage_and_tailgating_is_flagged() -> None:
    a = LaneAssembler("in-1", T)
    first = a.vehicle_present(s(0))
    assert a.vehicle_present(s(0.5)) is first
    a.tailgating(s(1))
    assert first.reads(s(1)).tailgating


def test_read_for_another_lane_is_refused() -> None:
    with pytest.raises(ValueError, match="lane 'in-2'"):
        LaneAssembler("in-1", T).add(PlateRead(lane="in-2", text="51C12345", confidence=0.9), s(0))


def test_rereads_of_the_decided_truck_never_reach_the_next_one() -> None:
    a = LaneAssembler("in-1", T)
    first = a.vehicle_present(s(0))
    a.add(plate("51C12345"), s(0.1))
    a.add(ContainerRead.model_validate({"lane": "in-1", "text": "MSKU1234565"}), s(0.2))
    a.decided(first, s(1))
    a.add(plate("51C12345"), s(2))   # camera re-reads the truck under the barrier
    a.add(plate("51C1Z345"), s(2.5))  # ...and misreads it once
    a.add(ContainerRead.model_validate({"lane": "in-1", "text": "MSKU1234565"}), s(2.6))
    # the re-read and the misread (Z for 2 folds to the same text) are the same plate
    assert [r.text for r in first.tractor] == ["51C12345"]
    a.cleared(s(4))
    second = a.vehicle_present(s(5))
    assert second.tractor == [] and second.containers == []


def test_a_read_with_a_dropped_character_is_not_a_second_plate() -> None:
    """51C1234 from the camera that also read 51C12345: one plate (no PLATE_MISMATCH)."""
    from edge.lanes.assembly import dropped_one

    asm = LaneAssembler("in-1")
    session = asm.vehicle_present(NOW, "E1")
    short = PlateRead(lane="in-1", camera="cam-front", text="51C1234", confidence=1.0)
    full = PlateRead(lane="in-1", camera="cam-front", text="51C12345", confidence=0.97)
    asm.add(short, NOW)
    asm.add(full, NOW)                         # the full plate replaces the short read
    asm.add(short, NOW)                        # and a later short read is not added again
    assert [r.text for r in session.tractor] == ["51C12345"]
    other_camera = PlateRead(lane="in-1", camera="cam-side", text="51C1234", confidence=1.0)
    asm.add(other_camera, NOW)                 # another camera's read is kept as it is
    assert [r.text for r in session.tractor] == ["51C12345", "51C1234"]
    assert dropped_one("51C1234", "51C12345") and dropped_one("5C12345", "51C12345")
    assert not dropped_one("51C12346", "51C12345") and not dropped_one("51C123", "51C12345")


def test_a_longer_unsure_read_does_not_replace_a_sure_one() -> None:
    """29R704567 (the plate frame's edge read as a digit) after a sure 29R04567: kept out.

    A dropped character is the common failure, so the longer read usually wins; but when only
    the shorter read is sure, the longer one is the reader's invention, and replacing the sure
    read turned a cleared truck into TRAILER_MISMATCH in the simulated lane (issue 6).
    """
    asm = LaneAssembler("in-1", sure=0.80)
    session = asm.vehicle_present(NOW, "E1")
    right = PlateRead(lane="in-1", camera="cam-rear", role="trailer", text="29R04567",
                      confidence=0.97)
    added = PlateRead(lane="in-1", camera="cam-rear", role="trailer", text="29R704567",
                      confidence=0.79)
    asm.add(right, NOW)
    asm.add(added, NOW)
    assert [(r.text, r.confidence) for r in session.trailer] == [("29R04567", 0.97)]
    # a surer read of the same text replaces the camera's earlier unsure one
    session2 = LaneAssembler("in-1", sure=0.80).vehicle_present(NOW, "E2")
    session2.add(right.model_copy(update={"confidence": 0.79}), NOW)
    session2.add(right, NOW)
    session2.add(right.model_copy(update={"confidence": 0.85}), NOW)
    assert [(r.text, r.confidence) for r in session2.trailer] == [("29R04567", 0.97)]
