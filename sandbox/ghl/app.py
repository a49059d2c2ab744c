"""HTTP face of the HighLevel (GHL) API v2 simulator: the contacts routes on ``create_app(state)``,
plus their tasks, notes and appointments, the location task search, and the calendars with their events.

Owns everything that is HTTP: the gateway checks every API request passes in order (bearer token ->
rate limit -> ``Version`` header -> route -> scope -> location -> body validation), the five
``X-RateLimit-*`` headers and ``x-trace-id`` on every response, status codes, and the NestJS-style
error bodies that replace every FastAPI default (no ``{"detail": ...}`` ever leaves), and the
form-encoded ``POST /oauth/token`` (outside the gateway: no bearer, Version or rate limit). The
fault layer (``sandbox/faults.py``) sits between the request log and the gateway. Data rules live
in ``GhlState`` (``state.py`` and the per-concern modules it composes). The ``/_sim`` admin
endpoints (no auth, no rate limit, not logged) let tests and the sandbox seed, inspect and
reconfigure a running simulator. See ``BEHAVIOR.md``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.common import install_request_log
from sandbox.faults import install_faults, status_phrase
from sandbox.ghl.state import PUBLISHED_VERSIONS, ApiError, GhlState, Token, unprocessable

TRACE_HEADER = "x-trace-id"
TOKEN_PATH = "/oauth/token"
# Paging cursors a `repeat_page` fault removes: GET /contacts/ and the business listing (query),
# POST /contacts/search and the task search (body).
CURSOR_QUERY = ("startAfter", "startAfterId", "skip")
CURSOR_BODY = ("searchAfter", "page", "skip")
# Default messages of injected `status` faults (the live 429 text is undocumented, §9.4).
FAULT_MESSAGES = {429: "Too Many Requests", 500: "Internal server error"}
READ = "contacts.readonly"
WRITE = "contacts.write"
TASKS_SEARCH = "locations/tasks.readonly"
LOCATIONS_READ = "locations.readonly"
CALENDARS_READ = "calendars.readonly"
EVENTS_READ = "calendars/events.readonly"
EVENTS_WRITE = "calendars/events.write"


def _error(status: int, message: str | list[str], **extra: Any) -> JSONResponse:
    return JSONResponse({"statusCode": status, "message": message, **extra}, status_code=status)


async def _json_body(request: Request) -> dict:
    """The request's JSON object (``{}`` when empty), or a GHL 400/422."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, f"Unexpected token in JSON at position {getattr(exc, 'pos', 0)}") from exc
    if not isinstance(body, dict):
        raise unprocessable("request body must be a JSON object")
    return body


def _guard(request: Request, scope: str, location_id: Any = None) -> Token:
    """Scope first (401), then location (403): the order the live API checks them in."""
    token: Token = request.state.token
    if scope not in token.scopes:
        raise ApiError(401, "The token is not authorized for this scope.")
    if isinstance(location_id, str) and location_id and location_id != token.location_id:
        raise ApiError(403, "The token does not have access to this location.")
    return token


def _int_query(request: Request, name: str, default: int, *, lo: int, hi: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise unprocessable(f"{name} must be a number conforming to the specified constraints") from None
    if not value.is_integer():
        raise unprocessable(f"{name} must be an integer number")
    if value < lo:
        raise unprocessable(f"{name} must not be less than {lo}")
    if hi is not None and value > hi:
        raise unprocessable(f"{name} must not be greater than {hi}")
    return int(value)


class _ErrorBodies:
    """Dresses the JSON error answers (4xx/5xx) of API routes per ``state.error_body_style``.

    Sits outside the fault layer, so injected statuses are dressed too; ``/_sim`` answers never
    are. With the documented style (the default) it passes everything through untouched.
    """

    def __init__(self, app: ASGIApp, state: GhlState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sim") or self.state.error_body_style == "documented":
            await self.app(scope, receive, send)
            return
        start: Message | None = None  # an error answer's held start message
        chunks: list[bytes] = []

        async def dress(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            headers, body = self._dressed(start["headers"], b"".join(chunks))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, dress)

    def _dressed(self, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
        """The answer's headers and body, the body re-dressed when it is a GHL error DTO."""
        media = dict(headers).get(b"content-type", b"").split(b";")[0].strip()
        if media != b"application/json":
            return headers, body
        try:
            doc = json.loads(body)
        except ValueError:
            return headers, body  # e.g. a truncated body (fault): left as it is
        if not (isinstance(doc, dict) and "statusCode" in doc and "message" in doc):
            return headers, body
        body = JSONResponse(self.state.error_body(doc)).body
        headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        return headers, body


def create_app(state: GhlState) -> FastAPI:
    """Build the simulator app around ``state`` (which tests may also use directly)."""
    app = FastAPI(title="HighLevel API v2 simulator", docs_url=None, redoc_url=None, openapi_url=None)
    # `/contacts` and `/contacts/` are both routed explicitly; a 307 redirect would break POSTs.
    app.router.redirect_slashes = False

    # ---- errors: never a FastAPI-shaped body ------------------------------------------------------

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code in (404, 405):  # NestJS answers an unknown method+path pair with 404
            return _error(404, f"Cannot {request.method} {request.url.path}")
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        messages = [
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:])} {e.get('msg', '')}".strip() for e in exc.errors()
        ]
        return _error(422, messages or ["Unprocessable Entity"], error="Unprocessable Entity")

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, "Internal server error", error="Internal Server Error")

    # ---- gateway: token, rate limit, version, headers ---------------------------------------------

    @app.middleware("http")
    async def _gateway(request: Request, call_next) -> Response:
        if request.url.path.startswith("/_sim"):
            return await call_next(request)
        trace_id = str(uuid.uuid4())
        request.state.trace_id = trace_id
        if request.url.path == TOKEN_PATH:  # credentials are in the form body; no Version (§1.1)
            response = await call_next(request)
            response.headers[TRACE_HEADER] = trace_id
            return response
        auth = request.headers.get("authorization", "")
        scheme, _, credential = auth.partition(" ")
        token = state.resolve_token(credential.strip()) if scheme.lower() == "bearer" else None
        decision = state.hit(token)
        if token is None:
            response: Response = _error(401, "Invalid JWT")
        elif not decision.allowed:
            response = _error(429, "Too Many Requests")
            if state.send_retry_after and decision.retry_after is not None:
                response.headers["Retry-After"] = str(decision.retry_after)
        elif "version" not in request.headers:
            response = _error(401, "version header was not found.")
        elif request.headers["version"] not in PUBLISHED_VERSIONS:
            response = _error(401, "version header is invalid")
        else:
            request.state.token = token
            response = await call_next(request)
        response.headers.update(decision.headers)
        response.headers[TRACE_HEADER] = trace_id
        return response

    def _fault_error(status: int, message: str | None) -> Response:
        response = _error(status, message or FAULT_MESSAGES.get(status) or status_phrase(status))
        response.headers[TRACE_HEADER] = str(uuid.uuid4())
        return response

    # Added after the gateway so they wrap it: faults answer before auth and the rate limiter, error
    # bodies are dressed (error_body_style) outside the faults, so injected statuses are too, and the
    # log (outermost) records 401/429 and faulted answers alike, all after `latency_s`.
    install_faults(app, state.faults, _fault_error, cursor_query=CURSOR_QUERY, cursor_body=CURSOR_BODY)
    app.add_middleware(_ErrorBodies, state=state)
    install_request_log(app, state.request_log, lambda: state.latency_s)

    # ---- OAuth (§1.2; oauth.json) -----------------------------------------------------------------

    @app.post(TOKEN_PATH)
    async def oauth_token(request: Request) -> JSONResponse:
        # Form-encoded only (the spec's one media type); a JSON body therefore misses every field (422).
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        raw = (await request.body()).decode("utf-8", "replace")
        form = dict(parse_qsl(raw, keep_blank_values=True)) if media == "application/x-www-form-urlencoded" else {}
        return JSONResponse(state.oauth_token(form))

    # ---- contacts ---------------------------------------------------------------------------------

    @app.post("/contacts/search")
    async def search_contacts(request: Request) -> JSONResponse:
        _guard(request, READ)
        body = await _json_body(request)
        _guard(request, READ, body.get("locationId"))
        return JSONResponse(state.search(state.parse_search(body)))

    @app.get("/contacts/search/duplicate")
    async def search_duplicate(request: Request) -> JSONResponse:
        _guard(request, READ)
        q = request.query_params
        location_id = q.get("locationId")
        _guard(request, READ, location_id)
        if not location_id:
            raise unprocessable("locationId should not be empty")
        dup = state.find_duplicate(location_id, q.get("email") or None, q.get("number") or None)
        return JSONResponse({"contact": dict(dup[0]) if dup else None})

    @app.get("/contacts/")
    @app.get("/contacts", include_in_schema=False)
    async def list_contacts(request: Request) -> JSONResponse:
        _guard(request, READ)
        q = request.query_params
        location_id = q.get("locationId")
        _guard(request, READ, location_id)
        if not location_id:
            raise unprocessable("locationId should not be empty", "locationId must be a string")
        limit = _int_query(request, "limit", 20, lo=1, hi=100)
        start_after = _int_query(request, "startAfter", -1, lo=0) if q.get("startAfter") else None
        start_after_id = q.get("startAfterId") or None
        query = q.get("query") or None
        page = state.list_contacts(
            location_id, limit=limit, start_after=start_after, start_after_id=start_after_id, query=query
        )
        current = page["position"] // limit + 1
        meta: dict[str, Any] = {
            "total": page["total"],
            "nextPageUrl": None,
            "startAfterId": None,
            "startAfter": None,
            "currentPage": current,
            "nextPage": None,
            "prevPage": current - 1 if current > 1 else None,
        }
        if page["last"] is not None:
            meta["startAfter"], meta["startAfterId"] = page["last"]
        if page["more"]:
            params = {"locationId": location_id, "startAfter": meta["startAfter"], "startAfterId": meta["startAfterId"]}
            if "limit" in q:
                params["limit"] = limit
            if query:
                params["query"] = query
            meta["nextPageUrl"] = f"{str(request.base_url).rstrip('/')}/contacts/?{urlencode(params)}"
            meta["nextPage"] = current + 1
        return JSONResponse({"contacts": page["contacts"], "count": page["total"], "meta": meta})

    @app.post("/contacts/")
    @app.post("/contacts", include_in_schema=False)
    async def create_contact(request: Request) -> JSONResponse:
        _guard(request, WRITE)
        body = await _json_body(request)
        _guard(request, WRITE, body.get("locationId"))
        contact = state.create_contact(body)
        # The create response (CreateContactSchema) shows dateOfBirth as a timestamp; reads show a date.
        if contact.get("dateOfBirth"):
            contact["dateOfBirth"] = f"{contact['dateOfBirth']}T00:00:00.000Z"
        return JSONResponse({"contact": contact}, status_code=201)

    @app.post("/contacts/upsert")
    async def upsert_contact(request: Request) -> JSONResponse:
        _guard(request, WRITE)
        body = await _json_body(request)
        _guard(request, WRITE, body.get("locationId"))
        new, contact = state.upsert_contact(body)
        return JSONResponse({"new": new, "contact": contact, "traceId": request.state.trace_id})

    @app.get("/contacts/business/{business_id}")
    async def business_contacts(request: Request, business_id: str) -> JSONResponse:
        _guard(request, READ)
        location_id = request.query_params.get("locationId")
        _guard(request, READ, location_id)
        if not location_id:
            raise unprocessable("locationId should not be empty", "locationId must be a string")
        limit = _int_query(request, "limit", 25, lo=1, hi=100)
        skip = _int_query(request, "skip", 0, lo=0)
        query = request.query_params.get("query") or None
        return JSONResponse(state.business_contacts(business_id, location_id, limit=limit, skip=skip, query=query))

    @app.get("/contacts/{contact_id}")
    async def get_contact(request: Request, contact_id: str) -> JSONResponse:
        token = _guard(request, READ)
        return JSONResponse({"contact": state.get_contact(contact_id, token.location_id)})

    @app.put("/contacts/{contact_id}")
    async def update_contact(request: Request, contact_id: str) -> JSONResponse:
        token = _guard(request, WRITE)
        body = await _json_body(request)
        contact = state.update_contact(contact_id, body, token.location_id)
        return JSONResponse({"succeded": True, "contact": contact})

    @app.delete("/contacts/{contact_id}")
    async def delete_contact(request: Request, contact_id: str) -> JSONResponse:
        token = _guard(request, WRITE)
        state.delete_contact(contact_id, token.location_id)
        return JSONResponse({"succeded": True})

    async def _tags_body(request: Request) -> list[str]:
        body = await _json_body(request)
        errors = [f"property {k} should not exist" for k in body if k != "tags"]
        tags = body.get("tags")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            errors += ["tags must be an array", "each value in tags must be a string"]
        if errors:
            raise unprocessable(*errors)
        return tags

    @app.post("/contacts/{contact_id}/tags")
    async def add_tags(request: Request, contact_id: str) -> JSONResponse:
        token = _guard(request, WRITE)
        tags = await _tags_body(request)
        return JSONResponse({"tags": state.change_tags(contact_id, tags, add=True, location_id=token.location_id)}, 201)

    @app.delete("/contacts/{contact_id}/tags")
    async def remove_tags(request: Request, contact_id: str) -> JSONResponse:
        token = _guard(request, WRITE)
        tags = await _tags_body(request)
        return JSONResponse({"tags": state.change_tags(contact_id, tags, add=False, location_id=token.location_id)})

    # ---- tasks (contacts.json; Version 2021-07-28) ------------------------------------------------

    @app.get("/contacts/{contact_id}/tasks")
    async def list_tasks(request: Request, contact_id: str) -> JSONResponse:
        token = _guard(request, READ)
        return JSONResponse({"tasks": state.list_tasks(contact_id, token.location_id)})

    @app.post("/contacts/{contact_id}/tasks")
    async def create_task(request: Request, contact_id: str) -> JSONResponse:
        token = _guard(request, WRITE)
        body = await _json_body(request)
        return JSONResponse({"task": state.create_task(contact_id, body, token.location_id)}, status_code=201)

    @app.get("/contacts/{contact_id}/tasks/{task_id}")
    async def get_task(request: Request, contact_id: str, task_id: str) -> JSONResponse:
        token = _guard(request, READ)
        return JSONResponse({"task": state.get_task(contact_id, task_id, token.location_id)})

    @app.put("/contacts/{contact_id}/tasks/{task_id}")
    async def update_task(request: Request, contact_id: str, task_id: str) -> JSONResponse:
        token = _guard(request, WRITE)
        body = await _json_body(request)
        return JSONResponse({"task": state.update_task(contact_id, task_id, body, token.location_id)})

    @app.put("/contacts/{contact_id}/tasks/{task_id}/completed")
    async def complete_task(request: Request, contact_id: str, task_id: str) -> JSONResponse:
        token = _guard(request, WRITE)
        body = await _json_body(request)
        return JSONResponse({"task": state.complete_task(contact_id, task_id, body, token.location_id)})

    @app.delete("/contacts/{contact_id}/tasks/{task_id}")
    async def delete_task(request: Request, contact_id: str, task_id: str) -> JSONResponse:
        token = _guard(request, WRITE)
        state.delete_task(contact_id, task_id, token.location_id)
        return JSONResponse({"succeded": True})

    @app.get("/locations/{location_id}")
    async def get_location(request: Request, location_id: str) -> JSONResponse:
        """``GET /locations/{locationId}`` (GetLocationByIdSuccessfulResponseDto), with the time zone."""
        _guard(request, LOCATIONS_READ, location_id)
        return JSONResponse({"location": state.location(location_id)})

    @app.post("/locations/{location_id}/tasks/search")
    async def search_tasks(request: Request, location_id: str) -> JSONResponse:
        _guard(request, TASKS_SEARCH, location_id)
        body = await _json_body(request)
        return JSONResponse(state.search_tasks(location_id, body))

    # ---- notes (contacts.json; Version 2021-07-28) ------------------------------------------------

    @app.get("/contacts/{contact_id}/notes")
    async def list_notes(request: Request, contact_id: str) -> JSONResponse:
        token = _guard(request, READ)
        return JSONResponse({"notes": state.list_notes(contact_id, token.location_id)})

    @app.post("/contacts/{contact_id}/notes")
    async def create_note(request: Request, contact_id: str) -> JSONResponse:
        token = _guard(request, WRITE)
        body = await _json_body(request)
        return JSONResponse({"note": state.create_note(contact_id, body, token.location_id)}, status_code=201)

    @app.get("/contacts/{contact_id}/notes/{note_id}")
    async def get_note(request: Request, contact_id: str, note_id: str) -> JSONResponse:
        token = _guard(request, READ)
        return JSONResponse({"note": state.get_note(contact_id, note_id, token.location_id)})

    @app.put("/contacts/{contact_id}/notes/{note_id}")
    async def update_note(request: Request, contact_id: str, note_id: str) -> JSONResponse:
        token = _guard(request, WRITE)
        body = await _json_body(request)
        return JSONResponse({"note": state.update_note(contact_id, note_id, body, token.location_id)})

    @app.delete("/contacts/{contact_id}/notes/{note_id}")
    async def delete_note(request: Request, contact_id: str, note_id: str) -> JSONResponse:
        token = _guard(request, WRITE)
        state.delete_note(contact_id, note_id, token.location_id)
        return JSONResponse({"succeded": True})

    # ---- appointments of a contact (contacts.json) and calendars (calendars.json; 2021-04-15) -----

    @app.get("/contacts/{contact_id}/appointments")
    async def contact_appointments(request: Request, contact_id: str) -> JSONResponse:
        token = _guard(request, READ)
        return JSONResponse({"events": state.contact_appointments(contact_id, token.location_id)})

    @app.get("/calendars/")
    @app.get("/calendars", include_in_schema=False)
    async def list_calendars(request: Request) -> JSONResponse:
        _guard(request, CALENDARS_READ)
        q = request.query_params
        location_id = q.get("locationId")
        _guard(request, CALENDARS_READ, location_id)
        errors = [] if location_id else ["locationId should not be empty", "locationId must be a string"]
        drafted = q.get("showDrafted", "true").lower()
        if drafted not in ("true", "false"):
            errors.append("showDrafted must be a boolean value")
        if errors:
            raise unprocessable(*errors)
        calendars = state.list_calendars(location_id, group_id=q.get("groupId") or None, show_drafted=drafted == "true")
        return JSONResponse({"calendars": calendars})

    @app.get("/calendars/events")
    async def calendar_events(request: Request) -> JSONResponse:
        _guard(request, EVENTS_READ)
        q = request.query_params
        location_id = q.get("locationId")
        _guard(request, EVENTS_READ, location_id)
        errors = [] if location_id else ["locationId should not be empty", "locationId must be a string"]
        window: dict[str, int] = {}
        for name in ("startTime", "endTime"):
            raw = (q.get(name) or "").strip()
            if not raw:
                errors.append(f"{name} should not be empty")
            elif not raw.isdigit():
                errors.append(f"{name} must be a number string (epoch milliseconds)")
            else:
                window[name] = int(raw)
        if len(window) == 2 and window["endTime"] < window["startTime"]:
            errors.append("endTime must not be less than startTime")
        picks = {k: q.get(k) or None for k in ("calendarId", "userId", "groupId")}
        if not any(picks.values()):
            errors.append("Either of calendarId, userId or groupId is required")
        if errors:
            raise unprocessable(*errors)
        events = state.calendar_events(
            location_id,
            start_ms=window["startTime"],
            end_ms=window["endTime"],
            calendar_id=picks["calendarId"],
            user_id=picks["userId"],
            group_id=picks["groupId"],
        )
        return JSONResponse({"events": events})

    @app.post("/calendars/events/appointments")
    async def create_appointment(request: Request) -> JSONResponse:
        _guard(request, EVENTS_WRITE)
        body = await _json_body(request)
        _guard(request, EVENTS_WRITE, body.get("locationId"))
        # The spec declares 200 (not 201) for this create.
        return JSONResponse(state.create_appointment(body))

    @app.get("/calendars/events/appointments/{event_id}")
    async def get_appointment(request: Request, event_id: str) -> JSONResponse:
        token = _guard(request, EVENTS_READ)
        return JSONResponse({"event": state.get_event(event_id, token.location_id)})

    @app.put("/calendars/events/appointments/{event_id}")
    async def update_appointment(request: Request, event_id: str) -> JSONResponse:
        token = _guard(request, EVENTS_WRITE)
        body = await _json_body(request)
        return JSONResponse(state.update_appointment(event_id, body, token.location_id))

    @app.delete("/calendars/events/{event_id}")
    async def delete_event(request: Request, event_id: str) -> JSONResponse:
        token = _guard(request, EVENTS_WRITE)
        body = await _json_body(request)  # DeleteAppointmentSchema: an empty object
        if body:
            raise unprocessable(*(f"property {k} should not exist" for k in body))
        state.delete_event(event_id, token.location_id)
        return JSONResponse({"succeeded": True}, status_code=201)

    # ---- admin (/_sim): no auth, no rate limit, not logged ------------------------------------------

    @app.post("/_sim/contacts")
    async def sim_load(request: Request) -> JSONResponse:
        body = json.loads(await request.body() or b"[]")
        if isinstance(body, dict):
            body = body.get("contacts", [])
        if not isinstance(body, list):
            raise ApiError(400, "body must be a list of contacts")
        return JSONResponse({"loaded": state.load_contacts(body), "total": state.count()})

    @app.get("/_sim/contacts/{contact_id}")
    async def sim_get(contact_id: str) -> JSONResponse:
        doc = state.raw_contact(contact_id)
        if doc is None:
            return _error(404, f"Contact with id {contact_id} not found")
        return JSONResponse(doc)

    @app.get("/_sim/contacts")
    async def sim_list(request: Request) -> JSONResponse:
        offset = _int_query(request, "offset", 0, lo=0)
        limit = _int_query(request, "limit", 1000, lo=1)
        return JSONResponse(
            {"contacts": state.all_contacts(offset, limit), "total": state.count(), "offset": offset, "limit": limit}
        )

    def _admin_list(body: Any, key: str) -> list:
        if isinstance(body, dict):
            body = body.get(key, [])
        if not isinstance(body, list):
            raise ApiError(400, f"body must be a list of {key}")
        return body

    # (load, list a slice, count): a page copies only its own rows (the bench pages a million tasks).
    loaders = {
        "tasks": (state.load_tasks, state.all_tasks, state.count_tasks),
        "notes": (state.load_notes, state.all_notes, state.count_notes),
        "calendars": (
            state.load_calendars,
            lambda o, n: state.all_calendars()[o : o + n],
            lambda: len(state.all_calendars()),
        ),
        "events": (state.load_events, state.all_events, state.count_events),
    }

    def _admin_routes(key: str) -> None:
        load, dump, count = loaders[key]

        async def sim_load_children(request: Request) -> JSONResponse:
            loaded = load(_admin_list(json.loads(await request.body() or b"[]"), key))
            return JSONResponse({"loaded": loaded, "total": count()})

        async def sim_list_children(request: Request) -> JSONResponse:
            offset = _int_query(request, "offset", 0, lo=0)
            limit = _int_query(request, "limit", 1000, lo=1)
            return JSONResponse({key: dump(offset, limit), "total": count(), "offset": offset, "limit": limit})

        app.add_api_route(f"/_sim/{key}", sim_load_children, methods=["POST"], name=f"sim_load_{key}")
        app.add_api_route(f"/_sim/{key}", sim_list_children, methods=["GET"], name=f"sim_list_{key}")

    for _key in loaders:
        _admin_routes(_key)

    @app.get("/_sim/config")
    async def sim_get_config() -> JSONResponse:
        return JSONResponse(state.config())

    @app.post("/_sim/config")
    async def sim_config(request: Request) -> JSONResponse:
        body = await _json_body(request)
        return JSONResponse(state.configure(**body))

    @app.post("/_sim/reset")
    async def sim_reset() -> JSONResponse:
        state.reset()
        return JSONResponse({"reset": True})

    @app.post("/_sim/oauth/clients")
    async def sim_oauth_client(request: Request) -> JSONResponse:
        body = await _json_body(request)
        try:
            refresh = state.add_oauth_client(
                body.get("client_id") or "",
                body.get("client_secret") or "",
                location_id=body.get("location_id") or body.get("locationId"),
                scopes=body.get("scopes"),
                company_id=body.get("company_id"),
                user_id=body.get("user_id"),
            )
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        return JSONResponse({"client_id": body["client_id"], "refresh_token": refresh}, status_code=201)

    @app.post("/_sim/oauth/codes")
    async def sim_oauth_code(request: Request) -> JSONResponse:
        body = await _json_body(request)
        try:
            code = state.issue_auth_code(
                body.get("client_id") or "",
                location_id=body.get("location_id") or body.get("locationId"),
                scopes=body.get("scopes"),
                redirect_uri=body.get("redirect_uri"),
            )
        except KeyError as exc:
            raise ApiError(400, str(exc.args[0])) from None
        return JSONResponse({"code": code}, status_code=201)

    @app.post("/_sim/oauth/expire")
    async def sim_oauth_expire() -> JSONResponse:
        return JSONResponse({"expired": state.expire_access_tokens()})

    @app.post("/_sim/tokens")
    async def sim_token(request: Request) -> JSONResponse:
        body = await _json_body(request)
        token = body.get("token")
        if not isinstance(token, str) or not token:
            raise ApiError(400, "token is required")
        expires_at = body.get("expires_at")
        if expires_at is None and body.get("expires_in") is not None:
            expires_at = time.time() + float(body["expires_in"])
        tok = state.add_token(
            token,
            location_id=body.get("location_id") or body.get("locationId"),
            scopes=body.get("scopes"),
            expires_at=expires_at,
            subject=body.get("subject") or "",
        )
        return JSONResponse(
            {
                "token": tok.token,
                "location_id": tok.location_id,
                "scopes": sorted(tok.scopes),
                "expires_at": tok.expires_at,
                "subject": tok.client,
            },
            status_code=201,
        )

    return app
