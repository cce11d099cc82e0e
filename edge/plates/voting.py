"""Multi-frame voting: one final read per vehicle from many per-frame reads (DESIGN-NOTES §10).

A camera sees a truck in many frames; single frames misread under glare or blur. Reads are
clustered per vehicle — same confusable-folded text, or one edit apart, within a time window —
and a cluster's text is final after `frames` agreeing reads of which one is sure (at least
`sure`), after `unsure_frames` agreeing reads when none is, or at once when one read reaches
`confidence`. A final text carries its best frame's confidence: frames of one camera repeat
one reader's mistakes, so their agreement is no independent evidence. The best-scoring crop is
kept as evidence. A final text is emitted once per cluster, again only if more frames change it
or make an unsure text sure.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from edge.domain.plates import dropped_one, fold_confusables

log = logging.getLogger(__name__)


@dataclass
class Observation:
    """One frame's read of one plate (or container number)."""

    text: str
    confidence: float
    time: float
    grammar: str | None = None
    bbox: tuple[int, int, int, int] | None = None
    crop: np.ndarray | None = None


@dataclass
class VoteResult:
    """A final read: the winning text, its support and the evidence crop."""

    text: str
    confidence: float
    frames: int
    grammar: str | None
    bbox: tuple[int, int, int, int] | None
    crop: np.ndarray | None
    candidates: list[tuple[str, float]]
    first_seen: float
    decided_at: float


@dataclass
class _Cluster:
    obs: list[Observation] = field(default_factory=list)
    emitted: str | None = None
    emitted_confidence: float = 0.0

    @property
    def last(self) -> float:
        return self.obs[-1].time


def _near(a: str, b: str) -> bool:
    """Same vehicle? Equal after folding confusables, or one edit apart.

    One edit is a substitution, or one character dropped or added: a frame cuts a plate's
    last digit off, or reads the plate frame's edge as a ``1`` (``29R104567`` for
    ``29R04567``). Such a read must meet the truck's other reads in one vote, or it becomes a
    vehicle of its own, final on two frames that agree only on the same mistake.
    """
    fa, fb = fold_confusables(a), fold_confusables(b)
    if fa == fb:
        return True
    if len(fa) == len(fb):
        return sum(x != y for x, y in zip(fa, fb, strict=True)) <= 1
    return dropped_one(a, b) or dropped_one(b, a)


class PlateVoter:
    """Clusters reads of one camera and decides when a text is final."""

    def __init__(self, *, frames: int = 2, confidence: float = 0.9, window_s: float = 4.0,
                 min_confidence: float = 0.3, sure: float = 0.0,
                 unsure_frames: int | None = None) -> None:
        self.frames = frames
        self.sure = sure
        self.unsure_frames = max(frames, unsure_frames if unsure_frames is not None else frames)
        self.confidence = confidence
        self.window_s = window_s
        self.min_confidence = min_confidence
        self._clusters: list[_Cluster] = []

    def _expire(self, now: float) -> None:
        self._clusters = [c for c in self._clusters if now - c.last <= self.window_s]

    def add(self, obs: Observation) -> VoteResult | None:
        """Add a read; returns the final read when this observation makes one final."""
        self._expire(obs.time)
        if not obs.text or obs.confidence < self.min_confidence:
            return None
        cluster = next((c for c in self._clusters
                        if any(_near(o.text, obs.text) for o in c.obs[-5:])), None)
        if cluster is None:
            cluster = _Cluster()
            self._clusters.append(cluster)
        cluster.obs.append(obs)
        votes: dict[str, list[Observation]] = defaultdict(list)
        for o in cluster.obs:
            votes[o.text].append(o)
        # weight: count first, then summed confidence (a clear frame outweighs a blurred one)
        ranked = sorted(votes.items(),
                        key=lambda kv: (len(kv[1]), sum(o.confidence for o in kv[1])),
                        reverse=True)
        text, support = ranked[0]
        best = max(support, key=lambda o: o.confidence)
        # confidence 1.0 means "no single-frame shortcut" (a truncated read can score 1.0 too)
        alone = self.confidence < 1.0 and best.confidence >= self.confidence
        sure = best.confidence >= self.sure
        final = len(support) >= (self.frames if sure else self.unsure_frames) or alone
        if not final:
            return None
        if cluster.emitted == text:
            if not (sure and cluster.emitted_confidence < self.sure):
                return None
            log.info("vote made %s sure after more frames (%.2f -> %.2f)", text,
                     cluster.emitted_confidence, best.confidence)
        elif cluster.emitted is not None:
            log.info("vote changed %s -> %s after more frames", cluster.emitted, text)
        cluster.emitted = text
        cluster.emitted_confidence = best.confidence
        total = sum(o.confidence for o in cluster.obs)
        cands = [(t, round(sum(o.confidence for o in os_) / total, 4)) for t, os_ in ranked[:5]]
        # The text's best frame, never more: frames of one camera repeat one reader's mistake
        # (a frame edge read as a digit in every frame), so agreement is not independent
        # evidence, and a read the OCR vote marked unsure (own model disagreeing) stays unsure.
        return VoteResult(text=text, confidence=round(best.confidence, 4), frames=len(support),
                          grammar=best.grammar, bbox=best.bbox, crop=best.crop,
                          candidates=cands, first_seen=cluster.obs[0].time,
                          decided_at=obs.time)

    def settled(self, text: str) -> bool:
        """Whether `text` is the final text already emitted for a vehicle still in view."""
        return any(c.emitted == text for c in self._clusters)

    def reset(self) -> None:
        """Forget every cluster (the lane went idle)."""
        self._clusters.clear()


def box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Track:
    kind: str
    box: tuple[int, int, int, int]
    seen: float
    skipped: int = 0


class SettledTracks:
    """Boxes of vehicles whose text the vote has made final, followed from frame to frame.

    OCR is most of a frame's time; once a truck's plate is final, reading it again in every
    frame while it drives through only confirms it. A detection that overlaps a settled box of
    the same kind (IoU >= `min_iou`) within `max_gap_s` of its last sighting is not read — but
    every `reread_every`-th such frame still is, so a vote that later frames would overturn can
    still change. `reread_every` 0 turns skipping off.
    """

    def __init__(self, *, reread_every: int = 5, min_iou: float = 0.3,
                 max_gap_s: float = 1.0) -> None:
        self.reread_every = reread_every
        self.min_iou = min_iou
        self.max_gap_s = max_gap_s
        self._tracks: list[_Track] = []

    def settle(self, kind: str, box: tuple[int, int, int, int] | None, now: float) -> None:
        """A read of this box made (or confirmed) a final text."""
        if box is None or self.reread_every <= 0:
            return
        track = self._match(kind, box, now)
        if track is None:
            self._tracks.append(_Track(kind, box, now))
        else:
            track.box, track.seen, track.skipped = box, now, 0

    def skip(self, kind: str, box: tuple[int, int, int, int], now: float) -> bool:
        """Whether a detection can go unread; follows the track either way."""
        if self.reread_every <= 0:
            return False
        track = self._match(kind, box, now)
        if track is None:
            return False
        track.box, track.seen = box, now
        track.skipped += 1
        if track.skipped >= self.reread_every:
            track.skipped = 0
            return False
        return True

    def _match(self, kind: str, box: tuple[int, int, int, int], now: float) -> _Track | None:
        self._tracks = [t for t in self._tracks if now - t.seen <= self.max_gap_s]
        best = max((t for t in self._tracks if t.kind == kind),
                   key=lambda t: box_iou(t.box, box), default=None)
        if best is None or box_iou(best.box, box) < self.min_iou:
            return None
        return best

    def reset(self) -> None:
        """Forget every track (the lane went idle)."""
        self._tracks.clear()
