"""The scenarios of /work/shared/PERF.md that exist today, as a table.

Adding one is a few lines: append a `Scenario` to SCENARIOS. Fields:

* kind: "load" (closed-loop rounds + open-loop latency) or "memory" (RSS idle and with
  `idle_conns` idle keep-alive connections);
* method, path (below the API prefix: proxies get /echo<path>, direct gets /v1<path>),
  request_body (bytes sent with --body-file), response_size (the backend's --body-size),
  connections (loadgen -c), headers (loadgen -H, also used by the sanity request);
* loadgen_args: any other loadgen flags (e.g. ["--insecure"] for a TLS scenario);
* hooks: {target name: function(cfg, ctx)} changing that target's config before it
  starts (see targets.py for what `cfg` is for each target); ctx is the Target;
* targets: which targets run it (default: all; `direct` is the latency reference,
  nginx the CPU reference).

Example, a policies scenario (once Portico has policies):

    Scenario("policies", "GET with subscription key + validate-jwt + rate limit + set-header",
             headers={"Ocp-Apim-Subscription-Key": "k1", "Authorization": "Bearer " + JWT},
             hooks={"portico": lambda cfg, t: cfg["apis"][0].update(policies=POLICY_DOC),
                    "nginx": lambda cfg, t: cfg["location"].append("proxy_set_header X-Via perf;")}),
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .targets import ALL_TARGETS


@dataclass
class Scenario:
    name: str
    description: str
    kind: str = "load"
    method: str = "GET"
    path: str = "/hello"
    request_body: int = 0
    response_size: int = 12
    connections: int = 64
    headers: dict = field(default_factory=dict)
    loadgen_args: list = field(default_factory=list)
    hooks: dict[str, Callable] = field(default_factory=dict)
    targets: list = field(default_factory=lambda: list(ALL_TARGETS))
    # memory scenarios
    idle_conns: int = 10_000
    load_during_idle: bool = True   # also run an open-loop load while the idle connections are held

    def definition(self) -> dict:
        d = {k: getattr(self, k) for k in ("description", "kind", "method", "path", "request_body",
                                          "response_size", "connections", "headers", "loadgen_args",
                                          "targets")}
        d["hooks"] = sorted(self.hooks)
        if self.kind == "memory":
            d["idle_conns"] = self.idle_conns
        return d


SCENARIOS: list[Scenario] = [
    Scenario("plain", "GET, 12-byte response, 64 connections"),
    Scenario("body16k", "GET, 16 KiB response, 64 connections", response_size=16384),
    Scenario("post16k", "POST with a 16 KiB request body, 12-byte response, 64 connections",
             method="POST", request_body=16384),
    Scenario("connections", "RSS idle and with 10,000 idle keep-alive connections (one GET each), "
             "then a fixed open-loop load while they are held", kind="memory"),
]

BY_NAME = {s.name: s for s in SCENARIOS}
