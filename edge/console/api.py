"""The JSON API under ``/api/v1``: everything the pages do, for scripts and other tools.

Routes touching SQLite are plain ``def`` (FastAPI runs them in worker threads, STYLE §5).
Unsafe methods need the session's CSRF token in ``X-CSRF-Token``.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from edge.console.latency_chart import latency_json
from edge.console.reasons import REASON_LABELS
from edge.console.security import (
    check_csrf,
    client_address,
    require,
    session_user,
    start_session,
)
from edge.console.service import ActionOutcome, ConsoleService
from edge.console.users import PERMISSIONS, Permission, User
from edge.domain.model import HotlistEntry, Manifest
from edge.store.records import PassageRow

router = APIRouter(prefix="/api/v1", tags=["api"])

PASSAGE_ID = Path(..., min_length=1, max_length=64, description="passage id (ULID)")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LoginBody(_Body):
    """Credentials of a console account."""

    username: str = Field(..., min_length=1, max_length=64)
    password: str = Field(..., min_length=1, max_length=256)


class ReasonBody(_Body):
    """Every officer action names a reason code (GET /api/v1/reason-codes) and may add a note."""

    reason_code: str = Field(..., max_length=64, description="one of /api/v1/reason-codes")
    note: str = Field("", max_length=500, description="free text; required for OTHER")


class PlateBody(ReasonBody):
    """A plate typed by the officer; checked against the plate grammars."""

    plate: str = Field(..., max_length=32, description="plate as printed, e.g. 51C-123.45")


class DeclarationBody(ReasonBody):
    """A declaration number scanned from the transport document or typed."""

    declaration_no: str = Field(..., max_length=40, description="12 digits, or a transit MRN")


class HotlistBody(ReasonBody):
    """A hotlist entry to add or update (supervisors)."""

    kind: Literal["plate", "container", "seal", "trader"]
    value: str = Field(..., min_length=1, max_length=64)
    reason: str = Field(..., min_length=1, max_length=500, description="why it is listed")
    action: Literal["hold", "refer"] = "hold"
    expires_at: datetime | None = None


class HotlistRemoveBody(ReasonBody):
    """A hotlist entry to remove (supervisors)."""

    kind: Literal["plate", "container", "seal", "trader"]
    value: str = Field(..., min_length=1, max_length=64)


def _service(request: Request) -> ConsoleService:
    service: ConsoleService = request.app.state.service
    return service


def api_user(request: Request) -> User:
    """The session's user (401 without one)."""
    return session_user(request)


def api_csrf(request: Request,
             x_csrf_token: Annotated[str | None, Header(description="session CSRF token")] = None
             ) -> None:
    """Unsafe calls carry the session's CSRF token."""
    check_csrf(request, x_csrf_token)


UserDep = Annotated[User, Depends(api_user)]
Csrf = Depends(api_csrf)


def passage_json(row: PassageRow, *, full: bool = False) -> dict[str, Any]:
    """A passage for the API: summary, or everything with ``full``."""
    doc = {"id": row.id, "lane": row.lane, "started_at": row.started_at, "ended_at": row.ended_at,
           "tractor_plate": row.tractor_plate, "trailer_plate": row.trailer_plate,
           "declaration_no": row.declaration_no, "outcome": row.outcome, "reasons": row.reasons,
           "decided_by": (row.decision or {}).get("decided_by")}
    if full:
        doc.update({"reads": row.reads, "decision": row.decision,
                    "barrier_events": row.barrier_events, "evidence": row.evidence})
    return doc


def manifest_json(m: Manifest) -> dict[str, Any]:
    """A manifest as JSON."""
    return m.model_dump(mode="json")


def outcome_json(result: ActionOutcome) -> dict[str, Any]:
    """What an officer action did."""
    return {"passage_id": result.passage_id, "outcome": result.outcome,
            "reasons": list(result.reasons), "message": result.message,
            "barrier_command": None if result.command is None else asdict(result.command)}


@router.post("/session", summary="Log in", responses={401: {}, 429: {}})
def login(request: Request, body: LoginBody) -> JSONResponse:
    """Start a session; returns the CSRF token to send with every later POST."""
    service = _service(request)
    client = client_address(request)
    retry = request.app.state.throttle.attempt(client)
    if retry:
        service.login_throttled(body.username, client)
        return JSONResponse({"detail": "too many login attempts; wait and try again"}, 429,
                            headers={"Retry-After": str(int(retry))})
    result = service.login(body.username, body.password, client)
    if result.user is None:
        return JSONResponse({"detail": result.problem}, 401)
    token = start_session(request, result.user)
    return JSONResponse({"user": result.user.name, "role": result.user.role.value,
                         "csrf_token": token})


@router.get("/session", summary="Who am I")
def whoami(request: Request, user: UserDep) -> dict[str, Any]:
    """The logged-in user, role, permissions and CSRF token."""
    return {"user": user.name, "role": user.role.value,
            "permissions": sorted(p.value for p in PERMISSIONS[user.role]),
            "csrf_token": request.session.get("csrf")}


@router.post("/session/logout", summary="Log out", dependencies=[Csrf])
def logout(request: Request, user: UserDep) -> dict[str, str]:
    """End every session of this user."""
    _service(request).logout(user)
    request.session.clear()
    return {"detail": "logged out"}


@router.get("/reason-codes", summary="Reason codes for officer actions")
def reason_codes(user: UserDep) -> list[dict[str, str]]:
    """Codes every action must carry, with labels."""
    return [{"code": code.value, "label": label} for code, label in REASON_LABELS.items()]


@router.get("/lanes", summary="Live lane states")
def lanes(request: Request, user: UserDep) -> list[dict[str, Any]]:
    """Latest state of each lane (live updates: GET /events, Server-Sent Events)."""
    require(user, Permission.VIEW_LANES)
    return [s.to_json() for s in request.app.state.feed.lanes()]


@router.get("/passages", summary="Recent passages")
def passages(request: Request, user: UserDep,
             lane: Annotated[str | None, Query(max_length=32)] = None,
             outcome: Annotated[Literal["open", "refer", "hold"] | None, Query()] = None,
             limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
    """Newest first."""
    require(user, Permission.VIEW_PASSAGES)
    return [passage_json(r) for r in _service(request).passages(lane=lane, outcome=outcome,
                                                                limit=limit)]


@router.get("/passages/{passage_id}", summary="One passage with reads, decisions and timeline",
            responses={404: {}})
def passage(request: Request, user: UserDep,
            passage_id: Annotated[str, PASSAGE_ID]) -> dict[str, Any]:
    """Reads, decision history, matched manifest, evidence and audit timeline."""
    require(user, Permission.VIEW_PASSAGES)
    detail = _service(request).passage_detail(passage_id)
    return {**passage_json(detail["passage"], full=True), "decisions": detail["decisions"],
            "manifest": manifest_json(detail["manifest"]) if detail["manifest"] else None,
            "evidence_check": detail["evidence"], "pending": detail["pending"],
            "timeline": [asdict(r) for r in detail["timeline"]]}


@router.get("/referrals", summary="Passages waiting for an officer")
def referrals(request: Request, user: UserDep) -> list[dict[str, Any]]:
    """Oldest first."""
    require(user, Permission.VIEW_REFERRALS)
    return [passage_json(r) for r in _service(request).referrals()]


_ACTION_RESPONSES: dict[int | str, dict[str, Any]] = {403: {}, 404: {}, 409: {}, 422: {}}


@router.post("/referrals/{passage_id}/release", summary="Release (open the barrier)",
             dependencies=[Csrf], responses=_ACTION_RESPONSES)
def release(request: Request, user: UserDep, passage_id: Annotated[str, PASSAGE_ID],
            body: ReasonBody) -> dict[str, Any]:
    """Officer releases a referral (supervisor for a hotlist hold).

    Audited, then sent to gate-controller as an officer command.
    """
    return outcome_json(_service(request).act(user, passage_id, "release",
                                              reason_code=body.reason_code, note=body.note))


@router.post("/referrals/{passage_id}/hold", summary="Hold (keep the barrier shut)",
             dependencies=[Csrf], responses=_ACTION_RESPONSES)
def hold(request: Request, user: UserDep, passage_id: Annotated[str, PASSAGE_ID],
         body: ReasonBody) -> dict[str, Any]:
    """Keep the truck for inspection; audited."""
    return outcome_json(_service(request).act(user, passage_id, "hold",
                                              reason_code=body.reason_code, note=body.note))


@router.post("/referrals/{passage_id}/plate", summary="Correct the plate by hand",
             dependencies=[Csrf], responses=_ACTION_RESPONSES)
def correct_plate(request: Request, user: UserDep, passage_id: Annotated[str, PASSAGE_ID],
                  body: PlateBody) -> dict[str, Any]:
    """Replace the read plate with the typed one and decide again."""
    return outcome_json(_service(request).act(user, passage_id, "plate",
                                              reason_code=body.reason_code, note=body.note,
                                              plate=body.plate))


@router.post("/referrals/{passage_id}/declaration", summary="Identify by declaration number",
             dependencies=[Csrf], responses=_ACTION_RESPONSES)
def identify(request: Request, user: UserDep, passage_id: Annotated[str, PASSAGE_ID],
             body: DeclarationBody) -> dict[str, Any]:
    """Match by the declaration number on the transport document and decide again."""
    return outcome_json(_service(request).act(user, passage_id, "declaration",
                                              reason_code=body.reason_code, note=body.note,
                                              declaration_no=body.declaration_no))


@router.get("/manifests", summary="Search manifests")
def manifests(request: Request, user: UserDep,
              q: Annotated[str, Query(max_length=64, description="declaration, plate, "
                                      "container or seal")] = "") -> list[dict[str, Any]]:
    """Declarations in the local cache matching ``q`` (newest 50 without ``q``)."""
    require(user, Permission.VIEW_MANIFESTS)
    return [manifest_json(m) for m in _service(request).search_manifests(q)]


@router.get("/manifests/{declaration_no}", summary="One manifest", responses={404: {}})
def manifest(request: Request, user: UserDep,
             declaration_no: Annotated[str, Path(max_length=40)]) -> dict[str, Any]:
    """By declaration number or transit MRN."""
    require(user, Permission.VIEW_MANIFESTS)
    return manifest_json(_service(request).manifest(declaration_no))


@router.get("/hotlist", summary="Hotlist")
def hotlist(request: Request, user: UserDep) -> list[dict[str, Any]]:
    """Every entry, expired ones included."""
    require(user, Permission.VIEW_HOTLIST)
    return [e.model_dump(mode="json") for e in _service(request).hotlist()]


@router.post("/hotlist", summary="Add or update a hotlist entry (supervisor)",
             dependencies=[Csrf], responses={403: {}, 422: {}})
def hotlist_add(request: Request, user: UserDep, body: HotlistBody) -> dict[str, Any]:
    """Audited with the reason code and note."""
    data = body.model_dump(exclude={"reason_code", "note"})
    entry: HotlistEntry = _service(request).hotlist_add(user, data, body.reason_code, body.note)
    return entry.model_dump(mode="json")


@router.post("/hotlist/remove", summary="Remove a hotlist entry (supervisor)",
             dependencies=[Csrf], responses={403: {}, 404: {}, 422: {}})
def hotlist_remove(request: Request, user: UserDep, body: HotlistRemoveBody) -> dict[str, str]:
    """Audited with the reason code and note."""
    _service(request).hotlist_remove(user, body.kind, body.value, body.reason_code, body.note)
    return {"detail": "removed"}


@router.get("/audit", summary="Audit log, newest first")
def audit_log(request: Request, user: UserDep,
              before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
              subject: Annotated[str | None, Query(max_length=100)] = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    """Page backwards with ``before_id``."""
    require(user, Permission.VIEW_AUDIT)
    return [asdict(r) for r in _service(request).audit_rows(before_id=before_id, limit=limit,
                                                            subject=subject)]


@router.get("/audit/verify", summary="Verify the audit hash chain (supervisor)",
            responses={403: {}})
def audit_verify(request: Request, user: UserDep) -> dict[str, Any]:
    """Walk the whole chain and report the first broken row."""
    return asdict(_service(request).verify_audit(user))


@router.get("/health", summary="Devices, broker, cache age, outbox depth, lane latency")
def health(request: Request, user: UserDep) -> dict[str, Any]:
    """What the health page shows.

    ``latency``: per lane, p50/p95/max (seconds) of the most recent loop-trigger to
    barrier-open-coil times and those times themselves (``recent``: [UTC time, seconds]).
    """
    require(user, Permission.VIEW_HEALTH)
    service = _service(request)
    return {**service.health(),
            "latency": latency_json(request.app.state.metrics,
                                    [lane.id for lane in service.cfg.lanes])}


@router.get("/users", summary="Console accounts (admin)", responses={403: {}})
def users(request: Request, user: UserDep) -> list[dict[str, Any]]:
    """Accounts with role and lockout state."""
    require(user, Permission.MANAGE_USERS)
    return [{"name": u.name, "role": u.role.value, "failed_logins": u.failed_logins,
             "locked_until": u.locked_until.isoformat() if u.locked_until else None,
             "disabled": u.disabled} for u in _service(request).list_users()]


@router.post("/users/{name}/unlock", summary="Clear a lockout (admin)", dependencies=[Csrf],
             responses={403: {}, 404: {}, 422: {}})
def unlock(request: Request, user: UserDep, name: Annotated[str, Path(max_length=64)],
           body: ReasonBody) -> dict[str, str]:
    """Audited with the reason code and note."""
    require(user, Permission.MANAGE_USERS)
    _service(request).unlock_user(user, name, body.reason_code, body.note)
    return {"detail": f"{name} unlocked"}
