"""Cross-cutting HTTP behaviour: request ids, the error envelope, gzip.

Each is a thin aiohttp middleware or signal; none of them knows about money. A request aiohttp
cannot parse (a header or the request line past its size limit, too many headers, bytes that are not
HTTP) never reaches a middleware: :func:`envelope_parse_errors` gives its 400 the envelope too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

import orjson
from aiohttp import web

from routstr.api.responses import ROUTSTR_REQUEST_ID, error_response
from routstr.core.errors import ApiError, InternalError, InvalidRequest, NotFound, PayloadTooLarge
from routstr.core.ids import time_ordered_id
from routstr.logs import CLIENT_IP, client_ips
from routstr.logs import REQUEST_ID as LOG_REQUEST_ID
from routstr.metrics.counters import METRICS, route_name
from routstr.metrics.trace import TRACE, Trace

_UNPARSED: object | None  # the message aiohttp makes up for a request it could not parse
try:
    from aiohttp.web_protocol import ERROR as _UNPARSED
except ImportError:  # pragma: no cover - another aiohttp: its plain-text 400 stays
    _UNPARSED = None

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
GZIP_MIN_BYTES = 1024
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)
# The node's own id for the request's ledger entries: X-Request-ID is the client's and may repeat.
LEDGER_REF: web.RequestKey[str] = web.RequestKey("ledger_ref", str)
_REQUEST_ID_MAX = 128


def _http_error(e: web.HTTPException) -> ApiError:
    if e.status == 404:
        return NotFound("Not found: no such endpoint")
    if e.status == 413:
        return PayloadTooLarge("Request body is too large")
    if e.status == 405:
        return InvalidRequest("Method not allowed for this endpoint", status=405, code="method_not_allowed")
    return ApiError(e.reason or "HTTP error", status=e.status, code=f"http_{e.status}")


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id (the client's X-Request-ID, or a new one, also for its log lines;
    answered as X-Request-ID and x-routstr-request-id),
    the error envelope, and its metrics; billed endpoints' answers get X-Routstr-Overhead-Ms."""
    trace = Trace()
    request[TRACE] = trace
    ref = time_ordered_id()
    rid = request.headers.get("X-Request-ID", "")
    if not rid or len(rid) > _REQUEST_ID_MAX or not rid.isprintable():
        rid = ref
    request[REQUEST_ID] = rid
    request[LEDGER_REF] = ref
    LOG_REQUEST_ID.set(rid)
    if client_ips():
        CLIENT_IP.set(request.remote)
    try:
        _check_headers(request)
        resp = await handler(request)
    except ApiError as e:
        resp = error_response(e, rid)
    except web.HTTPException as e:
        if e.status < 400:  # a redirect: aiohttp answers it, with the ids too
            e.headers.setdefault("X-Request-ID", rid)
            e.headers.setdefault(ROUTSTR_REQUEST_ID, rid)
            raise
        resp = error_response(_http_error(e), rid)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, route_name(request))
        resp = error_response(InternalError("Internal server error"), rid)
    if not resp.prepared:  # a stream sent its own (routstr.billing.relay)
        resp.headers.setdefault("X-Request-ID", rid)
        resp.headers.setdefault(ROUTSTR_REQUEST_ID, rid)
        if trace.endpoint:  # a billed endpoint: the node's time, until the answer is ready
            trace.stamp(resp.headers)
        _maybe_gzip(request, resp)
    endpoint = trace.endpoint or route_name(request)
    elapsed = perf_counter() - trace.start
    metrics = request.app.get(METRICS)
    if metrics is not None:
        metrics.answered(trace, endpoint, resp.status, elapsed)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s %s answered %d in %.2f ms", request.method, endpoint, resp.status, elapsed * 1000)
    return resp


def _check_headers(request: web.Request) -> None:
    """400 for a header that is not UTF-8: aiohttp keeps its bytes as lone surrogates, which no
    string operation further in expects (encoding a key to hash it would raise, a 500)."""
    if "".join(request.headers.values()).isascii():  # nearly always: one pass in C
        return
    for name, value in request.headers.items():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise InvalidRequest(
                f"The {name[:40]!r} header is not valid UTF-8",
                code="invalid_header",
                details={"param": name[:40]},
            ) from None


def _maybe_gzip(request: web.Request, response: web.StreamResponse) -> None:
    """gzip complete responses over 1 KB when the client accepts it; never event streams."""
    if not isinstance(response, web.Response) or "Content-Encoding" in response.headers:
        return
    body = response.body
    if not isinstance(body, bytes | bytearray) or len(body) < GZIP_MIN_BYTES:
        return
    if response.content_type != "text/event-stream" and "gzip" in request.headers.get("Accept-Encoding", ""):
        response.enable_compression(web.ContentCoding.gzip)


class _UnparsedRequest(web.Request):
    """Stands for a request aiohttp could not parse: its plain-text 400 becomes the envelope just
    before the headers go out (the one moment aiohttp lets the node touch that answer)."""

    async def _prepare_hook(self, response: web.StreamResponse) -> None:
        await super()._prepare_hook(response)
        if not isinstance(response, web.Response) or response.status < 400:
            return
        text = response.text or ""
        if "more than" in text or "Too many headers" in text:
            err = InvalidRequest(
                "The request line or its headers are too large for this node", code="header_too_large"
            )
        else:
            err = InvalidRequest("The request is not valid HTTP", code="malformed_request")
        err.status = response.status
        body = orjson.dumps(err.envelope())
        response.body = body
        response.content_type = "application/json"
        response.headers["Content-Length"] = str(len(body))  # set before this hook ran
        response.headers["X-Request-ID"] = response.headers[ROUTSTR_REQUEST_ID] = time_ordered_id()


def envelope_parse_errors(app: web.Application) -> None:
    """Make aiohttp's answer to an unparsable request use the envelope. aiohttp has no public hook
    for it: the app's request factory is wrapped so that this one request is an ``_UnparsedRequest``
    (every other request costs one identity check)."""
    if _UNPARSED is None:
        return
    make = app._make_request

    def factory(
        message: Any, payload: Any, protocol: Any, writer: Any, task: Any, _cls: Any = web.Request
    ) -> Any:
        cls = _UnparsedRequest if message is _UNPARSED else _cls
        return make(message, payload, protocol, writer, task, cls)

    app._make_request = factory  # type: ignore[method-assign]
