"""The built-in status page, served at ``/ui``.

GET /ui              the page (HTML)
GET /ui/app.js       its script: polls the JSON API and draws the tables and charts
GET /ui/chart.js     a small SVG line chart of our own
GET /ui/style.css    its style

The page is static: it holds no data, so it is open like health (docs/security.md). Its
script reads ``/v1/models``, ``/v1/models/{m}/metrics``, ``/v1/models/{m}/drift``,
``/v1/experiments``, ``/v1/rollouts`` and ``/v1/alerts`` with the key entered in the page
(auth on), or with none (auth off), and says "not available" for whatever answers 404 or
403. The files ship in the package (``inferd/ui/static``); nothing comes from a CDN.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from inferd.errors import require_method

Result = tuple[int, bytes, list[tuple[bytes, bytes]]]

# name under /ui -> (file in inferd/ui/static, content type)
ASSETS: dict[str, tuple[str, str]] = {
    "": ("index.html", "text/html; charset=utf-8"),
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "chart.js": ("chart.js", "text/javascript; charset=utf-8"),
    "style.css": ("style.css", "text/css; charset=utf-8"),
}
# Scripts only from this server, no inline code, no framing by other sites; the script
# talks to this origin only.
_SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    # The files change only with the installed package: revalidate rather than go stale
    # after an upgrade.
    (b"cache-control", b"no-cache"),
]


@cache
def _read(filename: str) -> bytes:
    """An asset's bytes, read once per process from the installed package."""
    return resources.files("inferd.ui").joinpath("static", filename).read_bytes()


def is_ui_path(parts: list[str]) -> bool:
    """Whether the split path (``/ui/...``) is one of the page's files."""
    return parts[0] == "ui" and (len(parts) == 1 or (len(parts) == 2 and parts[1] in ASSETS))


def ui_response(method: str, parts: list[str]) -> Result:
    """The page or one of its assets; ``parts`` is the split path, ``["ui", ...]``.

    Raises:
        MethodNotAllowed: for a method other than GET.
    """
    require_method(method, "GET")
    name = parts[1] if len(parts) == 2 else ""
    filename, content_type = ASSETS[name]
    headers = [(b"content-type", content_type.encode()), *_SECURITY_HEADERS]
    return 200, _read(filename), headers
