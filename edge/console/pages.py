"""The server-rendered pages officers use all shift, and the live event stream behind them.

Every form posts back to the page it came from; a problem re-renders the page with the
message next to the field it concerns (status 422), a success redirects (303) with a notice.
Routes touching SQLite are plain ``def`` (worker threads); only the SSE stream is async, and it
only reads the in-memory feed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from edge.console.errors import FieldErrors, NotFound
from edge.console.feed import FeedEvent, LaneState
from edge.console.latency_chart import build_chart
from edge.console.reasons import REASON_LABELS
from edge.console.security import (
    CSRF_FIELD,
    check_csrf,
    client_address,
    csrf_token,
    require,
    session_user,
    start_session,
)
from edge.console.service import ConsoleService
from edge.console.templating import templates
from edge.console.users import PERMISSIONS, Permission, User

router = APIRouter(include_in_schema=False)

FormStr = Annotated[str, Form(max_length=2000)]


def _service(request: Request) -> ConsoleService:
    service: ConsoleService = request.app.state.service
    return service


def page_user(request: Request) -> User:
    """The session's user; redirect to the login page without one."""
    return session_user(request)


PageUser = Annotated[User, Depends(page_user)]


def render(request: Request, name: str, user: User | None, status: int = 200,
           **context: Any) -> HTMLResponse:
    """A page with the context every page needs (user, permissions, CSRF token, notice)."""
    notice = request.session.pop("notice", None) if user else None
    perms = {p.value for p in PERMISSIONS[user.role]} if user else set()
    return templates.TemplateResponse(
        request, name,
        {"user": user, "perms": perms, "csrf": csrf_token(request), "notice": notice,
         "reasons": REASON_LABELS, "csrf_field": CSRF_FIELD, **context},
        status_code=status)


def _redirect(request: Request, url: str, notice: str | None = None) -> RedirectResponse:
    if notice:
        request.session["notice"] = notice
    return RedirectResponse(url, 303)


def _safe_next(target: str) -> str:
    """Only local paths after login (no open redirect)."""
    ok = target.startswith("/") and not target.startswith(("//", "/\\")) and "\\" not in target
    return target if ok else "/lanes"


# -- login ----------------------------------------------------------------------------------------
@router.get("/login")
def login_page(request: Request, next: Annotated[str, Query(max_length=200)] = "/lanes"
               ) -> HTMLResponse:
    """The login form."""
    return render(request, "login.html", None, next=_safe_next(next), errors={}, username="",
                  insecure=_cookie_refused(request))


def _cookie_refused(request: Request) -> bool:
    """Browsers drop a Secure cookie over plain HTTP except on localhost: say so.

    Otherwise officers would loop back to the login page without a word.
    """
    secure = request.app.state.service.cfg.console.secure_cookies
    local = request.url.hostname in ("localhost", "127.0.0.1", "::1")
    return bool(secure and request.url.scheme == "http" and not local)


@router.post("/login")
def login_submit(request: Request, username: FormStr = "",
                 password: FormStr = "",
                 csrf_token_: Annotated[str, Form(alias=CSRF_FIELD, max_length=200)] = "",
                 next: FormStr = "/lanes") -> Response:
    """Check the password (throttled, audited), start the session."""
    check_csrf(request, csrf_token_)
    errors: dict[str, str] = {}
    if not username.strip():
        errors["username"] = "enter your user name"
    if not password:
        errors["password"] = "enter your password"  # noqa: S105 - a message, not a password
    if errors:
        return render(request, "login.html", None, 422, next=_safe_next(next), errors=errors,
                      username=username)
    service = _service(request)
    client = client_address(request)
    retry = request.app.state.throttle.attempt(client)
    if retry:
        service.login_throttled(username, client)
        return render(request, "login.html", None, 429, next=_safe_next(next), username=username,
                      errors={"form": f"too many login attempts from this terminal; wait "
                                      f"{int(retry)} s"})
    result = service.login(username.strip(), password, client)
    if result.user is None:
        return render(request, "login.html", None, 401, next=_safe_next(next), username=username,
                      errors={"password": result.problem})
    start_session(request, result.user)
    return _redirect(request, _safe_next(next))


@router.post("/logout")
def logout(request: Request, user: PageUser,
           csrf_token_: Annotated[str, Form(alias=CSRF_FIELD, max_length=200)] = "") -> Response:
    """End the session everywhere."""
    check_csrf(request, csrf_token_)
    _service(request).logout(user)
    request.session.clear()
    return RedirectResponse("/login", 303)


# -- lanes and live events ------------------------------------------------------------------------
@router.get("/")
def home() -> RedirectResponse:
    """The lanes page is home."""
    return RedirectResponse("/lanes", 303)


@router.get("/lanes")
def lanes_page(request: Request, user: PageUser) -> HTMLResponse:
    """Live lane cards."""
    require(user, Permission.VIEW_LANES)
    return render(request, "lanes.html", user, lanes=request.app.state.feed.lanes(),
                  pending=len(_service(request).referrals()))


def lane_card(state: LaneState) -> str:
    """The HTML of one lane card, as the page renders it and as SSE sends it."""
    return templates.get_template("_lane.html").render(lane=state)


def _sse(event: FeedEvent) -> ServerSentEvent:
    data: dict[str, Any] = dict(event.data)
    if event.kind == "lane":
        state = LaneState(**{**event.data, "faults": tuple(event.data["faults"]),
                             "reasons": tuple(event.data["reasons"]),
                             "updated_at": _parse(event.data["updated_at"])})
        data = {"lane": state.lane, "html": lane_card(state)}
    return ServerSentEvent(data=json.dumps(data), event=event.kind)


def _parse(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text)


@router.get("/events")
def events(request: Request, user: PageUser) -> EventSourceResponse:
    """Server-Sent Events: lane cards, new passages, health changes."""
    require(user, Permission.VIEW_LANES)
    feed = request.app.state.feed

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async with feed.subscription() as queue:
            yield ServerSentEvent(data="{}", event="hello")
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    continue
                yield _sse(event)

    return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})


# -- passages and referrals -----------------------------------------------------------------------
@router.get("/passages")
def passages_page(request: Request, user: PageUser,
                  lane: Annotated[str | None, Query(max_length=32)] = None) -> HTMLResponse:
    """Recent passages."""
    require(user, Permission.VIEW_PASSAGES)
    return render(request, "passages.html", user,
                  passages=_service(request).passages(lane=lane or None, limit=100), lane=lane)


@router.get("/passages/{passage_id}")
def passage_page(request: Request, user: PageUser, passage_id: str) -> HTMLResponse:
    """One passage: reads, images, manifest, reasons, timeline, and actions if pending."""
    require(user, Permission.VIEW_PASSAGES)
    detail = _service(request).passage_detail(passage_id)
    return render(request, "passage.html", user, errors={}, values={}, **detail)


@router.get("/evidence/{passage_id}/{name}")
def evidence(request: Request, user: PageUser, passage_id: str, name: str) -> FileResponse:
    """An evidence image, only if the passage references it."""
    require(user, Permission.VIEW_PASSAGES)
    service = _service(request)
    path = service.evidence_file(service.passage(passage_id), name)
    if path is None:
        raise NotFound(f"passage {passage_id} has no evidence file {name!r}")
    return FileResponse(path)


@router.get("/referrals")
def referrals_page(request: Request, user: PageUser) -> HTMLResponse:
    """The queue of passages waiting for an officer."""
    require(user, Permission.VIEW_REFERRALS)
    return render(request, "referrals.html", user, referrals=_service(request).referrals(),
                  errors={}, values={}, failed_id=None)


@router.post("/referrals/{passage_id}")
def referral_action(request: Request, user: PageUser, passage_id: str,
                    action: FormStr = "", reason_code: FormStr = "", note: FormStr = "",
                    plate: FormStr = "", declaration_no: FormStr = "",
                    back: FormStr = "/referrals",
                    csrf_token_: Annotated[str, Form(alias=CSRF_FIELD, max_length=200)] = ""
                    ) -> Response:
    """Release, hold, correct plate or enter declaration number (one form, four buttons)."""
    check_csrf(request, csrf_token_)
    service = _service(request)
    values = {"reason_code": reason_code, "note": note, "plate": plate,
              "declaration_no": declaration_no}
    back = back if back in ("/referrals", f"/passages/{passage_id}") else "/referrals"
    if action == "enter":  # Enter pressed in a field: act on what was typed, never release
        typed = [a for a, v in (("plate", plate), ("declaration", declaration_no)) if v.strip()]
        action = typed[0] if len(typed) == 1 else ""
    try:
        if action not in ("release", "hold", "plate", "declaration"):
            raise FieldErrors({"action": "choose Release, Hold, Correct plate or Identify"})
        result = service.act(user, passage_id, action,  # type: ignore[arg-type]
                             reason_code=reason_code, note=note, plate=plate,
                             declaration_no=declaration_no)
    except FieldErrors as exc:
        if back.startswith("/passages/"):
            detail = service.passage_detail(passage_id)
            return render(request, "passage.html", user, 422, errors=exc.errors, values=values,
                          **detail)
        return render(request, "referrals.html", user, 422, referrals=service.referrals(),
                      errors=exc.errors, values=values, failed_id=passage_id)
    return _redirect(request, back, result.message)


# -- manifests, hotlist ---------------------------------------------------------------------------
@router.get("/manifests")
def manifests_page(request: Request, user: PageUser,
                   q: Annotated[str, Query(max_length=64)] = "") -> HTMLResponse:
    """Search declarations in the local cache."""
    require(user, Permission.VIEW_MANIFESTS)
    return render(request, "manifests.html", user, q=q,
                  manifests=_service(request).search_manifests(q))


def _hotlist(request: Request, user: User, status: int = 200, **extra: Any) -> HTMLResponse:
    ctx: dict[str, Any] = {"errors": {}, "values": {}, **extra}
    return render(request, "hotlist.html", user, status, entries=_service(request).hotlist(),
                  **ctx)


@router.get("/hotlist")
def hotlist_page(request: Request, user: PageUser) -> HTMLResponse:
    """The hotlist, with edit forms for supervisors."""
    require(user, Permission.VIEW_HOTLIST)
    return _hotlist(request, user)


@router.post("/hotlist/add")
def hotlist_add(request: Request, user: PageUser, kind: FormStr = "", value: FormStr = "",
                reason: FormStr = "", action: FormStr = "hold", expires_at: FormStr = "",
                reason_code: FormStr = "", note: FormStr = "",
                csrf_token_: Annotated[str, Form(alias=CSRF_FIELD, max_length=200)] = ""
                ) -> Response:
    """Add or update an entry (supervisor)."""
    check_csrf(request, csrf_token_)
    require(user, Permission.EDIT_HOTLIST)
    values = {"kind": kind, "value": value, "reason": reason, "action": action,
              "expires_at": expires_at, "reason_code": reason_code, "note": note}
    try:
        entry = _service(request).hotlist_add(
            user, {"kind": kind, "value": value, "reason": reason, "action": action,
                   "expires_at": expires_at}, reason_code, note)
    except FieldErrors as exc:
        return _hotlist(request, user, 422, errors=exc.errors, values=values)
    return _redirect(request, "/hotlist", f"hotlist: {entry.kind} {entry.value} ({entry.action})")


@router.post("/hotlist/remove")
def hotlist_remove(request: Request, user: PageUser, kind: FormStr = "", value: FormStr = "",
                   reason_code: FormStr = "", note: FormStr = "",
                   csrf_token_: Annotated[str, Form(alias=CSRF_FIELD, max_length=200)] = ""
                   ) -> Response:
    """Remove an entry (supervisor)."""
    check_csrf(request, csrf_token_)
    require(user, Permission.EDIT_HOTLIST)
    try:
        _service(request).hotlist_remove(user, kind, value, reason_code, note)
    except FieldErrors as exc:
        return _hotlist(request, user, 422, remove_errors=exc.errors, remove_key=f"{kind}:{value}")
    return _redirect(request, "/hotlist", f"removed {kind} {value} from the hotlist")


# -- audit, health, API docs ----------------------------------------------------------------------
@router.get("/audit")
def audit_page(request: Request, user: PageUser,
               before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
               subject: Annotated[str | None, Query(max_length=100)] = None,
               verify: Annotated[bool, Query()] = False) -> HTMLResponse:
    """The audit log, newest first, with chain verification for supervisors."""
    require(user, Permission.VIEW_AUDIT)
    service = _service(request)
    check = service.verify_audit(user) if verify else None
    rows = service.audit_rows(before_id=before_id, subject=subject or None, limit=100)
    return render(request, "audit.html", user, rows=rows, check=check, subject=subject or "",
                  next_before=rows[-1].id if len(rows) == 100 else None)


@router.get("/health")
def health_page(request: Request, user: PageUser) -> HTMLResponse:
    """Devices, broker, cache age, outbox depth, and the lane-latency chart."""
    require(user, Permission.VIEW_HEALTH)
    service = _service(request)
    chart = build_chart(request.app.state.metrics, [lane.id for lane in service.cfg.lanes],
                        standalone=request.app.state.metrics_refresh is not None)
    return render(request, "health.html", user, health=service.health(), chart=chart)


@router.get("/api/docs")
def api_docs(request: Request) -> HTMLResponse:
    """The JSON API described from its OpenAPI schema, without any CDN script."""
    schema = request.app.openapi()
    ops = []
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            body = (op.get("requestBody", {}).get("content", {}).get("application/json", {})
                    .get("schema", {}).get("$ref", "").rsplit("/", 1)[-1])
            ops.append({"method": method.upper(), "path": path, "summary": op.get("summary", ""),
                        "description": op.get("description", ""), "body": body,
                        "params": [p for p in op.get("parameters", [])
                                   if p.get("in") in ("query", "path")]})
    return templates.TemplateResponse(
        request, "api_docs.html", {"ops": ops, "schemas": schema.get("components", {})
                                   .get("schemas", {}), "user": None, "perms": set(),
                                   "csrf": "", "notice": None})
