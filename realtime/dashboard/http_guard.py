"""The dashboard's HTTP guard: an ASGI middleware in front of the Gradio app.

* Host check (DNS rebinding): a page on ``evil.example`` whose name an attacker re-points at
  127.0.0.1 reaches a loopback server with ``Host: evil.example``. Requests whose Host is not
  an allowed name are refused with 403 before any route runs. Allowed: the bound address;
  for a loopback bind also ``localhost``, ``127.0.0.1`` and ``::1``; for a wildcard bind
  (``0.0.0.0``, ``::``) any IP literal (a literal address involves no DNS); the names given
  with ``--allowed-host``; with ``--share``, Gradio's share domain.
* Login throttle: after ``max_failures`` failed ``POST /login`` from one client within
  ``window_s``, that client's logins are refused with 429 for ``lockout_s``. The failure
  table is bounded (``max_clients``; the oldest entry goes first).

Times come from `realtime.clock.perf_s`, injectable for tests.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from realtime.clock import perf_s

log = logging.getLogger(__name__)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARD_BINDS = ("0.0.0.0", "::", "")
SHARE_SUFFIX = ".gradio.live"


@dataclass(frozen=True)
class GuardConfig:
    bound_host: str
    allowed_hosts: tuple[str, ...] = ()
    share: bool = False
    max_failures: int = 5
    window_s: float = 60.0
    lockout_s: float = 60.0
    max_clients: int = 1024


def host_name(header: str) -> str:
    """The name part of a Host header, lower case, without port or IPv6 brackets."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header[1:]
    if header.count(":") == 1:
        return header.split(":", 1)[0]
    return header


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(name: str, config: GuardConfig) -> bool:
    bound = config.bound_host.lower()
    allowed = {bound, *(h.lower() for h in config.allowed_hosts)}
    if bound in LOOPBACK_NAMES:
        allowed.update(LOOPBACK_NAMES)
    if name in allowed:
        return True
    if bound in WILDCARD_BINDS and _is_ip(name):
        return True
    return config.share and name.endswith(SHARE_SUFFIX)


class LoginThrottle:
    """Failed logins per client in a sliding window; thread-safe and bounded."""

    def __init__(self, config: GuardConfig, now_s: Callable[[], float] = perf_s) -> None:
        self.config = config
        self._now_s = now_s
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._locked_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self.refused = 0  # logins refused while locked out

    def locked(self, client: str) -> bool:
        with self._lock:
            until = self._locked_until.get(client)
            if until is None:
                return False
            if self._now_s() >= until:
                del self._locked_until[client]
                return False
            self.refused += 1
            return True

    def failed(self, client: str) -> None:
        now = self._now_s()
        with self._lock:
            times = self._failures.pop(client, deque())
            times.append(now)
            while times and now - times[0] > self.config.window_s:
                times.popleft()
            self._failures[client] = times
            while len(self._failures) > self.config.max_clients:
                self._failures.popitem(last=False)
            if len(times) >= self.config.max_failures:
                self._locked_until[client] = now + self.config.lockout_s
                times.clear()
                log.warning("%d failed logins from %s: locked out for %.0f s",
                            self.config.max_failures, client, self.config.lockout_s)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


class HttpGuard:
    """ASGI middleware: the Host check and the login throttle (see the module doc)."""

    def __init__(self, app, config: GuardConfig, throttle: LoginThrottle | None = None) -> None:
        self.app = app
        self.config = config
        self.throttle = throttle or LoginThrottle(config)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        name = host_name(_header(scope, b"host"))
        if not host_allowed(name, self.config):
            log.warning("refused a request for Host %r (not an allowed host)", name)
            return await _refuse(scope, send, 403, "Host not allowed. Start the dashboard "
                                 "with --allowed-host NAME to allow it.")
        if scope["type"] == "http" and scope.get("method") == "POST" and (
                scope.get("path", "").rstrip("/").endswith("/login")):
            return await self._login(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _login(self, scope, receive, send) -> None:
        client = (scope.get("client") or ("?", 0))[0]
        if self.throttle.locked(client):
            return await _refuse(scope, send, 429, "Too many failed logins; try again later.")
        status = {}

        async def watch(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        if status.get("code") == 200:
            self.throttle.succeeded(client)
        else:
            self.throttle.failed(client)


def _header(scope, key: bytes) -> str:
    for k, v in scope.get("headers") or ():
        if k.lower() == key:
            return v.decode("latin-1")
    return ""


async def _refuse(scope, send, code: int, text: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = text.encode()
    await send({"type": "http.response.start", "status": code,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def middleware(config: GuardConfig) -> Iterable:
    """For ``launch(app_kwargs={"middleware": middleware(config)})``."""
    from starlette.middleware import Middleware

    return [Middleware(HttpGuard, config=config)]
