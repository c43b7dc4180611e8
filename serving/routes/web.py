"""GET /: a small page that shows a user's recommendations with posters and reasons."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["web"])


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index() -> HTMLResponse:
    page = resources.files("serving").joinpath("web/index.html").read_text(encoding="utf-8")
    return HTMLResponse(page)
