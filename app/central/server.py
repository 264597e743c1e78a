"""Running the app under uvicorn with a graceful shutdown.

On SIGTERM uvicorn stops accepting and lets in-flight requests finish; before that we close
every live WebSocket with 1001 (going away) so dashboards reconnect to the other instance.
"""

from __future__ import annotations

import contextlib
import socket

import uvicorn
from fastapi import FastAPI

from app.central.state import AppState


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._parking_app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        state: AppState = self._parking_app.state.parking
        with contextlib.suppress(Exception):
            await state.hub.close_all(1001)
        await super().shutdown(sockets)


def serve(app: FastAPI, *, host: str, port: int, ws_ping_interval_s: float) -> None:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # our JSON logging is already configured
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
        ws_ping_interval=ws_ping_interval_s,
        ws_ping_timeout=ws_ping_interval_s,
        timeout_graceful_shutdown=20,
        server_header=False,
    )
    GracefulServer(config, app).run()
