"""Fault injection and the rate limiter.

Faults are kept in memory (per process): run the emulator with one gunicorn worker (threads are
fine) when tests drive it over HTTP. API faults apply to the next N calls under /v1 that match
an optional method and path prefix:

    error        answer with a 5xx (default 500) and the endpoint's "Downstream system error" code
    unavailable  503 P0999, as when GOV.UK Pay is down
    blocked      400 P0920, as when the firewall blocks a request
    timeout      sleep `seconds` (default settings.fault_timeout_seconds) before answering;
                 process=False drops the connection after the sleep instead of answering
    drop         close the connection without an answer; process=True does the work first
                 (the payment is created, the client never hears about it)
    respond      answer `status` with {"code", "description"} of your choosing (e.g. 403 P0941)

Card faults apply to the hosted pages: `card_error` makes the next card payment end in
`error P0050`; `payer_never_returns` makes the next Confirm finish the payment but show a
plain page instead of redirecting to return_url.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass

API_FAULTS = ("error", "unavailable", "blocked", "timeout", "drop", "respond")
CARD_FAULTS = ("card_error", "payer_never_returns")


@dataclass
class Fault:
    kind: str
    count: int = 1
    status: int | None = None
    seconds: float | None = None
    method: str | None = None
    path: str | None = None
    process: bool | None = None
    code: str | None = None
    description: str | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return not self.path or path.startswith(self.path)


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._api: list[Fault] = []
        self._card: dict[str, int] = dict.fromkeys(CARD_FAULTS, 0)

    def add(self, kind: str, count: int = 1, **options) -> Fault | None:
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            if kind in CARD_FAULTS:
                if options:
                    raise ValueError(f"{kind} takes no options")
                self._card[kind] += count
                return None
            if kind not in API_FAULTS:
                raise ValueError(f"unknown fault {kind!r}: one of {', '.join(API_FAULTS + CARD_FAULTS)}")
            status = options.get("status")
            if status is not None and kind == "error" and not 500 <= int(status) <= 599:
                raise ValueError("an error fault's status must be 5xx")
            if kind == "respond" and not (status and options.get("code")):
                raise ValueError("a respond fault needs a status and a code")
            fault = Fault(kind=kind, count=count, **options)
            self._api.append(fault)
            return fault

    def take_api(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._api:
                if fault.matches(method, path):
                    fault.count -= 1
                    if fault.count == 0:
                        self._api.remove(fault)
                    return Fault(**{**asdict(fault), "count": 1})
            return None

    def take_card(self, kind: str) -> bool:
        with self._lock:
            if self._card[kind] > 0:
                self._card[kind] -= 1
                return True
            return False

    def pending(self) -> dict:
        with self._lock:
            return {"api": [asdict(f) for f in self._api], "card": dict(self._card)}

    def clear(self) -> None:
        with self._lock:
            self._api.clear()
            self._card = dict.fromkeys(CARD_FAULTS, 0)


class RateLimiter:
    """GOV.UK Pay's published limits: N POSTs per key per second, counted per class (create, capture, other).

    Counted on the real monotonic clock, not the emulator's clock: a test clock that stands still
    would otherwise turn the limit into a lifetime quota.
    """

    def __init__(self, per_second: int, timer=time.monotonic) -> None:
        self.per_second = per_second
        self._timer = timer
        self._lock = threading.Lock()
        self._calls: dict[tuple[str, str], deque[float]] = {}

    def allow(self, api_key: str, kind: str) -> bool:
        if self.per_second <= 0:
            return True
        now = self._timer()
        with self._lock:
            calls = self._calls.setdefault((api_key, kind), deque())
            while calls and calls[0] <= now - 1.0:
                calls.popleft()
            if len(calls) >= self.per_second:
                return False
            calls.append(now)
            return True

    def reset(self, per_second: int | None = None) -> None:
        with self._lock:
            self._calls.clear()
            if per_second is not None:
                self.per_second = per_second
