"""The floor of ``bench/fastapi_baseline.py --bare``: an ASGI app that answers every request
with one fixed V2 JSON response, under inferd's own front end (uvicorn, uvloop,
:class:`~inferd.transport.http.protocol.InferdHttpProtocol`, no server header), so that the
front end's cost per request can be told apart from the app's.

Run: ``python _bare_app.py PORT WORKERS`` from ``bench/``.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

BODY = (
    b'{"model_name":"small","model_version":"1","outputs":[{"name":"y","datatype":"FP32",'
    b'"shape":[1,1],"data":[19.848656]}]}'
)
HEADERS = [
    (b"content-type", b"application/json"),
    (b"x-model-version", b"1"),
    (b"content-length", str(len(BODY)).encode()),
]
Message = MutableMapping[str, Any]


async def app(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    """Read the request, answer :data:`BODY`."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body", False):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


if __name__ == "__main__":
    import uvicorn

    from inferd.transport.http.protocol import InferdHttpProtocol

    uvicorn.run(
        "_bare_app:app", host="127.0.0.1", port=int(sys.argv[1]), workers=int(sys.argv[2]),
        loop="uvloop", http=InferdHttpProtocol, lifespan="off", log_level="warning",
        access_log=False, proxy_headers=False, server_header=False,
    )  # fmt: skip
