"""One-shot open tokens: the only way a decision from gate-edge can raise the arm.

A token is a random string gate-edge puts in an ``open`` decision, bound there to the vehicle's
presence ``event_id`` and its passage. The controller accepts each token once, only while it is
fresh, and never one issued before this process started (the memory of used tokens does not
survive a restart, so older tokens cannot be trusted not to have been used already).
"""

from __future__ import annotations

import re

from gate_controller.signals import Rejected

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
#: tokens stamped further ahead than this (seconds, wall clock) are refused as forged/skewed
TOKEN_MAX_FUTURE_S = 5.0
#: how many used tokens are remembered (oldest forgotten first)
USED_TOKENS_KEPT = 100_000


class TokenBook:
    """Checks and burns tokens; not thread-safe (owned by the lane)."""

    def __init__(self, ttl_s: float, started_wall: float,
                 started_mono: float | None = None) -> None:
        self.ttl_s = ttl_s
        self.started_wall = started_wall
        self.started_mono = started_mono
        self._used: dict[str, float] = {}

    def consume(self, wall: float, token: str | None, issued: float | None,
                now: float | None = None) -> str:
        """Burn ``token`` and return it if it may open; raise Rejected with the reason if not.

        The token is burnt as soon as its format is valid, even when refused for another
        reason, so a token can never be presented twice. ``now`` is the monotonic clock: with
        it, "issued before this controller started" is judged against the start as the wall
        clock reads it now (``wall`` minus the monotonic time since), so a clock stepped back
        after the start (chrony correcting a fast RTC at boot, an operator's ``date -s``) does
        not make every later token look older than the process. The wall clock alone would
        refuse every automatic opening until the controller restarts.
        """
        if token is None or not TOKEN_RE.match(token):
            raise Rejected("bad_token", "an open decision needs a token of 16-128 [A-Za-z0-9_-]")
        if issued is None:
            raise Rejected("bad_token", "an open decision needs issued_at (unix seconds)")
        # Remembered by value, not until some expiry: a used token re-sent later with a new
        # issued_at must still be refused. Bounded: at 2,500 trucks a day this is weeks.
        if token in self._used:
            raise Rejected("token_reused", "this token was already presented once")
        self._used[token] = wall
        while len(self._used) > USED_TOKENS_KEPT:
            self._used.pop(next(iter(self._used)))
        if issued > wall + TOKEN_MAX_FUTURE_S:
            raise Rejected("token_from_future", f"issued_at is {issued - wall:.1f} s ahead")
        if wall - issued > self.ttl_s:
            raise Rejected("token_expired",
                           f"token is {wall - issued:.1f} s old (ttl {self.ttl_s} s)")
        started = self.started_wall
        if now is not None and self.started_mono is not None:
            started = wall - (now - self.started_mono)
        if issued < started - TOKEN_MAX_FUTURE_S:
            raise Rejected("token_before_start", "token issued before this controller started")
        return token
