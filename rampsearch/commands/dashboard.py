"""`rampsearch dashboard`: optuna-dashboard on a study's storage (loopback by default)."""

from __future__ import annotations

import argparse
import socketserver
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ..errors import UserError
from ..options import add_study_arguments
from ..study import storage as study_lib

HELP = "open the Optuna dashboard on a study"
DESCRIPTION = ("Serve optuna-dashboard on the study's storage. It reads the storage live, "
               "so a study being searched by `rampsearch run` updates as trials end.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_study_arguments(parser)
    parser.add_argument("--storage", help="serve this Optuna storage URL or journal file instead")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", default=8080, type=int, help="port (default 8080)")


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise UserError(f"--port {args.port} is not a TCP port; give one from 1 to 65535 "
                        f"(8080 by default).")
    from optuna_dashboard import wsgi

    if args.storage:
        url = args.storage
    else:
        url = study_lib.find_study(args.results, args.study).storage_url
    app = wsgi(study_lib.open_storage(url))
    try:
        server = make_server(args.host, args.port, app, server_class=ThreadingWSGIServer,
                             handler_class=QuietHandler)
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}. Choose "
                        f"another --port.") from None
    print(f"Optuna dashboard on http://{args.host}:{args.port}/ serving {url} (Ctrl-C to stop)",
          flush=True)
    serve_until_interrupted(server)
    print("dashboard stopped", flush=True)
    return 0


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    """A browser's parallel requests are served at once; none outlives the server."""

    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    """No line per request: the dashboard polls the storage every few seconds."""

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve_until_interrupted(server: WSGIServer) -> None:
    """Serve from a thread until Ctrl-C or SIGTERM (the CLI turns it into Ctrl-C) reaches the
    main thread, then stop cleanly. Requests run in other threads, so no request handler
    can swallow the interrupt (wsgiref's catches every exception, KeyboardInterrupt too)."""
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        server.shutdown()
        return
    finally:
        server.server_close()
    raise UserError("the dashboard's server stopped by itself (see the lines above); start "
                    "`rampsearch dashboard` again.")
