"""SealWindow: duplicates collapse with a count, reads attach to the passage by time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge.domain.model import SealRead, SealStatus, SealType
from edge.seals.window import SealWindow

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def read(seal: str, at: float, status: SealStatus = SealStatus.INTACT, **over: object) -> SealRead:
    return SealRead.model_validate({"lane": "in-1", "reader": "es-1", "seal_id": seal,
                                    "kind": SealType.ESEAL, "status": status,
                                    "read_at": T0 + timedelta(seconds=at), **over})


def test_duplicates_collapse_with_count_and_first_time() -> None:
    w = SealWindow("in-1", window_s=30)
    for i in range(5):
        w.add(read("ABCD1234", at=i, battery=90 - i))
    w.add(read("WXYZ9876", at=2))
    reads = w.current(T0 + timedelta(seconds=5))
    assert [(r.seal_id, r.count) for r in reads] == [("ABCD1234", 5), ("WXYZ9876", 1)]
    assert reads[0].read_at == T0 and reads[0].battery == 86


def test_worst_status_and_malformed_win() -> None:
    w = SealWindow("in-1", window_s=30)
    w.add(read("ABCD1234", 0, SealStatus.INTACT))
    w.add(read("ABCD1234", 1, SealStatus.TAMPERED))
    w.add(read("ABCD1234", 2, SealStatus.INTACT, malformed=True))
    [r] = w.current()
    assert (r.status, r.malformed, r.count) == (SealStatus.TAMPERED, True, 3)


def test_unknown_status_outranks_intact() -> None:
    w = SealWindow("in-1", window_s=30)
    w.add(read("ABCD1234", 0, SealStatus.UNKNOWN, malformed=True))
    w.add(read("ABCD1234", 1, SealStatus.INTACT))
    [r] = w.current()
    assert (r.status, r.malformed, r.count) == (SealStatus.UNKNOWN, True, 2)


def test_bolt_and_eseal_with_same_id_stay_apart() -> None:
    w = SealWindow("in-1", window_s=30)
    w.add(read("ABCD1234", 0))
    w.add(read("ABCD1234", 1, SealStatus.UNKNOWN, kind=SealType.BOLT))
    assert len(w.current()) == 2


def test_reads_before_the_passage_within_window_attach() -> None:
    w = SealWindow("in-1", window_s=10)
    w.add(read("OLD00001", at=0))  # 20 s before the truck: another truck's
    w.add(read("NEAR0001", at=15))  # 5 s before the passage: this truck, seen early
    w.begin_passage("P1", T0 + timedelta(seconds=20))
    w.add(read("LATE0001", at=25))
    assert [r.seal_id for r in w.current()] == ["NEAR0001", "LATE0001"]


def test_reads_without_passage_expire() -> None:
    w = SealWindow("in-1", window_s=10)
    w.add(read("ABCD1234", at=0))
    assert w.current(T0 + timedelta(seconds=11)) == ()


def test_a_long_passage_keeps_its_reads() -> None:
    w = SealWindow("in-1", window_s=10)
    w.begin_passage("P1", T0)
    w.add(read("ABCD1234", at=1))
    assert [r.seal_id for r in w.current(T0 + timedelta(minutes=5))] == ["ABCD1234"]


def test_departing_truck_does_not_lend_its_seal_to_the_next() -> None:
    w = SealWindow("in-1", window_s=10)
    w.begin_passage("P1", T0)
    w.add(read("ABCD1234", at=1))
    done = w.end_passage(T0 + timedelta(seconds=3))
    assert [r.seal_id for r in done] == ["ABCD1234"]
    # Still in the reader's field as it leaves: swallowed into the finished passage.
    assert w.add(read("ABCD1234", at=5)) is None
    w.begin_passage("P2", T0 + timedelta(seconds=6))
    w.add(read("ABCD1234", at=7))
    w.add(read("NEXT0001", at=8))
    assert [r.seal_id for r in w.current()] == ["NEXT0001"]
    # Long after, the same seal id is a new sighting again (a truck coming back).
    w.end_passage(T0 + timedelta(seconds=9))
    assert w.add(read("ABCD1234", at=30)) is not None
