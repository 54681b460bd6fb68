"""The console's static pages (chalicelib/console/), served by the API itself under /console/.

Nothing is read at import: the first request for a file reads it once and keeps it (with its ETag) for
the container's life, so a container that only answers WeChat callbacks never touches the disk for
the console and the API's cold start stays what it was. Only files in the folder are served (the name
is full-matched against a short pattern, then looked up in the folder's listing): no path escapes it.

Caching: the pages and their own scripts and styles are `no-cache` (revalidated by ETag on each load: a
304 costs no body, and a deploy is seen at once, never a new page with an old script); the vendored
libraries (VENDORED: they change only with their version) may be kept for a day.
"""
from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path

FOLDER = Path(__file__).with_name("console")
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
# Text only: API Gateway passes these through as they are (a binary type would need binaryMediaTypes).
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml; charset=utf-8",
                 ".json": "application/json; charset=utf-8"}
VENDORED = ("uPlot.", "jsQR.")
PAGES = {"": "index.html", "till": "till.html", "dashboard": "dashboard.html", "guide": "guide.html"}
# The pages load only their own scripts and call only this API; the till may use the camera.
SECURITY = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
                                       "style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; "
                                       "frame-ancestors 'none'"}

_cache: dict[str, tuple[str, str, str]] = {}
_lock = threading.Lock()


def _load(filename: str) -> tuple[str, str, str] | None:
    """(text, content type, etag) of a file of the folder, or None."""
    with _lock:
        if filename in _cache:
            return _cache[filename]
        path = FOLDER / filename
        content_type = CONTENT_TYPES.get(path.suffix)
        if content_type is None or not NAME.fullmatch(filename) or not path.is_file():
            return None
        text = path.read_text(encoding="utf-8")
        etag = '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'
        _cache[filename] = (text, content_type, etag)
        return _cache[filename]


def serve(name: str, if_none_match: str | None) -> tuple[int, str, dict]:
    """(status, body, headers) for /console/<name> (`name` "" for the index, a page name or a file name)."""
    filename = PAGES.get(name, name)
    found = _load(filename) if NAME.fullmatch(filename) else None
    if found is None:
        return 404, "", {}
    text, content_type, etag = found
    cache = "public, max-age=86400" if filename.startswith(VENDORED) else "no-cache"
    headers = {"Content-Type": content_type, "ETag": etag, "Cache-Control": cache, **SECURITY}
    if if_none_match and etag in [tag.strip() for tag in if_none_match.split(",")]:
        return 304, "", headers
    return 200, text, headers
