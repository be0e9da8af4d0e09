"""OAuth2 endpoints: the token endpoint (client credentials), revocation (RFC 7009),
introspection (RFC 7662), JWKS and server metadata. Every endpoint that authenticates a
client accepts ``client_secret_basic``, ``client_secret_post`` and ``private_key_jwt``."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal
from urllib.parse import unquote

import msgspec
from authlib.oauth2.rfc6750.errors import InvalidTokenError
from litestar import Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body

from cartera.api.context import app_context
from cartera.api.security import CLIENT_BASIC_SCHEME
from cartera.auth import assertions, clients, revocation
from cartera.auth.models import OAuthClient
from cartera.auth.scopes import SCOPES, parse
from cartera.auth.tokens import ClientPrincipal, TokenClient


class ClientAuthentication(msgspec.Struct):
    """Client authentication in the form body: ``client_secret_post`` or
    ``private_key_jwt`` (or neither, with HTTP Basic)."""

    client_id: Annotated[str | None, msgspec.Meta(
        description="For `client_secret_post` (and optionally `private_key_jwt`).",
        examples=["cli_3f9a0c1b2d4e5f6a7b8c9d0e"])] = None
    client_secret: Annotated[str | None, msgspec.Meta(
        description="For `client_secret_post` only.")] = None
    client_assertion_type: Annotated[str | None, msgspec.Meta(
        description=f"For `private_key_jwt`: `{assertions.ASSERTION_TYPE}`.",
        examples=[assertions.ASSERTION_TYPE])] = None
    client_assertion: Annotated[str | None, msgspec.Meta(
        description="For `private_key_jwt`: a JWT signed with one of the client's "
                    "registered keys; `iss` = `sub` = the client id, `aud` = the token "
                    "endpoint URL, `exp`, and a `jti` used once (RFC 7523).")] = None


class TokenRequest(ClientAuthentication, kw_only=True):
    """The client credentials grant, form-encoded (RFC 6749 §4.4.2)."""

    grant_type: Annotated[str, msgspec.Meta(description="Must be `client_credentials`.",
                                            examples=["client_credentials"])]
    scope: Annotated[str | None, msgspec.Meta(
        description="Space-separated scopes to ask for; default: all of the client's.",
        examples=["portfolio:read reports:read"])] = None


TokenTypeHint = Literal["access_token", "refresh_token"]


class SubmittedToken(ClientAuthentication, kw_only=True):
    """The token to revoke (RFC 7009 §2.1) or introspect (RFC 7662 §2.1)."""

    token: Annotated[str, msgspec.Meta(min_length=1, max_length=8192)]
    token_type_hint: TokenTypeHint | None = None


class IntrospectionResponse(msgspec.Struct, omit_defaults=True):
    """RFC 7662 §2.2. An inactive token (expired, revoked, its client disabled or deleted,
    not ours, or another tenant's) is only ``{"active": false}``."""

    active: bool
    scope: str | None = None
    client_id: str | None = None
    token_type: str | None = None
    exp: int | None = None
    iat: int | None = None
    sub: str | None = None
    aud: str | None = None
    iss: str | None = None
    jti: str | None = None
    tenant_id: int | None = None


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


AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
_INVALID_CLIENT = "unknown client, wrong credentials, or disabled"


async def _client_from_assertion(request: Request[Any, Any, Any], form: ClientAuthentication
                                 ) -> OAuthClient | None:
    assertion = form.client_assertion or ""
    client_id = form.client_id or assertions.claimed_client_id(assertion)
    if not client_id:
        return None
    ctx = app_context(request)
    async with ctx.sessionmaker() as session:  # closed before any JWKS fetch
        client = await clients.find_enabled(session, client_id)
    if client is None or client.auth_method != clients.PRIVATE_KEY_JWT:
        return None
    try:
        jti, expires_at = await assertions.verify(
            client, assertion, f"{ctx.settings.public_base}/oauth/token", ctx.jwks_cache)
    except assertions.AssertionRejected:
        return None
    async with ctx.sessionmaker() as session:
        fresh = await assertions.record(session, client.client_id, jti, expires_at)
        await session.commit()
    return client if fresh else None


async def authenticate_client(request: Request[Any, Any, Any], form: ClientAuthentication
                              ) -> OAuthClient | Response[Any]:
    """The client authenticated by exactly one method, or the RFC 6749 error to answer."""
    basic = _basic_credentials(request.headers.get("authorization"))
    methods = [basic is not None, bool(form.client_secret),
               bool(form.client_assertion or form.client_assertion_type)]
    if sum(methods) > 1:
        return _oauth_error(400, "invalid_request", "use one client authentication method")
    if methods[2]:
        if form.client_assertion_type != assertions.ASSERTION_TYPE or not form.client_assertion:
            return _oauth_error(400, "invalid_request",
                                f"client_assertion_type must be {assertions.ASSERTION_TYPE} "
                                "with a client_assertion")
        client = await _client_from_assertion(request, form)
    elif basic is not None or (form.client_id and form.client_secret):
        client_id, secret = basic or (form.client_id or "", form.client_secret or "")
        async with app_context(request).sessionmaker() as session:
            client = await clients.authenticate(session, client_id, secret)
    else:
        return _oauth_error(401, "invalid_client", "client authentication is required")
    if client is None:
        return _oauth_error(401, "invalid_client", _INVALID_CLIENT)
    return client


_CLIENT_ERRORS = {
    400: _oauth_response("invalid_request, unsupported_grant_type or invalid_scope", {
        "error": "unsupported_grant_type", "status": 400,
        "error_description": "only client_credentials is supported"}),
    401: _oauth_response("invalid_client: unknown client, wrong credentials or disabled", {
        "error": "invalid_client", "status": 401, "error_description": _INVALID_CLIENT}),
}
_FORM = Body(media_type=RequestEncodingType.URL_ENCODED)
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@post("/oauth/token", summary="Get an access token", operation_id="IssueToken", tags=["OAuth2"],
      status_code=200, security=[{CLIENT_BASIC_SCHEME: []}, {}],
      exception_handlers={ValidationException: _invalid_form}, responses=_CLIENT_ERRORS)
async def token(request: Request[Any, Any, Any],
                data: Annotated[TokenRequest, _FORM]) -> Response[TokenResponse]:
    """OAuth 2.0 client credentials grant (RFC 6749 §4.4).

    Authenticate with HTTP Basic (``client_secret_basic``), with ``client_id`` and
    ``client_secret`` in the form body (``client_secret_post``), or with a signed
    ``client_assertion`` (``private_key_jwt``, RFC 7523), exactly one of them. The answer is
    a short-lived RS256 JWT access token (RFC 9068) bound to the client's tenant, with a
    ``jti`` that ``/oauth/revoke`` can revoke.
    """
    if data.grant_type != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "only client_credentials is supported")
    client = await authenticate_client(request, data)
    if isinstance(client, Response):
        return client
    allowed = parse(client.scopes)
    requested = parse(data.scope)
    if requested and not set(requested) <= set(allowed):
        return _oauth_error(400, "invalid_scope",
                            "requested scopes exceed the client's: "
                            + " ".join(sorted(set(requested) - set(allowed))))
    ctx = app_context(request)
    await ctx.tokens.current()  # sign with the newest key after a rotation
    issued = ctx.tokens.issue(TokenClient(client.client_id, client.tenant_id, allowed),
                              " ".join(requested) or None)
    return Response(msgspec.convert(issued, TokenResponse), headers=_NO_STORE)


async def _principal(request: Request[Any, Any, Any], token_text: str
                     ) -> ClientPrincipal | None:
    try:
        return await app_context(request).tokens.verify(token_text)
    except (InvalidTokenError, ValueError):
        return None


@post("/oauth/revoke", summary="Revoke an access token", operation_id="RevokeToken",
      tags=["OAuth2"], status_code=200, security=[{CLIENT_BASIC_SCHEME: []}, {}],
      exception_handlers={ValidationException: _invalid_form}, responses=_CLIENT_ERRORS)
async def revoke(request: Request[Any, Any, Any],
                 data: Annotated[SubmittedToken, _FORM]) -> Response[None]:
    """RFC 7009 token revocation. The client authenticates as at the token endpoint and may
    revoke only tokens issued to itself (another client's token: 400 ``invalid_request``).
    An invalid, expired or already revoked token is answered 200 too (§2.2). The token
    stops working at once; the revocation is kept until the token would have expired."""
    client = await authenticate_client(request, data)
    if isinstance(client, Response):
        return client
    principal = await _principal(request, data.token)
    if principal is None:
        return Response(None, status_code=200, headers=_NO_STORE)
    if principal.client_id != client.client_id:
        return _oauth_error(400, "invalid_request", "the token was not issued to this client")
    ctx = app_context(request)
    async with ctx.sessionmaker() as session:
        await revocation.revoke(session, principal.token_id, principal.client_id,
                                principal.expires_at)
        await session.commit()
    ctx.tokens.forget_state()
    return Response(None, status_code=200, headers=_NO_STORE)


@post("/oauth/introspect", summary="Introspect an access token",
      operation_id="IntrospectToken", tags=["OAuth2"], status_code=200,
      security=[{CLIENT_BASIC_SCHEME: []}, {}],
      exception_handlers={ValidationException: _invalid_form}, responses=_CLIENT_ERRORS)
async def introspect(request: Request[Any, Any, Any],
                     data: Annotated[SubmittedToken, _FORM]
                     ) -> Response[IntrospectionResponse]:
    """RFC 7662 token introspection for an authenticated client (as at the token endpoint).
    A token is ``active`` only when it verifies, has not expired or been revoked, its
    client is enabled, and it belongs to the calling client's tenant; otherwise the answer
    is ``{"active": false}`` and nothing else."""
    client = await authenticate_client(request, data)
    if isinstance(client, Response):
        return client
    principal = await _principal(request, data.token)
    if principal is None or principal.tenant_id != client.tenant_id:
        return Response(IntrospectionResponse(active=False), headers=_NO_STORE)
    claims = principal.claims
    return Response(IntrospectionResponse(
        active=True, scope=" ".join(sorted(principal.scopes)), client_id=principal.client_id,
        token_type="Bearer", exp=claims.get("exp"), iat=claims.get("iat"),
        sub=claims.get("sub"), aud=_audience(claims.get("aud")), iss=claims.get("iss"),
        jti=principal.token_id, tenant_id=principal.tenant_id), headers=_NO_STORE)


def _audience(aud: Any) -> str | None:
    return " ".join(aud) if isinstance(aud, list) else aud


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
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": assertions.ALGORITHMS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "response_types_supported": ["token"],
        "scopes_supported": sorted(SCOPES),
    }


ROUTES = [token, revoke, introspect, jwks, metadata]
