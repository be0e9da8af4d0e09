"""Pieces shared by the SMTP and SendGrid providers (content checks, headers, redaction)."""

from __future__ import annotations

import re
from email.errors import HeaderParseError
from email.headerregistry import Address

from cartera_sdk import EmailContent, OutboundMessage, SendFailure

__all__ = [
    "RESERVED_HEADERS",
    "UNSUBSCRIBE_MAILTO_KEY",
    "UNSUBSCRIBE_URL_KEY",
    "email_content",
    "extra_headers",
    "is_valid_address",
    "redact",
    "unsubscribe_headers",
]

#: ``OutboundMessage.metadata`` keys carrying the unsubscribe targets (RFC 2369 / RFC 8058).
UNSUBSCRIBE_URL_KEY = "unsubscribe_url"
UNSUBSCRIBE_MAILTO_KEY = "unsubscribe_mailto"

#: Headers the providers build themselves; ``EmailContent.headers`` cannot override them.
RESERVED_HEADERS = frozenset(
    {
        "from", "to", "cc", "bcc", "subject", "date", "message-id", "reply-to", "sender",
        "mime-version", "content-type", "content-transfer-encoding", "return-path",
        "received", "dkim-signature",
    }
)  # fmt: skip

_ADDRESS = re.compile(r"<?[^\s<>@]+@[^\s<>@]+>?")


def redact(text: str, limit: int = 200) -> str:
    """A provider reply made safe for ``SendFailure.reason``: no e-mail addresses, short."""
    cleaned = _ADDRESS.sub("<redacted>", " ".join(text.split()))
    return cleaned[:limit] or "no detail"


def is_valid_address(value: str) -> bool:
    """True for a bare ``local@domain`` address (no display name, no CR/LF)."""
    if not value or any(c in value for c in "\r\n<>,") or value.count("@") != 1:
        return False
    try:
        address = Address(addr_spec=value)
    except (ValueError, HeaderParseError, IndexError):
        return False
    return bool(address.username and address.domain and "." in address.domain)


def email_content(message: OutboundMessage) -> EmailContent | SendFailure:
    """The message's :class:`EmailContent`, or the permanent failure explaining why not."""
    content = message.content
    if not isinstance(content, EmailContent):
        return SendFailure(
            kind="permanent", code="unsupported_content", reason="only email content is supported"
        )
    if not is_valid_address(message.to):
        return SendFailure(
            kind="permanent", code="invalid_recipient", reason="recipient is not an address"
        )
    if any(not is_valid_address(cc) for cc in content.cc):
        return SendFailure(kind="permanent", code="invalid_recipient", reason="invalid cc address")
    if content.reply_to is not None and not is_valid_address(content.reply_to):
        return SendFailure(kind="permanent", code="invalid_reply_to", reason="invalid reply-to")
    return content


def unsubscribe_headers(message: OutboundMessage, *, one_click: bool) -> dict[str, str]:
    """``List-Unsubscribe`` (and RFC 8058 ``List-Unsubscribe-Post``) from the metadata.

    Uses ``metadata["unsubscribe_url"]`` (http/https) and ``metadata["unsubscribe_mailto"]``
    (an address or ``mailto:`` URI). One-click is only announced for an https URL.
    """
    url = message.metadata.get(UNSUBSCRIBE_URL_KEY, "").strip()
    mailto = message.metadata.get(UNSUBSCRIBE_MAILTO_KEY, "").strip()
    targets: list[str] = []
    if url.startswith(("https://", "http://")) and not any(c in url for c in "<>\r\n ,"):
        targets.append(f"<{url}>")
    else:
        url = ""
    if mailto:
        mailto = mailto if mailto.startswith("mailto:") else f"mailto:{mailto}"
        if not any(c in mailto for c in "<>\r\n ,"):
            targets.append(f"<{mailto}>")
    if not targets:
        return {}
    headers = {"List-Unsubscribe": ", ".join(targets)}
    if one_click and url.startswith("https://"):
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers


def extra_headers(
    message: OutboundMessage, content: EmailContent, *, one_click: bool
) -> dict[str, str]:
    """Custom headers to add: the content's own (minus reserved ones), then unsubscribe.

    A ``List-Unsubscribe`` set explicitly in ``EmailContent.headers`` wins over metadata.
    """
    headers: dict[str, str] = {}
    for name, value in content.headers.items():
        if name.lower() in RESERVED_HEADERS or "\n" in value or "\r" in value:
            continue
        headers[name] = value
    present = {name.lower() for name in headers}
    if "list-unsubscribe" not in present:
        headers.update(unsubscribe_headers(message, one_click=one_click))
    return headers
