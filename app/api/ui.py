"""The web chat page: `/` serves `app/ui/index.html`, `/ui/...` its CSS, JS and icons.

Plain files, no build step and nothing fetched from elsewhere, so the page works the same under
docker compose, as a Databricks App and offline. The page calls the API with same-origin
fetches, so whatever identity the transport carries (the X-Forwarded-Email header under
Databricks Apps) scopes what it sees, exactly as for any other client.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

UI_DIR = Path(__file__).resolve().parent.parent / "ui"

# Everything the page loads comes from this origin: no inline script or style, no CDN, no frames.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'self'"
)
# File names carry no content hash, so the browser revalidates every time (cheap: ETag -> 304),
# and a redeployed page never runs against stale JS.
COMMON_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
PAGE_HEADERS = {
    **COMMON_HEADERS,
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "same-origin",
}

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=FileResponse)
async def chat_page() -> FileResponse:
    return FileResponse(UI_DIR / "index.html", media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


class UIFiles(StaticFiles):
    """StaticFiles with the page's headers on every file it serves."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        headers = PAGE_HEADERS if path.endswith(".html") else COMMON_HEADERS
        for name, value in headers.items():
            response.headers[name] = value
        return response


def mount_ui(app: FastAPI) -> None:
    """Serve the chat page at `/` and its assets under `/ui/`."""
    app.include_router(router)
    app.mount("/ui", UIFiles(directory=UI_DIR), name="ui")
