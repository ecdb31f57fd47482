"""Rendering portal pages: one Jinja2 environment (autoescaping, strict undefined), the
filters the templates share, and the security headers every page carries."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

__all__ = ["PAGE_HEADERS", "STATIC_DIR", "environment", "render"]

_HERE = Path(__file__).parent
STATIC_DIR = _HERE / "static"

# No script runs on these pages; nothing is framed; forms post only here.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def _when(moment: datetime | None) -> str:
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def _when_exact(moment: datetime | None) -> str:
    return "—" if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(value: date) -> str:
    return value.strftime("%d %b")


def _number(value: int) -> str:
    # Thin spaces group digits without implying a decimal convention.
    return f"{value:,}".replace(",", "\u2009")


def hours_text(value: Decimal | int | str) -> str:
    """Hours as every page writes them (`{{ x | hours }}`): digits grouped by thin spaces, no
    trailing zeros ("1 400", "12.5"), whether the service gave a Decimal or its text."""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    return format(number.normalize(), ",f").replace(",", "\u2009")


def _plural(singular: str, count: int, plural: str | None = None) -> str:
    """`{{ "entry" | plural(n, "entries") }}`: the word that goes with the number."""
    return singular if count == 1 else (plural or singular + "s")


def _sentence(text: str) -> str:
    """Service messages are one lower-case line; on a page they read as a sentence."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


# CommonMark with tables. Raw HTML in the text is shown as text, never passed through, and
# markdown-it's link check refuses javascript:, vbscript:, file: and non-image data: links.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


def _markdown(text: str) -> Markup:
    """`{{ card.body | markdown }}`: a card as HTML, safe to put in a page. Its headings sit
    two levels below the page's own (a card's `# Title` is not the page's heading)."""
    tokens = _MARKDOWN.parse(text or "")
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1]) + 2)}"
    return Markup(_MARKDOWN.renderer.render(tokens, _MARKDOWN.options, {}))


def _build() -> Environment:
    env = Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(["html", "svg"], default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=_when,
        when_exact=_when_exact,
        day=_day,
        number=_number,
        hours=hours_text,
        plural=_plural,
        sentence=_sentence,
        markdown=_markdown,
    )
    return env


environment = _build()


def render(
    name: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    private: bool = False,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """A page. `private` pages (anything that shows who is signed in) are never cached."""
    html = environment.get_template(name).render(**context)
    response = HTMLResponse(html, status_code=status)
    response.headers.update(PAGE_HEADERS)
    response.headers["Cache-Control"] = "no-store" if private else "no-cache"
    if headers:
        response.headers.update(headers)
    return response
