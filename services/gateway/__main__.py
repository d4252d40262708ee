"""`python -m services.gateway [--port 8080] [--router H:P] [--upstreams FILE]`: the OpenAI-compatible
gateway on uvicorn until SIGTERM or SIGINT (uvicorn stops taking connections, lets requests in flight
finish for TAGROUTER_GRACE_SECONDS, then closes the router channel and the upstream client)."""
from __future__ import annotations

import argparse
import os
import ssl
import sys

import uvicorn

from services.common import tracing
from services.common.metrics import serve_metrics
from services.common.server import configure_logging
from services.common.settings import ConfigError, GatewaySettings, ServerSettings
from services.common.tracing_settings import TracingSettings
from services.gateway.app import InFlightLimit, create

FLAGS = {"--router": "ROUTER_ADDR", "--upstreams": "TAGROUTER_UPSTREAMS"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.gateway",
                                     description="Run the OpenAI-compatible gateway (configured by environment variables).")
    parser.add_argument("--port", type=int, help="HTTP port (overrides TAGROUTER_PORT; default 8080)")
    for option, variable in FLAGS.items():
        parser.add_argument(option, help=f"overrides {variable}")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    env.update({variable: getattr(args, option[2:]) for option, variable in FLAGS.items() if getattr(args, option[2:])})
    try:
        server = ServerSettings.from_env("gateway", env).with_port(args.port)
        settings = GatewaySettings.from_env(env)
        configure_logging(server.log_level)
        tracing.configure(TracingSettings.from_env("gateway", env))
        app = InFlightLimit(create(settings), server.max_concurrent_rpcs)
    except ConfigError as err:
        print(f"gateway: configuration error: {err}", file=sys.stderr)
        return 2
    serve_metrics(server.metrics_port, server.metrics_host)
    tls = {}
    if server.tls:
        tls = {"ssl_certfile": str(server.tls_cert_file), "ssl_keyfile": str(server.tls_key_file)}
        if server.tls_client_ca_file is not None:
            tls.update(ssl_ca_certs=str(server.tls_client_ca_file), ssl_cert_reqs=ssl.CERT_REQUIRED)
    config = uvicorn.Config(app, host=server.host.strip("[]"), port=server.port, log_level=server.log_level.lower(),
                            timeout_graceful_shutdown=int(server.grace_seconds), access_log=False, log_config=None,
                            **tls)
    try:
        uvicorn.Server(config).run()
    finally:
        tracing.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
