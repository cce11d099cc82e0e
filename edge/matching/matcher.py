"""The matcher: is this the truck, trailer, containers and seals that were cleared?

``decide`` is a pure function of the reads, the cache and the policy: it performs SQLite reads
and nothing else, so the same inputs always give the same Decision, and the CLI, the daemon and
the tests all exercise the same code. It returns *every* reason that applies, not the first,
because the officer who gets the referral needs the whole picture (DESIGN-NOTES §4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from edge.config.lanes import LaneConfig
from edge.config.policy import PolicyConfig
from edge.domain import iso6346
from edge.domain.model import (
    Decision,
    HotlistEntry,
    HotlistKind,
    Manifest,
    ManifestStatus,
    Outcome,
    PassageReads,
    PlateRead,
    ReasonCode,
    SealStatus,
    SealType,
    normalize_seal_id,
)
from edge.domain.plates import PlateGrammar, fold_confusables, folded_match_allowed
from edge.store.cache import ManifestCache

CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future a signature time may lie before the cache is distrusted."""

_HOTLIST_REASON = {
    HotlistKind.PLATE: ReasonCode.HOTLIST_PLATE,
    HotlistKind.CONTAINER: ReasonCode.HOTLIST_CONTAINER,
    HotlistKind.SEAL: ReasonCode.HOTLIST_SEAL,
    HotlistKind.TRADER: ReasonCode.HOTLIST_TRADER,
}


@dataclass
class _Findings:
    reasons: list[ReasonCode] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    hold: bool = False

    def add(self, reason: ReasonCode, detail: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)
        self.details.append(f"{reason.value}: {detail}")


def _plate_texts(reads: Sequence[PlateRead]) -> list[str]:
    """Read texts, best first: voted text of each read, then its other candidates."""
    ordered = sorted(reads, key=lambda r: -r.confidence)
    texts: list[str] = [r.text for r in ordered if r.text]
    for read in ordered:
        texts.extend(c.text for c in read.candidates if c.text)
    return list(dict.fromkeys(texts))


def _plate_agrees(reads: Sequence[PlateRead], declared: str, grammars: Sequence[PlateGrammar],
                  allow_folded: bool) -> str | None:
    """How the reads agree with the declared plate: ``exact``, ``folded``, ``candidate``.

    Only the voted texts can agree outright; a declared plate found only among the OCR's
    lower-ranked candidates is ``candidate`` (the caller refers it as LOW_CONFIDENCE).
    """
    voted = [r.text for r in reads if r.text]
    if declared in voted:
        return "exact"
    if allow_folded and any(folded_match_allowed(t, declared, grammars) for t in voted):
        return "folded"
    candidates = [c.text for r in reads for c in r.candidates]
    if declared in candidates or (allow_folded and any(
            folded_match_allowed(t, declared, grammars) for t in candidates)):
        return "candidate"
    return None


def _conflicting_reads(reads: Sequence[PlateRead], policy: PolicyConfig,
                       grammars: Sequence[PlateGrammar]) -> tuple[str, str] | None:
    """Two confident, well-formed tractor readings that are not confusions of each other.

    That is two vehicles in one passage (a re-read of the truck in front, a cloned plate on a
    second camera): never a reason to pick one and open.
    """
    confident = [r.text for r in reads if r.confidence >= policy.min_plate_confidence
                 and any(g.matches(r.text) for g in grammars)]
    for i, a in enumerate(confident):
        for b in confident[i + 1:]:
            if a != b and fold_confusables(a) != fold_confusables(b):
                return a, b
    return None


def _find_by_tractor(reads: Sequence[PlateRead], cache: ManifestCache,
                     grammars: Sequence[PlateGrammar], allow_folded: bool
                     ) -> tuple[list[Manifest], str, str | None]:
    texts = _plate_texts(reads)
    for text in texts:
        found = cache.by_plate(text, role="tractor")
        if found:
            return found, "exact", text
    if allow_folded:
        for text in texts:
            hits = [m for m, plate in cache.by_folded_plate(fold_confusables(text), role="tractor")
                    if folded_match_allowed(text, plate, grammars)]
            if hits:
                return hits, "folded", text
    return [], "none", None


def _fitness(m: Manifest, reads: PassageReads, site: str, lane: str) -> tuple[int, ...]:
    """Sort key among several manifests of one tractor: the one this trip is most likely for."""
    trailer_texts = {r.text for r in reads.trailer}
    containers = {c.text for c in reads.containers}
    return (
        int(m.status is ManifestStatus.RELEASED),
        int(m.is_valid_at(reads.at)),
        int(not m.gates or site in m.gates),
        int(not m.lanes or lane in m.lanes),
        int(bool(m.trailer_plate) and m.trailer_plate in trailer_texts),
        len(containers & set(m.containers)),
    )


def _check_hotlist(cache: ManifestCache, reads: PassageReads, manifest: Manifest | None,
                   policy: PolicyConfig, grammars: Sequence[PlateGrammar], found: _Findings) -> None:
    plates = [r.text for r in (*reads.tractor, *reads.trailer)]
    containers = [c.text for c in reads.containers]
    seals = [s.seal_id for s in reads.seals]
    traders: list[str] = []
    if manifest is not None:
        plates += [manifest.tractor_plate, manifest.trailer_plate or ""]
        containers += list(manifest.containers)
        seals += [s.seal_id for s in manifest.seals]
        traders.append(manifest.trader.tax_code)
    hits: list[tuple[HotlistEntry, str]] = []
    for kind, values in ((HotlistKind.PLATE, plates), (HotlistKind.CONTAINER, containers),
                         (HotlistKind.SEAL, seals), (HotlistKind.TRADER, traders)):
        hits += [(hit, "") for hit in cache.hotlist_hits(kind, values, reads.at)]
    # A hotlisted plate misread by OCR, or only among the alternative readings, must still
    # stop the truck: folded and candidate hits are checked too. A folded hit the grammar
    # proves keeps the entry's action; anything less certain is referred to an officer.
    exact = {hit.value for hit, _ in hits if hit.kind is HotlistKind.PLATE}
    readings = [r.text for r in (*reads.tractor, *reads.trailer)] + [
        c.text for r in (*reads.tractor, *reads.trailer) for c in r.candidates]
    for hit in cache.hotlist_plate_folded_hits([fold_confusables(t) for t in readings], reads.at):
        if hit.value in exact:
            continue
        proven = any(folded_match_allowed(r.text, hit.value, grammars)
                     for r in (*reads.tractor, *reads.trailer))
        hits.append((hit, "" if proven else "refer"))
        exact.add(hit.value)
    for hit, downgrade in hits:
        action = downgrade or hit.action or policy.hotlist_default_action
        found.add(_HOTLIST_REASON[hit.kind], f"{hit.kind.value} {hit.value} is hotlisted "
                  f"({action}): {hit.reason}")
        if action == "hold":
            found.hold = True


def _check_manifest(m: Manifest, reads: PassageReads, policy: PolicyConfig, site: str,
                    lane: LaneConfig | None, found: _Findings) -> None:
    if m.status is ManifestStatus.CANCELLED:
        found.add(ReasonCode.MANIFEST_CANCELLED, f"declaration {m.declaration_no} was cancelled")
    elif m.status is not ManifestStatus.RELEASED:
        found.add(ReasonCode.NOT_RELEASED,
                  f"declaration {m.declaration_no} is {m.status.value}, not released")
    if m.channel.value not in policy.auto_open_channels:
        found.add(ReasonCode.CHANNEL_REVIEW, f"{m.channel.value} channel needs an officer here")
    if not m.is_valid_at(reads.at):
        found.add(ReasonCode.OUTSIDE_VALIDITY,
                  f"valid {m.valid_from.isoformat()} to {m.valid_until.isoformat()}")
    if m.gates and site not in m.gates:
        found.add(ReasonCode.WRONG_GATE, f"declared for {', '.join(m.gates)}, this is {site}")
    if m.lanes and reads.lane not in m.lanes:
        found.add(ReasonCode.WRONG_LANE, f"declared for lanes {', '.join(m.lanes)}")
    if lane is not None and lane.aeo_priority and not m.trader.aeo:
        found.add(ReasonCode.NOT_AEO_LANE, f"{m.trader.name} is not AEO; this is a priority lane")


def _check_trailer(m: Manifest, reads: PassageReads, policy: PolicyConfig,
                   grammars: Sequence[PlateGrammar], found: _Findings) -> None:
    texts = _plate_texts(reads.trailer)
    if m.trailer_plate:
        if not texts:
            if policy.require_trailer_read:
                found.add(ReasonCode.TRAILER_NOT_READ, f"declared trailer {m.trailer_plate} not read")
            return
        agree = _plate_agrees(reads.trailer, m.trailer_plate, grammars,
                              policy.allow_folded_plate_match)
        if agree is None:
            found.add(ReasonCode.TRAILER_MISMATCH,
                      f"read trailer {texts[0]}, declared {m.trailer_plate}")
        elif agree == "candidate":
            found.add(ReasonCode.LOW_CONFIDENCE, f"trailer {m.trailer_plate} only among the "
                      f"alternative readings; best reading {texts[0]}")
    elif reads.trailer:
        found.add(ReasonCode.TRAILER_MISMATCH, f"trailer {texts[0]} present but none declared")


def _check_containers(m: Manifest, reads: PassageReads, policy: PolicyConfig,
                      found: _Findings) -> None:
    read_ok = {c.text for c in reads.containers if c.check_digit_ok}
    declared = set(m.containers)
    for bad in (c for c in reads.containers if not c.check_digit_ok):
        # A check digit detects one error but cannot say which; the declaration can. A read one
        # look-alike away from a declared number is taken as that number, and said so.
        near = [d for d in declared - read_ok if iso6346.one_lookalike_apart(bad.text, d)]
        if len(near) == 1:
            read_ok.add(near[0])
            found.details.append(f"container read {bad.text} taken as declared {near[0]} "
                                 "(one look-alike character apart)")
            continue
        found.add(ReasonCode.CONTAINER_CHECK_DIGIT,
                  f"container read {bad.text} fails the ISO 6346 check digit")
    if policy.require_container_read:
        for missing in sorted(declared - read_ok):
            found.add(ReasonCode.CONTAINER_MISSING, f"declared container {missing} not read")
    for extra in sorted(read_ok - declared):
        found.add(ReasonCode.CONTAINER_UNEXPECTED, f"container {extra} is not on the declaration")


def _check_seals(m: Manifest, reads: PassageReads, policy: PolicyConfig, found: _Findings) -> None:
    declared = {s.seal_id for s in m.seals}
    declared_types = {s.seal_id: s.type for s in m.seals}
    seen: set[str] = set()
    for seal in reads.seals:
        seal_id = normalize_seal_id(seal.seal_id)
        if seal.malformed:
            found.add(ReasonCode.SEAL_MALFORMED,
                      f"reader {seal.reader} sent a malformed seal id {seal.seal_id!r}")
            continue
        seen.add(seal_id)
        if seal.status in (SealStatus.OPENED, SealStatus.TAMPERED):
            found.add(ReasonCode.SEAL_TAMPERED, f"seal {seal_id} reports {seal.status.value}")
        elif seal.status is SealStatus.UNKNOWN and (
                seal.kind is SealType.ESEAL or declared_types.get(seal_id) is SealType.ESEAL):
            # A bolt seal's barcode cannot say whether it is intact; an e-seal can and must.
            found.add(ReasonCode.SEAL_STATUS_UNKNOWN,
                      f"e-seal {seal_id} was read without an integrity status")
        if seal_id not in declared:
            found.add(ReasonCode.SEAL_UNEXPECTED, f"seal {seal_id} is not on the declaration")
    if policy.require_seal_read:
        for missing in sorted(declared - seen):
            found.add(ReasonCode.SEAL_MISSING, f"declared seal {missing} not read")


def decide(reads: PassageReads, cache: ManifestCache, policy: PolicyConfig,
           grammars: Sequence[PlateGrammar], *, site: str, lane: LaneConfig | None = None
           ) -> Decision:
    """Match one passage's reads against the cache and decide open, refer or hold."""
    found = _Findings()
    signed_at = cache.signed_at()
    if signed_at is None:
        found.add(ReasonCode.CACHE_STALE, "no signed manifest batch has been applied yet")
    elif signed_at - reads.at > CLOCK_SKEW:
        found.add(ReasonCode.CACHE_STALE,
                  f"newest batch claims to be signed {signed_at.isoformat()}, in the future: "
                  "the gate clock or the batch is wrong")
    elif reads.at - signed_at > policy.max_cache_age:
        found.add(ReasonCode.CACHE_STALE,
                  f"newest batch signed {signed_at.isoformat()}, older than {policy.max_cache_age}")
    if reads.tailgating:
        found.add(ReasonCode.TAILGATING, "a second vehicle entered before the first cleared")

    conflict = _conflicting_reads(reads.tractor, policy, grammars)
    if conflict:
        found.add(ReasonCode.PLATE_MISMATCH,
                  f"two different plates read in one passage: {conflict[0]} and {conflict[1]}")
    tractor_texts = _plate_texts(reads.tractor)
    best = max(reads.tractor, key=lambda r: r.confidence, default=None)
    if best is not None and best.confidence < policy.min_plate_confidence:
        found.add(ReasonCode.LOW_CONFIDENCE,
                  f"plate {best.text} read with confidence {best.confidence:.2f} "
                  f"< {policy.min_plate_confidence:.2f}")

    manifest: Manifest | None = None
    plate_match = "none"
    matched_plate: str | None = None
    if reads.declaration_no:
        by_ref = cache.by_reference(reads.declaration_no)
        manifest = by_ref[0] if by_ref else None
        if len(by_ref) > 1:
            found.add(ReasonCode.AMBIGUOUS_MANIFEST, f"{reads.declaration_no} names several "
                      "declarations: " + ", ".join(m.declaration_no for m in by_ref))
        if manifest is not None:
            plate_match = "declaration"
            if not tractor_texts:
                found.add(ReasonCode.PLATE_NOT_READ, "no tractor plate read to confirm the document")
            else:
                agree = _plate_agrees(reads.tractor, manifest.tractor_plate, grammars,
                                      policy.allow_folded_plate_match)
                if agree is None:
                    found.add(ReasonCode.PLATE_MISMATCH, f"read {tractor_texts[0]}, declaration "
                              f"{manifest.declaration_no} names {manifest.tractor_plate}")
                else:
                    matched_plate = manifest.tractor_plate
                if agree == "candidate":
                    found.add(ReasonCode.LOW_CONFIDENCE, f"{manifest.tractor_plate} only among "
                              f"the alternative readings; best reading {tractor_texts[0]}")
        else:
            found.add(ReasonCode.NO_MANIFEST, f"declaration {reads.declaration_no} not in cache")
    elif not tractor_texts:
        found.add(ReasonCode.PLATE_NOT_READ, "no tractor plate was read")
    else:
        candidates, plate_match, read_text = _find_by_tractor(
            reads.tractor, cache, grammars, policy.allow_folded_plate_match)
        if not candidates:
            found.add(ReasonCode.NO_MANIFEST, f"no declaration for plate {tractor_texts[0]}")
        else:
            ranked = sorted(candidates, key=lambda m: _fitness(m, reads, site, reads.lane),
                            reverse=True)
            top = _fitness(ranked[0], reads, site, reads.lane)
            tied = [m for m in ranked if _fitness(m, reads, site, reads.lane) == top]
            manifest = ranked[0]
            matched_plate = manifest.tractor_plate
            if len(tied) > 1:
                found.add(ReasonCode.AMBIGUOUS_MANIFEST, "several declarations fit: "
                          + ", ".join(m.declaration_no for m in tied))
            if read_text != tractor_texts[0]:
                found.add(ReasonCode.LOW_CONFIDENCE,
                          f"plate matched only on an alternative reading {read_text}; "
                          f"the best reading was {tractor_texts[0]}")
            if plate_match == "folded":
                found.details.append(f"plate read {read_text} taken as {matched_plate} "
                                     "(OCR confusion the plate grammar rules out)")

    if manifest is not None:
        _check_manifest(manifest, reads, policy, site, lane, found)
        _check_trailer(manifest, reads, policy, grammars, found)
        _check_containers(manifest, reads, policy, found)
        _check_seals(manifest, reads, policy, found)
    _check_hotlist(cache, reads, manifest, policy, grammars, found)

    if found.hold:
        outcome = Outcome.HOLD
    elif found.reasons:
        outcome = Outcome.REFER
    else:
        outcome = Outcome.OPEN
    return Decision(
        outcome=outcome,
        reasons=tuple(found.reasons),
        declaration_no=manifest.declaration_no if manifest else None,
        manifest_version=manifest.version if manifest else None,
        matched_plate=matched_plate,
        plate_match=plate_match,
        priority=bool(manifest and manifest.trader.aeo),
        details=tuple(found.details),
        decided_at=reads.at,
    )
