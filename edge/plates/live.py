"""One camera's live reading: detect, read what is not settled yet, vote (no I/O here).

The camera worker process feeds it decoded frames and publishes what it returns; the latency
benchmark drives the same object with simulator frames, so the figure it reports is the lane's
own per-frame cost, OCR skipping included.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np

from edge.config.cameras import ReaderConfig
from edge.plates.detector import Detection
from edge.plates.reader import PlateReader
from edge.plates.voting import Observation, PlateVoter, SettledTracks, VoteResult

log = logging.getLogger(__name__)


@dataclass
class LiveStats:
    """Counts since start: frames, objects read by OCR, objects left unread (already final)."""

    frames: int = 0
    read: int = 0
    skipped: int = 0


class LiveReader:
    """Per-camera state of the live loop: the plate and container votes and the settled boxes."""

    def __init__(self, reader: PlateReader, rc: ReaderConfig,
                 roi: tuple[int, int, int, int] | None = None) -> None:
        self.reader = reader
        self.roi = roi
        self.voters = {kind: PlateVoter(frames=rc.vote_frames, confidence=rc.vote_confidence,
                                        window_s=rc.vote_window_s,
                                        min_confidence=rc.min_read_confidence,
                                        sure=rc.vote_sure,
                                        unsure_frames=rc.vote_unsure_frames)
                       for kind in ("plate", "container")}
        # boxes whose text is final are not read again in every frame (OCR is most of a frame)
        self.tracks = SettledTracks(reread_every=rc.settled_reread_every)
        self.stats = LiveStats()

    def _skip(self, now: float, det: Detection) -> bool:
        return self.tracks.skip(det.label, det.box, now)

    def process(self, frame: np.ndarray, now: float) -> list[tuple[str, VoteResult]]:
        """Read one frame; returns the ("plate" | "container", result) reads it made final.

        Raises ValueError for a frame that cannot be read (zero-size, ROI outside it).
        """
        reads = self.reader.read_frame(frame, self.roi, keep_crops=True, thorough=False,
                                       skip=functools.partial(self._skip, now))
        self.stats.frames += 1
        finals: list[tuple[str, VoteResult]] = []
        for r in reads:
            if r.skipped:
                self.stats.skipped += 1
                continue
            self.stats.read += 1
            if r.plate is not None and r.plate.text and r.plate.grammar:
                obs = Observation(r.plate.text, r.plate.confidence, now, r.plate.grammar,
                                  r.box, r.crop)
                self._vote("plate", obs, finals)
            if r.container is not None and r.container.text:
                c = r.container
                self._vote("container", Observation(c.text, c.confidence, now, None, r.box,
                                                    r.crop), finals)
        return finals

    def _vote(self, kind: str, obs: Observation, finals: list[tuple[str, VoteResult]]) -> None:
        voter = self.voters[kind]
        final = voter.add(obs)
        if voter.settled(obs.text) and obs.bbox is not None:
            self.tracks.settle("plate" if kind == "plate" else "container_number", obs.bbox,
                               obs.time)
        if final is not None:
            finals.append((kind, final))
