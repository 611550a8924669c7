"""Running the app under uvicorn: binding, logging, graceful shutdown, and a load failure as an exit.

Graceful shutdown is uvicorn's: on SIGTERM or Ctrl-C it stops accepting connections, lets every
request in flight finish (up to ``shutdown_timeout_s``), then runs the app's shutdown, which drains
the batcher. The socket is bound here rather than by uvicorn so that ``--port 0`` can report the
port it got before serving (tests and scripts read the ``listening on`` line).
"""

from __future__ import annotations

import copy
import logging
import socket

from .config import ServeConfig

__all__ = ["serve", "bind"]

log = logging.getLogger("rosberta_serve")


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only when it
    # is, and without it Nagle + delayed ACKs add ~40 ms to every small response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port (or 0 for any free one)"
        ) from exc
    sock.set_inheritable(True)
    return sock


def _log_config(level: str) -> dict:
    from uvicorn.config import LOGGING_CONFIG

    cfg = copy.deepcopy(LOGGING_CONFIG)
    cfg["loggers"]["rosberta_serve"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return cfg


def serve(config: ServeConfig) -> None:
    """Serve until SIGTERM/SIGINT. Raises the load error if the model cannot be loaded."""
    import uvicorn

    from .app import create_app

    failure: list[BaseException] = []
    server: uvicorn.Server | None = None

    def on_fatal(exc: BaseException) -> None:
        failure.append(exc)
        if server is not None:
            server.should_exit = True

    app = create_app(config, on_fatal=on_fatal)
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_config=_log_config(config.log_level),
        log_level=config.log_level,
        access_log=config.access_log,
        timeout_graceful_shutdown=round(config.shutdown_timeout_s),  # uvicorn takes whole seconds
        timeout_keep_alive=config.keep_alive_s,  # longer than clients' pool expiry: see ServeConfig
        lifespan="on",
    )
    server = uvicorn.Server(uv_config)
    sock = bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    log.info(
        "rosberta-serve listening on http://%s:%d (model %s, auth %s)",
        shown,
        port,
        config.model_dir,
        "on" if config.api_key else "off",
    )
    # A line on stdout too, flushed, for scripts that start the server and need the port.
    print(f"rosberta-serve: listening on http://{shown}:{port}", flush=True)
    server.run(sockets=[sock])
    if failure:
        raise failure[0]
