"""The node's logs: text or one JSON object per line, each with the request it belongs to.

What a log line may hold: the time, level, logger, message, request id and an exception's text.
Never a prompt, a key, a token or (unless the operator sets ``LOG_CLIENT_IPS``) a client's address.
The code logs none of them; ``RedactFilter`` masks anything that looks like a key, a Cashu token, an
admin token or a Lightning invoice anyway, in case a message or an exception carries one.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from contextvars import ContextVar
from typing import IO

import orjson

# set by the HTTP middleware for the request being served (each request runs in its own task)
REQUEST_ID: ContextVar[str | None] = ContextVar("routstr_request_id", default=None)
CLIENT_IP: ContextVar[str | None] = ContextVar("routstr_client_ip", default=None)

_client_ips = False  # LOG_CLIENT_IPS: the middleware records the client's address for the log


def client_ips() -> bool:
    return _client_ips


def log_client_ips(on: bool) -> None:
    global _client_ips
    _client_ips = on


_SECRETS = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"(?P<sk>sk-)[A-Za-z0-9_\-]{6,}"  # API keys: ours and providers'
    r"|(?P<cashu>cashu[AB])[A-Za-z0-9_\-+/=]{8,}"  # Cashu tokens, V3 and V4
    r"|(?P<rta>rta-)[A-Za-z0-9_\-]{6,}"  # admin tokens
    r"|(?P<ln>ln(?:bcrt|bc|tbs|tb|sb))[0-9]*[munp]?1[02-9ac-hj-np-z]{20,}"  # bolt11 invoices
    r"|(?P<lnurl>lnurl)1[02-9ac-hj-np-z]{20,}"  # LNURLs (bech32)
    r")",
    re.IGNORECASE,
)


def _mask(m: re.Match[str]) -> str:
    prefix = next(v for v in m.groupdict().values() if v)
    return prefix + "[redacted]"


def redact(text: str) -> str:
    """``sk-abc…`` -> ``sk-[redacted]``, and the same for Cashu tokens, admin tokens, invoices."""
    return _SECRETS.sub(_mask, text) if text else text


class RedactFilter(logging.Filter):
    """Masks secrets in a record's message and exception text (a safety net, see the module doc)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call: the handler reports it, as without this filter
            return True
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class ContextFilter(logging.Filter):
    """Adds the request id (and, if the operator turned it on, the client's address) to a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        record.client_ip = CLIENT_IP.get() if _client_ips else None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id,
    client_ip (only with LOG_CLIENT_IPS), exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            out["request_id"] = request_id
        client_ip = getattr(record, "client_ip", None)
        if client_ip:
            out["client_ip"] = client_ip
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return orjson.dumps(out).decode()


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [request_id=… client_ip=…]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        request_id = getattr(record, "request_id", None)
        if request_id:
            line += f" [request_id={request_id}"
            client_ip = getattr(record, "client_ip", None)
            line += f" client_ip={client_ip}]" if client_ip else "]"
        return line


def _iso(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


def make_handler(fmt: str, stream: IO[str] | None = None) -> logging.Handler:
    """A handler with the node's filters and formatter (``fmt``: text or json)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    return handler


def configure_logging(level: str, fmt: str, with_client_ips: bool) -> None:
    """The process's logging, from LOG_LEVEL, LOG_FORMAT and LOG_CLIENT_IPS (``routstr serve``)."""
    log_client_ips(with_client_ips)
    logging.basicConfig(level=level, handlers=[make_handler(fmt)], force=True)
