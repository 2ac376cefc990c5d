"""``python -m services.api``: serve the API with uvicorn on ``KAIZEN_API_HOST:KAIZEN_API_PORT``."""

from __future__ import annotations

import os
import signal
import sys

import uvicorn

from services.api.main import create_app, loop_failed
from shared.service import configure_logging
from shared.settings import get_settings


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level)
    # SIGTERM makes uvicorn drain and stop; the exit code then tells the supervisor why.
    app = create_app(settings, on_loop_failure=lambda: os.kill(os.getpid(), signal.SIGTERM))
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        # Our logging setup already formats every record; uvicorn's would replace it.
        log_config=None,
    )
    if loop_failed(app):
        sys.exit(1)


if __name__ == "__main__":
    main()
