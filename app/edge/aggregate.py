"""Read aggregation: many reads of one vehicle over several frames become one sighting.

A vehicle is a *track*: reads whose normalized plates are within one edit of each other. It is
reported as soon as ``min_agreeing`` identical reads fall within ``window_s``; a vehicle that
never gets there is reported with its best-supported read once it has not been seen for
``leave_after_s``. A plate reported once is not reported again for ``cooldown_s``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from pydantic import ValidationError

from app.contract import PlateCandidate, VehicleType, normalize_plate
from app.edge.reader import PlateBox, PlateRead
from app.edge.sources import Frame

MAX_CANDIDATES = 10


@dataclass(frozen=True, slots=True)
class Sighting:
    """One vehicle at the lane, ready to become a ``PlateEvent``."""

    plate: str
    confidence: float
    candidates: list[PlateCandidate]
    vehicle_type: VehicleType
    captured_at: datetime
    frame: Frame  # the frame of the best read: its JPEG becomes the snapshot
    box: PlateBox
    support: int  # reads of the chosen plate
    complete: bool  # True: enough agreeing reads; False: best effort when the vehicle left


@dataclass(slots=True)
class _Observation:
    at: float
    read: PlateRead
    normalized: str
    frame: Frame


@dataclass(slots=True)
class _Track:
    key: str
    observations: list[_Observation] = field(default_factory=list)
    last_seen: float = 0.0
    reported: bool = False


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


class ReadAggregator:
    def __init__(
        self,
        *,
        min_agreeing: int = 3,
        window_s: float = 2.0,
        leave_after_s: float = 1.5,
        cooldown_s: float = 30.0,
        min_confidence: float = 0.5,
        min_support_on_leave: int = 1,
    ) -> None:
        self.min_agreeing = min_agreeing
        self.window_s = window_s
        self.leave_after_s = leave_after_s
        self.cooldown_s = cooldown_s
        self.min_confidence = min_confidence
        self.min_support_on_leave = min_support_on_leave
        self._tracks: list[_Track] = []
        self._reported_at: dict[str, float] = {}
        self.reads_rejected_total = 0
        self.suppressed_total = 0
        # Called once per rejected read (the agent counts it in its /metrics).
        self.on_reject: Callable[[], None] | None = None

    def feed(self, frame: Frame, reads: list[PlateRead]) -> list[Sighting]:
        """Take the reads of one frame; return the sightings that are complete now."""
        now = frame.monotonic_s
        sightings: list[Sighting] = []
        for read in reads:
            observation = self._accept(frame, read)
            if observation is None:
                continue
            track = self._track_for(observation.normalized)
            track.observations.append(observation)
            track.last_seen = now
            if not track.reported:
                agreeing = [
                    o
                    for o in track.observations
                    if o.normalized == observation.normalized and o.at >= now - self.window_s
                ]
                if len(agreeing) >= self.min_agreeing:
                    sighting = self._report(track, observation.normalized, now, complete=True)
                    if sighting is not None:
                        sightings.append(sighting)
        sightings += self.tick(now)
        return sightings

    def tick(self, now: float) -> list[Sighting]:
        """Close the tracks of vehicles not seen for ``leave_after_s``."""
        gone = [t for t in self._tracks if t.last_seen < now - self.leave_after_s]
        return self._close(gone, now)

    def flush(self, now: float) -> list[Sighting]:
        """End of stream: every vehicle still tracked has left."""
        return self._close(list(self._tracks), now)

    def _close(self, tracks: list[_Track], now: float) -> list[Sighting]:
        sightings: list[Sighting] = []
        for track in tracks:
            self._tracks.remove(track)
            if track.reported:
                continue
            support = Counter(o.normalized for o in track.observations)
            best, count = max(
                support.items(),
                key=lambda item: (item[1], self._mean_confidence(track, item[0])),
            )
            if count >= self.min_support_on_leave:
                sighting = self._report(track, best, now, complete=False)
                if sighting is not None:
                    sightings.append(sighting)
        return sightings

    def _accept(self, frame: Frame, read: PlateRead) -> _Observation | None:
        if read.confidence < self.min_confidence:
            self._reject()
            return None
        try:
            # The contract's plate grammar decides what is a plate at all.
            display = PlateCandidate(plate=read.text, confidence=read.confidence).plate
        except ValidationError:
            self._reject()
            return None
        normalized = normalize_plate(display)
        return _Observation(frame.monotonic_s, _with_text(read, display), normalized, frame)

    def _reject(self) -> None:
        self.reads_rejected_total += 1
        if self.on_reject is not None:
            self.on_reject()

    def _track_for(self, normalized: str) -> _Track:
        for track in self._tracks:
            if any(edit_distance(normalized, o.normalized) <= 1 for o in track.observations[-8:]):
                return track
        track = _Track(key=normalized)
        self._tracks.append(track)
        return track

    @staticmethod
    def _mean_confidence(track: _Track, normalized: str) -> float:
        values = [o.read.confidence for o in track.observations if o.normalized == normalized]
        return sum(values) / len(values)

    def _report(
        self, track: _Track, normalized: str, now: float, *, complete: bool
    ) -> Sighting | None:
        track.reported = True
        last = self._reported_at.get(normalized)
        if last is not None and now - last < self.cooldown_s:
            self.suppressed_total += 1
            return None
        self._reported_at[normalized] = now
        self._reported_at = {
            k: v for k, v in self._reported_at.items() if now - v < self.cooldown_s
        }
        chosen = [o for o in track.observations if o.normalized == normalized]
        best = max(chosen, key=lambda o: o.read.confidence)
        support = Counter(o.normalized for o in track.observations)
        candidates: list[PlateCandidate] = []
        for text, _ in support.most_common(MAX_CANDIDATES):
            top = max(
                (o for o in track.observations if o.normalized == text),
                key=lambda o: o.read.confidence,
            )
            candidates.append(
                PlateCandidate(plate=top.read.text, confidence=self._mean_confidence(track, text))
            )
        # Then the readers' own alternatives (other layouts or corrections of the same plate).
        known = {normalize_plate(c.plate) for c in candidates}
        alternatives: dict[str, PlateCandidate] = {}
        for o in chosen:
            for display, confidence in o.read.candidates:
                key = normalize_plate(display)
                if key in known or len(candidates) + len(alternatives) >= MAX_CANDIDATES:
                    continue
                try:
                    alt = PlateCandidate(plate=display, confidence=confidence)
                except ValidationError:
                    continue
                if key not in alternatives or alternatives[key].confidence < alt.confidence:
                    alternatives[key] = alt
        candidates += alternatives.values()
        vehicle_types = Counter(
            o.read.vehicle_type for o in chosen if o.read.vehicle_type is not VehicleType.UNKNOWN
        )
        return Sighting(
            plate=best.read.text,
            confidence=round(self._mean_confidence(track, normalized), 4),
            candidates=candidates,
            vehicle_type=(
                vehicle_types.most_common(1)[0][0] if vehicle_types else VehicleType.UNKNOWN
            ),
            captured_at=best.frame.captured_at,
            frame=best.frame,
            box=best.read.box,
            support=len(chosen),
            complete=complete,
        )


def _with_text(read: PlateRead, text: str) -> PlateRead:
    if read.text == text:
        return read
    return replace(read, text=text)
