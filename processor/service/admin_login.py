"""Signing a browser in to the admin site when it has an authenticator: a browser cannot add an Authorization header
by itself, so the token is entered once into the form at /login and kept in a session cookie (HttpOnly,
SameSite=Strict, gone when the browser closes), which the admin routes accept beside the header."""

from __future__ import annotations

import html
from urllib.parse import quote

from aiohttp import web

from tracejudge.processor.component.errors import PermanentError
from tracejudge.processor.transport.auth import Authenticator

COOKIE = "tracejudge_admin"


def credentials(request: web.Request) -> str | None:
    """The Authorization header, else the session cookie's value."""
    return request.headers.get("Authorization") or request.cookies.get(COOKIE)


def wants_page(request: web.Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("Accept", "")


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def to_login(request: web.Request) -> web.Response:
    return see_other(f"/login?next={quote(request.path_qs)}")


def routes(auth: Authenticator) -> list[web.RouteDef]:
    async def form(request: web.Request) -> web.Response:
        target = html.escape(request.query.get("next", "/review"))
        return web.Response(content_type="text/html", text=FORM.format(next=target, problem=""))

    async def sign_in(request: web.Request) -> web.Response:
        posted = await request.post()
        token, target = str(posted.get("token", "")).strip(), str(posted.get("next", "/review"))
        value = token if " " in token else f"Bearer {token}"  # the token alone, or the header's whole value
        try:
            auth.authenticate(value)
        except PermanentError:
            return web.Response(content_type="text/html", status=401,
                                text=FORM.format(next=html.escape(target), problem="<p>That token is not valid.</p>"))
        response = see_other(target if target.startswith("/") and not target.startswith("//") else "/review")
        response.set_cookie(COOKIE, value, httponly=True, samesite="Strict")
        return response

    return [web.get("/login", form), web.post("/login", sign_in)]


FORM = """<!doctype html><html lang=en><head><meta charset=utf-8><title>tracejudge sign-in</title></head>
<body style="font:14px system-ui,sans-serif;margin:2em"><h1>tracejudge</h1>{problem}
<form method=post action="/login"><input type=hidden name=next value="{next}">
<label>Admin token <input name=token type=password autofocus></label> <button>Sign in</button></form></body></html>
"""
