"""A checkpoint on disk for console tests: real SQLite files from config/demo, real accounts.

The only stand-in is ``RecordingGateController``: the console's ``OfficerCommands`` seam is
implemented by the daemon, which forwards to gate-controller; here we record what the console
sent so tests can assert that an officer release really asks for the barrier to open.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from fastapi.testclient import TestClient

from edge.cli.match_cmd import decide_for, reads_from_json
from edge.config import GateEdgeConfig, load_config
from edge.console import CommandResult, OfficerCommand
from edge.console.users import Users
from edge.domain.model import HotlistEntry, Passage, new_passage_id
from edge.store.cache import ManifestCache
from edge.store.db import iso
from edge.store.manifest_import import import_file
from edge.store.records import Records

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "config" / "demo"
SECRET = "test-session-secret-" + "x" * 40
PASSWORDS = {"olga": "officer-pass-1", "sam": "supervisor-pass-2", "ada": "admin-pass-3"}
ROLES = {"olga": "officer", "sam": "supervisor", "ada": "admin"}


@dataclass
class RecordingGateController:
    """Stands in for the daemon's link to gate-controller (a separate process not in scope)."""

    accept: bool = True
    sent: list[OfficerCommand] = field(default_factory=list)

    async def send(self, command: OfficerCommand) -> CommandResult:
        self.sent.append(command)
        return CommandResult(self.accept, "accepted by gate-controller" if self.accept
                             else "refused: vehicle under the arm")


def plate_crop(text: str, path: Path) -> None:
    """A plate-like image (white plate, black text) as a camera crop would look."""
    img = np.full((70, 260, 3), 245, np.uint8)
    cv2.rectangle(img, (2, 2), (257, 67), (20, 20, 20), 3)
    cv2.putText(img, text, (14, 50), cv2.FONT_HERSHEY_DUPLEX, 1.25, (15, 15, 15), 3, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)


def printed(plate: str) -> str:
    """51C12345 -> 51C-123.45 (enough for the demo's VN plates)."""
    if re.fullmatch(r"\d\d[A-Z]\d{5}", plate):
        return f"{plate[:3]}-{plate[3:6]}.{plate[6:]}"
    return plate


def save_truck(cfg: GateEdgeConfig, cache: ManifestCache, records: Records, truck: dict[str, Any],
               evidence_dir: Path, at: datetime | None = None) -> Passage:
    """Decide a demo truck with the real matcher and save it, with a plate-crop evidence file."""
    pid = new_passage_id()
    raw = json.loads(json.dumps(truck["reads"]))
    evidence: list[dict[str, str]] = []
    tractor = (raw.get("tractor") or [None])[0]
    if tractor and tractor["text"].isascii():
        name = f"{pid}-tractor.png"
        plate_crop(printed(tractor["text"]), evidence_dir / name)
        tractor["crop_ref"] = name
        evidence.append({"file": name, "kind": "plate_crop",
                         "sha256": hashlib.sha256((evidence_dir / name).read_bytes()).hexdigest()})
    if at is not None:
        raw["at"] = at.isoformat()
    reads = reads_from_json(raw)
    decision = decide_for(cfg, cache, reads)
    passage = Passage(id=pid, lane=reads.lane, started_at=reads.at, reads=reads,
                      decision=decision, ended_at=reads.at, evidence=tuple(evidence))
    records.save_passage(passage)
    return passage


def demo_trucks() -> list[dict[str, Any]]:
    lines = (DEMO / "trucks.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(x) for x in lines if x.strip() and not x.startswith("#")]


@dataclass
class Site:
    """A checkpoint's files on disk, filled with demo data."""

    cfg: GateEdgeConfig
    dir: Path
    passages: list[Passage]

    @property
    def evidence(self) -> Path:
        return self.cfg.storage.evidence_dir

    def open_records(self) -> Records:
        return Records.open(self.cfg.storage.records_path)

    def open_cache(self) -> ManifestCache:
        return ManifestCache.open(self.cfg.storage.cache_path)

    def by_outcome(self, outcome: str) -> list[Passage]:
        return [p for p in self.passages if p.decision and p.decision.outcome.value == outcome]


def make_site(tmp: Path, console: dict[str, Any] | None = None) -> Site:
    text = (DEMO / "gate-edge.demo.yaml").read_text(encoding="utf-8")
    cfg_path = tmp / "gate-edge.yaml"
    cfg_path.write_text(text, encoding="utf-8")
    cfg = load_config(cfg_path)
    cfg = cfg.model_copy(update={
        "storage": cfg.storage.model_copy(update={"dir": tmp / "var"}),
        "console": cfg.console.model_validate({**cfg.console.model_dump(), **(console or {})}),
    })
    cache = ManifestCache.open(cfg.storage.cache_path)
    records = Records.open(cfg.storage.records_path)
    try:
        import_file(cache, DEMO / "manifests.jsonl")
        now = datetime.now(UTC)
        hot = [HotlistEntry.model_validate_json(x) for x in
               (DEMO / "hotlist.jsonl").read_text(encoding="utf-8").splitlines()
               if x.strip() and not x.startswith("#")]
        cache.upsert_hotlist(hot, now)
        # the batch was signed before the first truck of the morning arrived
        cache.set_meta(signed_at=iso(now - timedelta(hours=1)), source="test")
        users = Users(records.db)
        for name, password in PASSWORDS.items():
            users.add(name, ROLES[name], password, now)
        start = now - timedelta(minutes=30)
        passages = [save_truck(cfg, cache, records, t, cfg.storage.evidence_dir,
                               at=start + timedelta(minutes=2 * i))
                    for i, t in enumerate(demo_trucks())]
    finally:
        cache.close()
        records.close()
    return Site(cfg, tmp, passages)


def login(client: TestClient, name: str, password: str | None = None) -> str:
    """Log in through the API; returns the CSRF token."""
    r = client.post("/api/v1/session", json={"username": name,
                                             "password": password or PASSWORDS[name]})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf_token"])


def form_token(client: TestClient, path: str = "/login") -> str:
    """The CSRF token a page embeds in its forms."""
    r = client.get(path)
    match = re.search(r'name="csrf_token" value="([^"]+)"', r.text)
    assert match, f"no CSRF field on {path}"
    return match.group(1)
