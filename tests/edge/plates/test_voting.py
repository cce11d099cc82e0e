"""Multi-frame voting: final after N agreeing frames or one confident read; once per vehicle."""

from __future__ import annotations

from edge.plates.voting import Observation, PlateVoter


def obs(text: str, conf: float, t: float) -> Observation:
    return Observation(text=text, confidence=conf, time=t)


def test_two_agreeing_frames_make_a_read_final() -> None:
    v = PlateVoter(frames=2, confidence=0.95)
    assert v.add(obs("51C12345", 0.8, 0.0)) is None
    final = v.add(obs("51C12345", 0.7, 0.2))
    assert final is not None
    assert final.text == "51C12345"
    assert final.frames == 2
    # further frames of the same truck do not emit it again
    assert v.add(obs("51C12345", 0.9, 0.4)) is None


def test_one_confident_frame_is_enough() -> None:
    v = PlateVoter(frames=3, confidence=0.9)
    final = v.add(obs("29C73804", 0.97, 0.0))
    assert final is not None and final.frames == 1


def test_misread_frame_is_outvoted_and_kept_as_candidate() -> None:
    v = PlateVoter(frames=3, confidence=0.99)
    assert v.add(obs("51C12345", 0.8, 0.0)) is None
    assert v.add(obs("51C12346", 0.6, 0.1)) is None  # one char apart: same vehicle
    final = v.add(obs("51C12345", 0.8, 0.2)) or v.add(obs("51C12345", 0.8, 0.3))
    assert final is not None
    assert final.text == "51C12345"
    assert [c[0] for c in final.candidates] == ["51C12345", "51C12346"]


def test_different_vehicles_and_expiry() -> None:
    v = PlateVoter(frames=2, confidence=0.99, window_s=2.0)
    v.add(obs("51C12345", 0.8, 0.0))
    v.add(obs("30H99887", 0.8, 0.1))  # another truck: its own cluster
    assert v.add(obs("30H99887", 0.8, 0.2)) is not None
    # the first truck's single read expired: a read 5 s later starts afresh
    assert v.add(obs("51C12345", 0.8, 5.0)) is None


def test_low_confidence_reads_are_ignored() -> None:
    v = PlateVoter(frames=2, confidence=0.9, min_confidence=0.5)
    assert v.add(obs("51C12345", 0.2, 0.0)) is None
    assert v.add(obs("51C12345", 0.2, 0.1)) is None


def test_settled_track_skips_ocr_but_rereads_every_nth_frame() -> None:
    from edge.plates.voting import SettledTracks

    tracks = SettledTracks(reread_every=3, max_gap_s=1.0)
    box = (100, 100, 200, 150)
    assert not tracks.skip("plate", box, 0.0)  # nothing settled yet: read it
    tracks.settle("plate", box, 0.0)
    # the truck drives on: the box moves a little each frame and is followed
    moved = [(100 + 8 * i, 100 + 4 * i, 200 + 10 * i, 150 + 5 * i) for i in range(1, 7)]
    decisions = [tracks.skip("plate", b, 0.1 * i) for i, b in enumerate(moved, 1)]
    assert decisions == [True, True, False, True, True, False]  # every 3rd frame re-read
    assert not tracks.skip("container_number", moved[-1], 0.7)  # another kind: read
    assert not tracks.skip("plate", (900, 500, 1000, 550), 0.7)  # another vehicle: read
    assert not tracks.skip("plate", moved[-1], 2.0)  # not seen for > max_gap_s: forgotten


def test_settled_tracks_off_reads_every_frame() -> None:
    from edge.plates.voting import SettledTracks

    tracks = SettledTracks(reread_every=0)
    tracks.settle("plate", (0, 0, 10, 10), 0.0)
    assert not tracks.skip("plate", (0, 0, 10, 10), 0.1)


def test_voter_says_which_text_is_settled() -> None:
    v = PlateVoter(frames=2, confidence=0.99)
    v.add(obs("51C12345", 0.8, 0.0))
    assert not v.settled("51C12345")
    v.add(obs("51C12345", 0.8, 0.1))
    assert v.settled("51C12345") and not v.settled("51C12346")


def test_confidence_one_turns_the_single_frame_shortcut_off() -> None:
    """The reader config's default: even a 1.0 read needs a second agreeing frame.

    Single frames at confidence 1.0 dropped or added a character of a plate (51C1234 for
    51C12345, 29R104567 for 29R04567) in the simulated lanes; a second frame agreeing on the
    same text is what makes a read final.
    """
    voter = PlateVoter(frames=2, confidence=1.0)
    assert voter.add(obs("29R104567", 1.0, 0.0)) is None
    assert voter.add(obs("29R04567", 1.0, 0.2)) is None
    final = voter.add(obs("29R04567", 0.98, 0.4))
    assert final is not None and final.text == "29R04567" and final.frames == 2


def test_a_read_with_an_added_character_joins_the_trucks_vote() -> None:
    """29R704567 / 29R104567 (the plate frame's edge read as a digit) after 29R04567 was final.

    One edit apart, insertions included, is the same vehicle: in a cluster of its own, two
    frames agreeing on the mistake made a second final read (issue 6, the simulated rear
    camera: 2 of 10 trucks).
    """
    v = PlateVoter(frames=2, confidence=1.0, sure=0.8)
    v.add(obs("29R04567", 0.97, 0.0))
    assert v.add(obs("29R04567", 0.95, 0.2)) is not None
    assert v.add(obs("29R704567", 0.79, 0.4)) is None
    assert v.add(obs("29R704567", 0.79, 0.6)) is None
    assert v.add(obs("29R104567", 0.79, 0.8)) is None
    assert v.add(obs("29R0456", 0.9, 1.0)) is None  # a dropped digit, too


def test_a_final_read_carries_its_best_frames_confidence() -> None:
    """Agreeing frames repeat one reader's mistake; they do not make an unsure read sure."""
    v = PlateVoter(frames=2, confidence=1.0, sure=0.0)
    v.add(obs("51C12345", 0.7, 0.0))
    final = v.add(obs("51C12345", 0.6, 0.2))
    assert final is not None and final.confidence == 0.7


def test_an_unsure_text_waits_for_more_frames_and_a_sure_frame_upgrades_it() -> None:
    v = PlateVoter(frames=2, confidence=1.0, sure=0.8, unsure_frames=4)
    # two unsure frames agreeing on a mistake are not final yet...
    assert v.add(obs("29R104567", 0.79, 0.0)) is None
    assert v.add(obs("29R104567", 0.78, 0.2)) is None
    # ...so the right text, sure in two frames, is final first
    assert v.add(obs("29R04567", 0.97, 0.4)) is None
    final = v.add(obs("29R04567", 0.96, 0.6))
    assert final is not None and (final.text, final.confidence) == ("29R04567", 0.97)

    w = PlateVoter(frames=2, confidence=1.0, sure=0.8, unsure_frames=4)
    results = [w.add(obs("51C12345", 0.75, 0.1 * i)) for i in range(4)]
    assert results[:3] == [None, None, None]
    unsure = results[3]
    assert unsure is not None and unsure.confidence == 0.75 and unsure.frames == 4
    assert w.add(obs("51C12345", 0.7, 0.5)) is None       # still unsure: not emitted again
    sure = w.add(obs("51C12345", 0.92, 0.6))
    assert sure is not None and sure.confidence == 0.92  # made sure: emitted again, once
    assert w.add(obs("51C12345", 0.95, 0.7)) is None
