"""HTTP face of the Shift4Shop (3dcart) REST API v1 simulator.

Owns everything that is HTTP: the ``/3dCartWebAPI/v1`` (and ``v2``) routes, the SecureURL /
PrivateKey / Token headers, the rate-limit answer, media types, status codes, the ASP.NET-style
response headers and the error-array body that replaces every FastAPI default, plus the HTTP side
of the knobs: how an array POST is refused (``array_post``) and, with ``error_bodies="varied"``,
the empty or HTML body a 400/404/500 answer carries instead (``ApiJSONResponse``). Data rules live
in ``state.py``; this module only translates. The ``/_sim`` admin endpoints (no auth, no rate limit,
not logged) let tests and the sandbox seed, inspect and reconfigure a running simulator. The fault
layer (``sandbox/faults.py``) sits inside the request log and outside everything else, so its
``status`` answers come before auth and throttling.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from sandbox.common import install_request_log
from sandbox.faults import attach_fault_plan, install_faults, status_phrase
from sandbox.shift4shop.state import (
    AUTH_FAILURE_MESSAGE,
    CRM_DATE_FILTERS,
    CRM_ID_FILTERS,
    CRM_TEXT_FILTERS,
    CUSTOMER_FILTER_FIELDS,
    OFFSET_EXCEEDS_MESSAGE,
    TOO_MANY_REQUESTS_MESSAGE,
    ApiError,
    CustomerFilter,
    Shift4ShopState,
    TicketFilter,
    error_item,
    parse_filter_date,
)

API_PREFIX = "/3dcartwebapi"  # matched case-insensitively, see CaseInsensitiveApiPaths
API_VERSIONS = ("v1", "v2")  # v2 serves the same Customer payload (spec §1.1)
JSON_MEDIA_TYPES = frozenset({"application/json", "text/json"})

# What the real ASP.NET Web API backend sends on every response (spec §1.1, S8 recordings).
_ASPNET_HEADERS = {"Cache-Control": "no-cache", "Pragma": "no-cache", "Expires": "-1"}
# Default messages of injected `status` faults: the API's own 429 and crash wording.
FAULT_MESSAGES = {429: TOO_MANY_REQUESTS_MESSAGE, 500: "An error has occurred."}


# error_bodies="varied": the statuses whose answers lose their JSON body in turn. 401, 415 and 429
# always keep it, and so does the offset-past-the-end 400 (``keep_body``): real traffic shows its
# JSON and clients detect the end of data by its Message (spec §4, §6).
VARIED_ERROR_STATUSES = frozenset({400, 404, 500})
_HTML_ERROR_PAGE = (
    "<!DOCTYPE html>\r\n<html>\r\n<head><title>Runtime Error</title></head>\r\n<body>\r\n"
    "<h1>Server Error in '/' Application.</h1>\r\n<h2><i>HTTP Error {status} - {phrase}.</i></h2>\r\n"
    "</body>\r\n</html>\r\n"
)


class ApiJSONResponse(JSONResponse):
    """A JSON answer with the ASP.NET headers.

    When the simulator behind the request has ``error_bodies="varied"``, a 400/404/500 answer to an
    API path (never ``/_sim``) is sent with the body ``state.next_error_body()`` names: the JSON as
    built, nothing at all (Content-Length 0, no Content-Type), or an ASP.NET HTML error page. The
    status and the other headers (``Retry-After``...) stay. ``keep_body`` exempts one answer.
    """

    media_type = "application/json; charset=utf-8"

    def __init__(
        self,
        content: Any,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        keep_body: bool = False,
        **kw: Any,
    ):
        super().__init__(content, status_code, {**_ASPNET_HEADERS, **(headers or {})}, **kw)
        self.keep_body = keep_body

    def _variant(self, scope: Scope) -> str:
        if self.keep_body or self.status_code not in VARIED_ERROR_STATUSES or scope["path"].startswith("/_sim"):
            return "json"
        state = getattr(getattr(scope.get("app"), "state", None), "sim", None)
        if not isinstance(state, Shift4ShopState) or state.error_bodies != "varied":
            return "json"
        return state.next_error_body()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        variant = self._variant(scope)
        if variant == "json":
            await super().__call__(scope, receive, send)
            return
        body = b""
        headers = [(k, v) for k, v in self.raw_headers if k not in (b"content-length", b"content-type")]
        if variant == "html":
            body = _HTML_ERROR_PAGE.format(status=self.status_code, phrase=status_phrase(self.status_code)).encode()
            headers.append((b"content-type", b"text/html; charset=utf-8"))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _error_response(
    status: int, message: str, value: str = "", headers: dict[str, str] | None = None
) -> ApiJSONResponse:
    return ApiJSONResponse(
        [error_item(value, status, message)], status, headers, keep_body=message == OFFSET_EXCEEDS_MESSAGE
    )


class CaseInsensitiveApiPaths:
    """ASP.NET routing ignores case (``/3dcartwebapi/v1/customers`` works), Starlette's does not.

    API paths hold only fixed segments and numeric ids, so lower-casing them is lossless. It runs
    inside the request log, which therefore records the path exactly as the client sent it.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].lower().startswith(API_PREFIX + "/"):
            scope = {**scope, "path": scope["path"].lower()}
        await self.app(scope, receive, send)


def _query(request: Request) -> dict[str, str]:
    # ASP.NET binds query names case-insensitively, and the docs' own samples send blank
    # parameters (`?limit=&offset=&countonly=`), which bind as "not given".
    return {k.lower(): v for k, v in request.query_params.multi_items() if v.strip() != ""}


def _int_param(params: dict[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ApiError(400, f"The value '{raw}' is not valid for {name}.", name)
    return value


def _countonly(params: dict[str, str]) -> bool:
    raw = params.get("countonly", "0").strip().lower()
    if raw in ("1", "true"):
        return True
    if raw in ("0", "false"):
        return False
    raise ApiError(400, f"The value '{raw}' is not valid for countonly.", "countonly")


def _customer_filter(params: dict[str, str], group_id: int | None = None) -> CustomerFilter:
    dates: dict[str, Any] = {}
    for name in ("lastupdatestart", "lastupdateend"):
        if name in params:
            try:
                dates[name] = parse_filter_date(params[name])
            except ValueError:
                raise ApiError(400, f"The value '{params[name]}' is not valid for {name}.", name) from None
    text = {field: params[name].strip().lower() for name, field in CUSTOMER_FILTER_FIELDS.items() if name in params}
    return CustomerFilter(
        text=text,
        updated_from=dates.get("lastupdatestart"),
        updated_to=dates.get("lastupdateend"),
        group_id=group_id,
    )


def _date_param(params: dict[str, str], name: str) -> Any:
    if name not in params:
        return None
    try:
        return parse_filter_date(params[name])
    except ValueError:
        raise ApiError(400, f"The value '{params[name]}' is not valid for {name}.", name) from None


def _ticket_filter(params: dict[str, str]) -> TicketFilter:
    """GET /CRM filters. Id filters bind as int with 0 meaning "not given" (the Help page default)."""
    ids: dict[str, int] = {}
    for name, field in CRM_ID_FILTERS.items():
        if name in params:
            try:
                value = int(params[name])
            except ValueError:
                raise ApiError(400, f"The value '{params[name]}' is not valid for {name}.", name) from None
            if value:
                ids[field] = value
    dates = {name: _date_param(params, name) for name in CRM_DATE_FILTERS}
    return TicketFilter(
        text={field: params[name].strip().lower() for name, field in CRM_TEXT_FILTERS.items() if name in params},
        ids=ids,
        opened_from=dates["openedstartdate"],
        opened_to=dates["openedenddate"],
        last_action_from=dates["lastactionstartdate"],
        last_action_to=dates["lastactionenddate"],
    )


# Fixed segments under /CRM: a method their own route lacks must not fall through to /CRM/{id}.
_CRM_SUBRESOURCES = frozenset({"status", "department", "savedreply"})


def _crm_id(raw: str, request: Request) -> int:
    if raw in _CRM_SUBRESOURCES:
        raise ApiError(405, f"The requested resource does not support http method '{request.method}'.")
    return _path_id(raw)


def _path_id(raw: str) -> int:
    # The real route binds {id} to an int; anything else is ASP.NET's generic invalid request.
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, "The request is invalid.", raw) from None


async def _json_body(request: Request) -> Any:
    """The parsed body, after the media-type check the real server makes first (415, then 400)."""
    content_type = request.headers.get("content-type", "")
    # ASP.NET treats a missing Content-Type as application/octet-stream, which no formatter reads.
    media = content_type.split(";")[0].strip().lower() or "application/octet-stream"
    if media not in JSON_MEDIA_TYPES:
        raise ApiError(415, f"The request entity's media type '{media}' is not supported for this resource.")
    raw = await request.body()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "The request body is not valid JSON.") from None


def _batch_status(results: list[dict[str, str]], success: int) -> int:
    """HTTP status of a multi-item write: all ok, some ok (206), none found (404), else 400."""
    succeeded = sum(r["Status"] == str(success) for r in results)
    if succeeded == len(results):
        return success
    if succeeded:
        return 206
    if all(r["Status"] == "404" for r in results):
        return 404
    return 400


def _single(result: dict[str, str]) -> ApiJSONResponse:
    return ApiJSONResponse([result], int(result["Status"]))


def _many(results: list[dict[str, str]], success: int) -> ApiJSONResponse:
    return ApiJSONResponse(results, _batch_status(results, success))


def _array_body(body: Any, what: str) -> list[Any]:
    if not isinstance(body, list) or not body:
        raise ApiError(400, f"The request body must be a non-empty JSON array of {what} objects.")
    return body


def _object_body(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, f"The request body must be a single {what} object.")
    return body


def _api_router(state: Shift4ShopState) -> APIRouter:
    def store(request: Request) -> str:
        """Authenticate the three headers, then charge the (store, app) leaky bucket."""
        headers = request.headers  # case-insensitive; an extra Authorization: Bearer is ignored
        private_key = headers.get("privatekey")
        key = state.authenticate(headers.get("secureurl"), private_key, headers.get("token"))
        if key is None:
            raise ApiError(401, AUTH_FAILURE_MESSAGE)
        wait = state.throttle(key, private_key or "")
        if wait is not None:
            retry = {"Retry-After": str(max(1, math.ceil(wait)))} if state.send_retry_after else {}
            raise ApiError(429, TOO_MANY_REQUESTS_MESSAGE, headers=retry)
        return key

    router = APIRouter()
    Store = Depends(store)  # noqa: N806 - reads like a type in the signatures below

    # --- Customers ---
    @router.get("/customers")
    def list_customers(request: Request, key: str = Store) -> ApiJSONResponse:
        params = _query(request)
        return ApiJSONResponse(
            state.list_customers(
                key,
                _customer_filter(params),
                limit=_int_param(params, "limit"),
                offset=_int_param(params, "offset"),
                countonly=_countonly(params),
            )
        )

    @router.get("/customers/{customer_id}")
    def get_customer(customer_id: str, key: str = Store) -> ApiJSONResponse:
        return ApiJSONResponse([state.get_customer(key, _path_id(customer_id))])

    @router.post("/customers")
    async def create_customers(request: Request, key: str = Store) -> Response:
        body = await _json_body(request)
        if isinstance(body, list):
            # Bulk POST is undocumented (spec §2.1): `array_post` picks the reading.
            if state.array_post == "reject_no_content":
                return Response(status_code=400, headers=_ASPNET_HEADERS)  # no body, no Content-Type
            if state.array_post == "reject":
                raise ApiError(400, "The request body must be a single Customer object.")
            return _many(state.create_customers(key, _array_body(body, "Customer")), 201)
        return _single(state.create_customer(key, _object_body(body, "Customer")))

    @router.put("/customers")
    async def update_customers(request: Request, key: str = Store) -> ApiJSONResponse:
        items = _array_body(await _json_body(request), "Customer")
        return _many(state.update_customers(key, items), 200)

    @router.put("/customers/{customer_id}")
    async def update_customer(customer_id: str, request: Request, key: str = Store) -> ApiJSONResponse:
        cid = _path_id(customer_id)
        body = _object_body(await _json_body(request), "Customer")
        return _single(state.update_customer(key, cid, body))

    @router.delete("/customers/{customer_id}")
    def delete_customer(customer_id: str, key: str = Store) -> ApiJSONResponse:
        return ApiJSONResponse([state.delete_customer(key, _path_id(customer_id))])

    # --- CustomerGroups ---
    @router.get("/customergroups")
    def list_customer_groups(request: Request, key: str = Store) -> ApiJSONResponse:
        params = _query(request)
        return ApiJSONResponse(
            state.list_customer_groups(
                key,
                limit=_int_param(params, "limit"),
                offset=_int_param(params, "offset"),
                countonly=_countonly(params),
            )
        )

    @router.get("/customergroups/{group_id}")
    def get_customer_group(group_id: str, key: str = Store) -> ApiJSONResponse:
        return ApiJSONResponse([state.get_customer_group(key, _path_id(group_id))])

    @router.get("/customergroups/{group_id}/customers")
    def list_group_customers(group_id: str, request: Request, key: str = Store) -> ApiJSONResponse:
        params = _query(request)
        return ApiJSONResponse(
            state.list_customers(
                key,
                _customer_filter(params, group_id=_path_id(group_id)),
                limit=_int_param(params, "limit"),
                offset=_int_param(params, "offset"),
                countonly=_countonly(params),
            )
        )

    @router.post("/customergroups")
    async def create_customer_group(request: Request, key: str = Store) -> ApiJSONResponse:
        body = _object_body(await _json_body(request), "CustomerGroup")
        return _single(state.create_customer_group(key, body))

    @router.put("/customergroups")
    async def update_customer_groups(request: Request, key: str = Store) -> ApiJSONResponse:
        items = _array_body(await _json_body(request), "CustomerGroup")
        return _many(state.update_customer_groups(key, items), 200)

    @router.put("/customergroups/{group_id}")
    async def update_customer_group(group_id: str, request: Request, key: str = Store) -> ApiJSONResponse:
        gid = _path_id(group_id)
        body = _object_body(await _json_body(request), "CustomerGroup")
        return _single(state.update_customer_group(key, gid, body))

    @router.delete("/customergroups/{group_id}")
    def delete_customer_group(group_id: str, key: str = Store) -> ApiJSONResponse:
        return ApiJSONResponse([state.delete_customer_group(key, _path_id(group_id))])

    # --- CRM (reference `_crm.md`). Fixed sub-resources first, so /CRM/{id} never shadows them. ---
    @router.get("/crm/status")
    def list_crm_statuses(request: Request, key: str = Store) -> ApiJSONResponse:
        params = _query(request)
        return ApiJSONResponse(
            state.list_crm_statuses(
                key,
                limit=_int_param(params, "limit"),
                offset=_int_param(params, "offset"),
                countonly=_countonly(params),
            )
        )

    @router.get("/crm/status/{status_id}")
    def get_crm_status(status_id: str, key: str = Store) -> ApiJSONResponse:
        return ApiJSONResponse([state.get_crm_status(key, _path_id(status_id))])

    @router.put("/crm/status/{status_id}")
    async def update_crm_status(status_id: str, request: Request, key: str = Store) -> ApiJSONResponse:
        sid = _path_id(status_id)
        body = _object_body(await _json_body(request), "CrmStatus")
        return _single(state.update_crm_status(key, sid, body))

    @router.get("/crm/department")
    def list_crm_departments(request: Request, key: str = Store) -> ApiJSONResponse:
        params = _query(request)
        return ApiJSONResponse(
            state.list_crm_departments(
                key,
                limit=_int_param(params, "limit"),
                offset=_int_param(params, "offset"),
                countonly=_countonly(params),
            )
        )

    @router.put("/crm/department/{department_id}")
    async def update_crm_department(department_id: str, request: Request, key: str = Store) -> ApiJSONResponse:
        did = _path_id(department_id)
        body = _object_body(await _json_body(request), "CrmDepartment")
        return _single(state.update_crm_department(key, did, body))

    @router.get("/crm/savedreply")
    def list_crm_saved_replies(request: Request, key: str = Store) -> ApiJSONResponse:
        params = _query(request)
        return ApiJSONResponse(
            state.list_crm_saved_replies(
                key,
                title=params.get("title"),
                limit=_int_param(params, "limit"),
                offset=_int_param(params, "offset"),
                countonly=_countonly(params),
            )
        )

    @router.post("/crm/savedreply")
    async def create_crm_saved_reply(request: Request, key: str = Store) -> ApiJSONResponse:
        body = _object_body(await _json_body(request), "CrmSavedReply")
        return _single(state.create_crm_saved_reply(key, body))

    @router.get("/crm/savedreply/{reply_id}")
    def get_crm_saved_reply(reply_id: str, key: str = Store) -> ApiJSONResponse:
        return ApiJSONResponse([state.get_crm_saved_reply(key, _path_id(reply_id))])

    @router.put("/crm/savedreply/{reply_id}")
    async def update_crm_saved_reply(reply_id: str, request: Request, key: str = Store) -> ApiJSONResponse:
        rid = _path_id(reply_id)
        body = _object_body(await _json_body(request), "CrmSavedReply")
        return _single(state.update_crm_saved_reply(key, rid, body))

    @router.delete("/crm/savedreply/{reply_id}")
    def delete_crm_saved_reply(reply_id: str, key: str = Store) -> ApiJSONResponse:
        return ApiJSONResponse([state.delete_crm_saved_reply(key, _path_id(reply_id))])

    @router.get("/crm")
    def list_tickets(request: Request, key: str = Store) -> ApiJSONResponse:
        params = _query(request)
        return ApiJSONResponse(
            state.list_tickets(
                key,
                _ticket_filter(params),
                limit=_int_param(params, "limit"),
                offset=_int_param(params, "offset"),
                countonly=_countonly(params),
            )
        )

    @router.post("/crm")
    async def create_ticket(request: Request, key: str = Store) -> ApiJSONResponse:
        body = _object_body(await _json_body(request), "CRM")
        return _single(state.create_ticket(key, body))

    @router.get("/crm/{crm_id}")
    def get_ticket(crm_id: str, request: Request, key: str = Store) -> ApiJSONResponse:
        ticket = state.get_ticket(key, _crm_id(crm_id, request))
        # The reference's sample is a bare object; the switch serves the array form other GETs use.
        return ApiJSONResponse([ticket] if state.crm_get_as_array else ticket)

    @router.put("/crm/{crm_id}")
    async def update_ticket(crm_id: str, request: Request, key: str = Store) -> ApiJSONResponse:
        cid = _crm_id(crm_id, request)
        body = _object_body(await _json_body(request), "CRM")
        return _single(state.update_ticket(key, cid, body))

    @router.delete("/crm/{crm_id}")
    def delete_ticket(crm_id: str, request: Request, key: str = Store) -> ApiJSONResponse:
        return ApiJSONResponse([state.delete_ticket(key, _crm_id(crm_id, request))])

    @router.get("/crm/{crm_id}/message")
    def list_messages(crm_id: str, request: Request, key: str = Store) -> ApiJSONResponse:
        params = _query(request)
        cid = _path_id(crm_id)
        return ApiJSONResponse(
            state.list_messages(key, cid, limit=_int_param(params, "limit"), offset=_int_param(params, "offset"))
        )

    @router.post("/crm/{crm_id}/message")
    async def create_message(crm_id: str, request: Request, key: str = Store) -> ApiJSONResponse:
        cid = _path_id(crm_id)
        body = _object_body(await _json_body(request), "CrmMessage")
        return _single(state.create_message(key, cid, body))

    @router.get("/crm/{crm_id}/message/{message_id}")
    def get_message(crm_id: str, message_id: str, key: str = Store) -> ApiJSONResponse:
        return ApiJSONResponse([state.get_message(key, _path_id(crm_id), _path_id(message_id))])

    @router.delete("/crm/{crm_id}/message/{message_id}")
    def delete_message(crm_id: str, message_id: str, key: str = Store) -> ApiJSONResponse:
        return ApiJSONResponse([state.delete_message(key, _path_id(crm_id), _path_id(message_id))])

    return router


def _admin_router(state: Shift4ShopState) -> APIRouter:
    router = APIRouter(prefix="/_sim")

    async def admin_json(request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "The request body is not valid JSON.") from None

    def admin(call: Callable[[], Any], status: int = 200) -> ApiJSONResponse:
        try:
            return ApiJSONResponse(call(), status)
        except KeyError as exc:
            raise ApiError(404, str(exc.args[0] if exc.args else exc)) from None
        except (ValueError, TypeError, AttributeError) as exc:
            raise ApiError(400, str(exc)) from None

    @router.post("/customers")
    async def load_customers(request: Request, secure_url: str | None = None) -> ApiJSONResponse:
        """Bulk insert raw customers (a list, or a seed-shaped object with customerGroups too)."""
        body = await admin_json(request)

        def load() -> dict[str, Any]:
            seed = {"customers": body} if isinstance(body, list) else dict(body)
            groups = state.load_customer_groups(secure_url, seed.get("customerGroups") or [])
            customers = state.load_customers(secure_url, seed.get("customers") or [])
            return {"inserted": len(customers), "ids": customers, "customerGroupIds": groups}

        return admin(load, 201)

    @router.get("/customers")
    def dump_customers(secure_url: str | None = None) -> ApiJSONResponse:
        return admin(lambda: state.all_customers(secure_url))

    @router.get("/crm")
    def dump_crm(secure_url: str | None = None) -> ApiJSONResponse:
        """Tickets (with messages and exact ``_date*`` times), statuses, departments, saved replies."""
        return admin(lambda: state.all_crm(secure_url))

    @router.post("/crm")
    async def load_crm(request: Request, secure_url: str | None = None, replace: bool = False) -> ApiJSONResponse:
        """Raw insert of ``{"tickets", "statuses", "departments", "savedReplies"}`` (or a ticket list)."""
        body = await admin_json(request)
        return admin(
            lambda: state.load_crm(secure_url, {"tickets": body} if isinstance(body, list) else body, replace), 201
        )

    @router.get("/config")
    def get_config() -> ApiJSONResponse:
        return ApiJSONResponse(state.config())

    @router.post("/config")
    async def set_config(request: Request) -> ApiJSONResponse:
        changes = await admin_json(request)
        return admin(lambda: state.configure(**changes))

    @router.post("/reset")
    def reset() -> ApiJSONResponse:
        state.reset()  # also clears the fault plan (see attach_fault_plan)
        return ApiJSONResponse({"reset": True})

    @router.post("/stores")
    async def add_store(request: Request) -> ApiJSONResponse:
        body = await admin_json(request)

        def add() -> dict[str, str]:
            key = state.add_store(body.get("secure_url"), body.get("private_key"), body.get("token"))
            return {"store": key}

        return admin(add, 201)

    return router


def create_app(state: Shift4ShopState) -> FastAPI:
    """Build the simulator app around ``state`` (which the caller keeps to inspect or change)."""
    app = FastAPI(
        title="Shift4Shop REST API v1 simulator",
        default_response_class=ApiJSONResponse,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.sim = state

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> ApiJSONResponse:
        return _error_response(exc.status, exc.message, exc.value, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> ApiJSONResponse:
        # ASP.NET Web API's own wording for unmatched routes and methods.
        if exc.status_code == 404:
            # raw_path still holds the client's spelling; scope["path"] may have been lower-cased.
            client_path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
            uri = request.url.replace(path=client_path)
            message = f"No HTTP resource was found that matches the request URI '{uri}'."
        elif exc.status_code == 405:
            message = f"The requested resource does not support http method '{request.method}'."
        else:
            message = str(exc.detail)
        return _error_response(exc.status_code, message, headers=dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, __: RequestValidationError) -> ApiJSONResponse:
        return _error_response(400, "The request is invalid.")

    @app.exception_handler(Exception)
    async def _crash(_: Request, __: Exception) -> ApiJSONResponse:
        return _error_response(500, "An error has occurred.")

    # Added first so the fault layer and the request log (added next, the log outermost) see the
    # client's own path: fault rules match the path as sent (use `(?i)` for any case).
    app.add_middleware(CaseInsensitiveApiPaths)
    install_faults(
        app,
        attach_fault_plan(state),  # state.faults; state.reset() clears it
        lambda status, message: _error_response(status, message or FAULT_MESSAGES.get(status) or status_phrase(status)),
        cursor_query=("offset",),  # `repeat_page`: the list answers its first page again
    )
    install_request_log(app, state.request_log, lambda: state.latency_s)
    app.include_router(_admin_router(state))
    api = _api_router(state)
    for version in API_VERSIONS:
        app.include_router(api, prefix=f"{API_PREFIX}/{version}")
    return app
