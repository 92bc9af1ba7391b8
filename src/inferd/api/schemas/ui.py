"""Operations of the built-in status page (``inferd.api.ui``): static files, open to all."""

from __future__ import annotations

from inferd.api.schemas._operation import Media, Operation

TAG = "ui"

OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/ui", "ui_page", "the status page (HTML; reads the JSON API)", TAG,
              {200: Media({"text/html": str})}),
    Operation("GET", "/ui/app.js", "ui_script", "the status page's script", TAG,
              {200: Media({"text/javascript": str})}),
    Operation("GET", "/ui/chart.js", "ui_chart_script", "the status page's chart drawing", TAG,
              {200: Media({"text/javascript": str})}),
    Operation("GET", "/ui/style.css", "ui_style", "the status page's style sheet", TAG,
              {200: Media({"text/css": str})}),
)  # fmt: skip
