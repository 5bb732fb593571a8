"""What a ``POST /recommend`` body may hold, and the errors that say what is wrong with it.

Every limit bounds the memory and time one request can take: the body's bytes (the JSON
parser's memory), histories per request and items per history (the scoring work and the
exclusion of history items), and k and histories x k (the answer's size).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus


@dataclass(frozen=True)
class Limits:
    """Largest request the service accepts; larger ones are refused with a 413 or 400."""

    body_bytes: int = 1 << 20
    histories: int = 256
    items_per_history: int = 10_000
    k: int = 1000
    answer_items: int = 32_768  # histories x k: the answer's size, which JSON encodes


class RequestError(Exception):
    """A request the service refuses: an HTTP status and a message for the client."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Query:
    """One parsed request: histories of item ids (strings), k, and whether to leave out the
    history's items."""

    histories: list[list[str]]
    k: int
    exclude_history: bool = True


def check_content_length(header: str | None, limits: Limits) -> int | None:
    """The declared body size, refused before reading a byte if it cannot be within limits."""
    if header is None:
        return None
    if not header.strip().isdigit():
        raise RequestError(HTTPStatus.BAD_REQUEST, f"Content-Length must be a number, got "
                                                   f"{header[:40]!r}")
    if len(header.strip()) > 20 or int(header) > limits.body_bytes:
        raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"the body may hold at most {limits.body_bytes} bytes")
    return int(header)


def parse_body(body: bytes, limits: Limits, default_k: int) -> Query:
    """Decode a JSON body and check it with :func:`parse_request`."""
    if len(body) > limits.body_bytes:
        raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"the body may hold at most {limits.body_bytes} bytes")
    try:
        payload = json.loads(body or b"null")
    except RecursionError:  # the parser recurses once per nesting level
        raise RequestError(HTTPStatus.BAD_REQUEST, "the JSON is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"the body is not JSON: {e}") from None
    try:
        return parse_request(payload, default_k, limits)
    except ValueError as e:
        raise RequestError(HTTPStatus.BAD_REQUEST, str(e)) from None


def parse_request(payload: object, default_k: int, limits: Limits | None = None) -> Query:
    """``{"history": [...]}`` or ``{"histories": [[...], ...]}``, optional ``k`` and
    ``exclude_history``; a ValueError names what is wrong."""
    limits = limits or Limits()
    if not isinstance(payload, dict):
        raise ValueError("the request must be a JSON object")
    if ("history" in payload) == ("histories" in payload):
        raise ValueError('give exactly one of "history" (a list of item ids) or "histories"')
    histories = [payload["history"]] if "history" in payload else payload["histories"]
    if not isinstance(histories, list) or not all(isinstance(h, list) for h in histories):
        raise ValueError('"history" must be a list of item ids ("histories" a list of those)')
    if len(histories) > limits.histories:
        raise ValueError(f"at most {limits.histories} histories per request, got "
                         f"{len(histories)}")
    for n, history in enumerate(histories):
        if len(history) > limits.items_per_history:
            raise ValueError(f"history {n}: at most {limits.items_per_history} items, got "
                             f"{len(history)}")
        if not all(isinstance(i, (str, int)) and not isinstance(i, bool) for i in history):
            raise ValueError(f"history {n}: item ids must be strings or integers")
    k = payload.get("k", default_k)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= limits.k:
        raise ValueError(f'"k" must be an integer from 1 to {limits.k}, got {k!r}')
    if len(histories) * k > limits.answer_items:
        raise ValueError(f"histories x k may be at most {limits.answer_items}, got "
                         f"{len(histories)} x {k}")
    exclude = payload.get("exclude_history", True)
    if not isinstance(exclude, bool):
        raise ValueError(f'"exclude_history" must be true or false, got {exclude!r}')
    return Query([[str(i) for i in h] for h in histories], k, exclude)
