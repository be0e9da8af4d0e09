"""OAuth2 endpoints: the token endpoint (client credentials), JWKS and server metadata."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any
from urllib.parse import unquote

import msgspec
from litestar import Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body

from cartera.api.context import app_context
from cartera.api.security import CLIENT_BASIC_SCHEME
from cartera.auth import clients
from cartera.auth.scopes import SCOPES, parse
from cartera.auth.tokens import TokenClient


class TokenRequest(msgspec.Struct):
    """The client credentials grant, form-encoded (RFC 6749 §4.4.2)."""

    grant_type: Annotated[str, msgspec.Meta(description="Must be `client_credentials`.",
                                            examples=["client_credentials"])]
    scope: Annotated[str | None, msgspec.Meta(
        description="Space-separated scopes to ask for; default: all of the client's.",
        examples=["portfolio:read reports:read"])] = None
    client_id: Annotated[str | None, msgspec.Meta(
        description="For `client_secret_post` only.", examples=["cli_3f9a0c1b2d4e5f6a7b8c9d0e"])
    ] = None
    client_secret: Annotated[str | None, msgspec.Meta(
        description="For `client_secret_post` only.")] = None


class TokenResponse(msgspec.Struct):
    """An RFC 9068 JWT access token (RS256, `typ: at+jwt`)."""

    access_token: str
    token_type: Annotated[str, msgspec.Meta(examples=["Bearer"])]
    expires_in: Annotated[int, msgspec.Meta(description="Lifetime in seconds.",
                                            examples=[3600])]
    scope: Annotated[str, msgspec.Meta(description="The granted scopes, space-separated.",
                                       examples=["portfolio:read portfolio:write"])]


class OAuthError(msgspec.Struct):
    """An RFC 6749 §5.2 error; it also carries the problem-details members."""

    error: Annotated[str, msgspec.Meta(examples=["invalid_client"], description=(
        "invalid_request, invalid_client, unsupported_grant_type or invalid_scope"))]
    error_description: str
    type: str
    title: str
    status: int
    detail: str
    code: str


def _oauth_error(status: int, error: str, description: str) -> Response[Any]:
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


def _invalid_form(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """A form that does not parse (e.g. a parameter sent twice) is RFC 6749's invalid_request."""
    return _oauth_error(400, "invalid_request", "the token request is not a valid form")


def _oauth_response(description: str, example: dict[str, Any]) -> ResponseSpec:
    return ResponseSpec(OAuthError, description=description, generate_examples=False,
                        examples=[Example(summary=example["error"], value={
                            **example, "type": "https://cartera.dev/problems/oauth-"
                            + example["error"].replace("_", "-"),
                            "title": "OAuth error", "detail": example["error_description"],
                            "code": example["error"]})])


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
      status_code=200, security=[{CLIENT_BASIC_SCHEME: []}, {}],
      exception_handlers={ValidationException: _invalid_form},
      responses={
          400: _oauth_response("invalid_request, unsupported_grant_type or invalid_scope", {
              "error": "unsupported_grant_type", "status": 400,
              "error_description": "only client_credentials is supported"}),
          401: _oauth_response("invalid_client: unknown client, wrong secret or disabled", {
              "error": "invalid_client", "status": 401,
              "error_description": "unknown client, wrong secret, or disabled"}),
      })
async def token(
    request: Request[Any, Any, Any],
    data: Annotated[TokenRequest, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[TokenResponse]:
    """OAuth 2.0 client credentials grant (RFC 6749 §4.4).

    Authenticate with HTTP Basic (``client_secret_basic``) or with ``client_id`` and
    ``client_secret`` in the form body (``client_secret_post``), not both. The answer is a
    short-lived RS256 JWT access token (RFC 9068) bound to the client's tenant.
    """
    basic = _basic_credentials(request.headers.get("authorization"))
    posted = (data.client_id, data.client_secret)
    if basic is not None and any(posted[1:]):
        return _oauth_error(400, "invalid_request", "use one client authentication method")
    if data.grant_type != "client_credentials":
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
    requested = parse(data.scope)
    if requested and not set(requested) <= set(allowed):
        return _oauth_error(400, "invalid_scope",
                            "requested scopes exceed the client's: "
                            + " ".join(sorted(set(requested) - set(allowed))))
    await ctx.tokens.current()  # sign with the newest key after a rotation
    issued = ctx.tokens.issue(TokenClient(client.client_id, client.tenant_id, allowed),
                              " ".join(requested) or None)
    return Response(msgspec.convert(issued, TokenResponse),
                    headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


@get("/.well-known/jwks.json", summary="Token signing keys", operation_id="GetJwks",
     tags=["OAuth2"])
async def jwks(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Public keys (JWK Set) that verify Cartera's access tokens."""
    return (await app_context(request).tokens.current()).public_jwks


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
