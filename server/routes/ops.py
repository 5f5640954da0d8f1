"""Operations: health, metrics, the OpenAPI document and the server's public keys."""

from __future__ import annotations

from aiohttp import web

from schakel.server.data import ping
from schakel.server.registry import Call, RouteTable, def_ref, obj

routes = RouteTable("operations")

#: The OpenAPI document, built once by ``make_app`` from the route registry.
OPENAPI: web.AppKey[dict] = web.AppKey("schakel.openapi", dict)


@routes.route("GET", "/healthz", auth="unsigned", who="anyone",
              response=obj(["status"], status={"const": "ok"}))
async def healthz(call: Call) -> web.Response:
    """Liveness: the server answers and its database reads.

    Example::

        GET /healthz
        200 {"status": "ok"}
    """
    await call.ctx.store.read(ping)
    return call.json({"status": "ok"})


@routes.route("GET", "/metrics", auth="unsigned", who="anyone (bind the server to loopback)",
              response=None, content_type="text/plain")
async def metrics(call: Call) -> web.Response:
    """Prometheus metrics: requests by route and status, latencies, events and signals
    stored, sync waiters.

    Example::

        GET /metrics
        200 text/plain  schakel_http_requests_total{method="GET",route="/healthz",status="200"} 1.0
    """
    return web.Response(body=call.ctx.metrics.render(),
                        headers={"Content-Type": call.ctx.metrics.content_type})


@routes.route("GET", "/v1/openapi.json", auth="unsigned", who="anyone",
              response={"type": "object", "description": "an OpenAPI 3.1 document"})
async def openapi(call: Call) -> web.Response:
    """This API as an OpenAPI 3.1 document, built from the route registry.

    Example::

        GET /v1/openapi.json
        200 {"openapi": "3.1.0", "info": {...}, "paths": {...}, "components": {...}}
    """
    return call.json(call.request.app[OPENAPI])


KEY = def_ref("common", "key32")


@routes.route("GET", "/v1/server", auth="unsigned", who="anyone",
              response=obj(["fingerprint", "log", "gate", "log_key_id", "gate_key_id",
                            "log_fingerprint", "gate_fingerprint"],
                           fingerprint={"type": "string"}, log=KEY, gate=KEY,
                           log_key_id=def_ref("common", "keyid"),
                           gate_key_id=def_ref("common", "keyid"),
                           log_fingerprint={"type": "string"}, gate_fingerprint={"type": "string"}))
async def server_keys(call: Call) -> web.Response:
    """The server's log (Ed25519) and gate (X25519) public keys, for the genesis.  Unsigned:
    the coordinator's client believes them only when the server fingerprint it computes over
    the two keys is the one the operator printed with ``schakel server init``; the
    fingerprints answered here are for display (protocol.md §4.3).

    Example::

        GET /v1/server
        200 {"fingerprint": "95518 60270 ...", "log": "<key32>", "gate": "<key32>",
             "log_key_id": "<keyid>", "gate_key_id": "<keyid>",
             "log_fingerprint": "46179 96289 ...", "gate_fingerprint": "..."}
    """
    return call.json(call.ctx.keys.fingerprints())


__all__ = ["routes", "OPENAPI"]
