"""OAuth2 endpoints: the token endpoint (client credentials), JWKS and server metadata."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote

from litestar import Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body

from cartera.api.context import app_context
from cartera.auth import clients
from cartera.auth.scopes import SCOPES, parse
from cartera.auth.tokens import TokenClient


def _oauth_error(status: int, error: str, description: str) -> Response[dict[str, Any]]:
    """RFC 6749 §5.2 error (its members plus the problem-details ones we use everywhere)."""
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="cartera"'
    return Response(
        {"error": error, "error_description": description, "type":
         f"https://cartera.dev/problems/oauth-{error.replace('_', '-')}", "title": "OAuth error",
         "status": status, "detail": description, "code": error},
        status_code=status, headers=headers,
    )


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")
    client_id, _, secret = decoded.partition(":")
    return unquote(client_id), unquote(secret)


@post("/oauth/token", summary="Get an access token", operation_id="IssueToken", tags=["OAuth2"],
      status_code=200)
async def token(
    request: Request[Any, Any, Any],
    data: dict[str, str] = Body(media_type=RequestEncodingType.URL_ENCODED),
) -> Response[dict[str, Any]]:
    """OAuth 2.0 client credentials grant (RFC 6749 §4.4).

    Authenticate with HTTP Basic (``client_secret_basic``) or with ``client_id`` and
    ``client_secret`` in the form body (``client_secret_post``), not both. The answer is a
    short-lived RS256 JWT access token (RFC 9068) bound to the client's tenant.
    """
    basic = _basic_credentials(request.headers.get("authorization"))
    posted = (data.get("client_id"), data.get("client_secret"))
    if basic is not None and any(posted[1:]):
        return _oauth_error(400, "invalid_request", "use one client authentication method")
    if data.get("grant_type") != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "only client_credentials is supported")
    if basic is not None:
        client_id, secret = basic
    elif posted[0] and posted[1]:
        client_id, secret = posted[0], posted[1]
    else:
        return _oauth_error(401, "invalid_client", "client authentication is required")
    ctx = app_context(request)
    async with ctx.sessionmaker() as session:
        client = await clients.authenticate(session, client_id, secret)
    if client is None:
        return _oauth_error(401, "invalid_client", "unknown client, wrong secret, or disabled")
    allowed = parse(client.scopes)
    requested = parse(data.get("scope"))
    if requested and not set(requested) <= set(allowed):
        return _oauth_error(400, "invalid_scope",
                            "requested scopes exceed the client's: "
                            + " ".join(sorted(set(requested) - set(allowed))))
    issued = ctx.tokens.issue(TokenClient(client.client_id, client.tenant_id, allowed),
                              " ".join(requested) or None)
    return Response(issued, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


@get("/.well-known/jwks.json", summary="Token signing keys", operation_id="GetJwks",
     tags=["OAuth2"])
async def jwks(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Public keys (JWK Set) that verify Cartera's access tokens."""
    return app_context(request).tokens.keys.public_jwks


@get("/.well-known/oauth-authorization-server", summary="Authorization server metadata",
     operation_id="GetAuthorizationServerMetadata", tags=["OAuth2"])
async def metadata(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """RFC 8414 metadata: issuer, token endpoint, JWKS, grants, auth methods and scopes."""
    issuer = app_context(request).tokens.issuer
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/oauth/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": ["token"],
        "scopes_supported": sorted(SCOPES),
    }


ROUTES = [token, jwks, metadata]
