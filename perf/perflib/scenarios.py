"""The scenarios of /work/shared/PERF.md that exist today, as a table.

Adding one is a few lines: append a `Scenario` to SCENARIOS. Fields:

* kind: "load" (closed-loop rounds + open-loop latency) or "memory" (RSS idle and with
  `idle_conns` idle keep-alive connections);
* method, path (below the API prefix: proxies get /echo<path>, direct gets /v1<path>),
  request_body (bytes sent with --body-file), response_size (the backend's --body-size),
  response_chunk (the backend's --chunk-size: 0 for Content-Length),
  connections (loadgen -c), headers (loadgen -H, also used by the sanity request);
* loadgen_args: any other loadgen flags (e.g. ["--insecure"] for a TLS scenario);
* hooks: {target name: function(cfg, ctx)} changing that target's config before it
  starts (see targets.py for what `cfg` is for each target); ctx is the Target;
* targets: which targets run it (default: DEFAULT_TARGETS, i.e. all but
  `portico-plain`; `direct` is the latency reference, nginx the CPU reference);
* setup: function(scenario, workdir) -> dict, run once per scenario run before any
  target starts (e.g. to make keys and tokens); what it returns is kept in the results;
* verify: function(target, scenario), run after the sanity request of each target: may
  raise TargetFailed (e.g. to check that a policy really refuses what it should);
* reference: a second CPU reference besides nginx (e.g. "portico-plain"): the report
  adds each target's CPU per request divided by the reference's, per round and median.

The `policies` scenario runs Portico twice side by side: `portico` with a subscription
key (header), validate-jwt (RS256), rate-limit-by-key and set-header, and
`portico-plain` with the same API and no policies, so that CPU per request with
policies / without is measured in the same run (nginx and haproxy are skipped there).
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import jwt
from .targets import DEFAULT_TARGETS, Target, TargetFailed


@dataclass
class Scenario:
    name: str
    description: str
    kind: str = "load"
    method: str = "GET"
    path: str = "/hello"
    request_body: int = 0
    response_size: int = 12
    response_chunk: int = 0
    connections: int = 64
    headers: dict = field(default_factory=dict)
    loadgen_args: list = field(default_factory=list)
    hooks: dict[str, Callable] = field(default_factory=dict)
    targets: list = field(default_factory=lambda: list(DEFAULT_TARGETS))
    setup: Callable[["Scenario", Path], dict] | None = None
    verify: Callable[[Target, "Scenario"], None] | None = None
    reference: str | None = None
    # memory scenarios
    idle_conns: int = 10_000
    load_during_idle: bool = True   # also run an open-loop load while the idle connections are held

    def definition(self) -> dict:
        d = {k: getattr(self, k) for k in ("description", "kind", "method", "path", "request_body",
                                          "response_size", "response_chunk", "connections", "headers", "loadgen_args",
                                          "targets")}
        d["hooks"] = sorted(self.hooks)
        if self.reference:
            d["reference"] = self.reference
        if self.setup:
            d["setup"] = self.setup.__name__
        if self.kind == "memory":
            d["idle_conns"] = self.idle_conns
        return d


# ---------------------------------------------------------------- policies

SUBSCRIPTION_KEY = "perf-subscription-key-0001"
RATE_LIMIT_CALLS = 100_000_000   # never reached: at 50k req/s a 300 s window holds 15M calls
RATE_LIMIT_PERIOD_S = 300        # the longest renewal-period rate-limit takes (builtin/limits.rs)

POLICY_TEMPLATE = """<policies>
    <inbound>
        <base />
        <validate-jwt header-name="Authorization" require-scheme="Bearer" output-token-variable-name="jwt">
            <issuer-signing-keys>
                <key id="{kid}" n="{n}" e="{e}" />
            </issuer-signing-keys>
            <audiences>
                <audience>{audience}</audience>
            </audiences>
            <issuers>
                <issuer>{issuer}</issuer>
            </issuers>
        </validate-jwt>
        <rate-limit-by-key calls="{calls}" renewal-period="{period}" counter-key="@(context.Subscription.Id)" />
        <set-header name="X-Jwt-Subject" exists-action="override">
            <value>@(((Jwt)context.Variables["jwt"]).Subject)</value>
        </set-header>
    </inbound>
    <backend>
        <base />
    </backend>
    <outbound>
        <base />
    </outbound>
    <on-error>
        <base />
    </on-error>
</policies>
"""

_policies: dict = {}   # filled by _policies_setup for the portico hook


def _policies_setup(sc: Scenario, workdir: Path) -> dict:
    """An RSA key pair and one long-lived RS256 token (openssl), the policy document."""
    m = jwt.make(workdir)
    sc.headers["Authorization"] = f"Bearer {m.token}"
    doc = POLICY_TEMPLATE.format(kid=jwt.KID, n=m.n, e=m.e, audience=jwt.AUDIENCE, issuer=jwt.ISSUER,
                                 calls=RATE_LIMIT_CALLS, period=RATE_LIMIT_PERIOD_S)
    _policies["document"] = doc
    (workdir / "policies.xml").write_text(doc)
    return {"jwt_key_file": str(m.key_file), "jwt_claims": m.claims, "jwt_n": m.n, "jwt_e": m.e,
            "token_bytes": len(m.token), "policy_file": str(workdir / "policies.xml")}


def _portico_with_policies(cfg: dict, t: Target) -> None:
    api = cfg["apis"][0]
    api["subscriptionRequired"] = True
    api["policies"] = _policies["document"]
    cfg["subscriptions"] = [{"id": "perf", "name": "perf client", "scope": f"api:{api['id']}",
                             "primaryKey": SUBSCRIPTION_KEY}]


def _status(t: Target, sc: Scenario, drop: str) -> int:
    headers = {k: v for k, v in sc.headers.items() if k != drop}
    c = http.client.HTTPConnection("127.0.0.1", t.port, timeout=5)
    try:
        c.request(sc.method, t.prefix + sc.path, headers=headers)
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def _verify_policies(t: Target, sc: Scenario) -> None:
    """With policies, a call without the token or without the key must be refused; the
    plain target must not care. Otherwise the run would measure the wrong thing."""
    if t.name == "direct":
        return
    want = 401 if t.name == "portico" else 200
    for drop in ("Authorization", "Ocp-Apim-Subscription-Key"):
        got = _status(t, sc, drop)
        if got != want:
            raise TargetFailed(f"{t.name}: a call without {drop} answered {got}, expected {want}")


POLICIES = Scenario(
    "policies",
    "GET with subscription key (header) + validate-jwt (RS256) + rate-limit-by-key + set-header "
    "(portico) vs the same API without policies (portico-plain), 64 connections",
    headers={"Ocp-Apim-Subscription-Key": SUBSCRIPTION_KEY},   # + Authorization, from setup
    hooks={"portico": _portico_with_policies},
    targets=["direct", "portico", "portico-plain"],
    setup=_policies_setup,
    verify=_verify_policies,
    reference="portico-plain",
)

SCENARIOS: list[Scenario] = [
    Scenario("plain", "GET, 12-byte response, 64 connections"),
    Scenario("body16k", "GET, 16 KiB response, 64 connections", response_size=16384),
    Scenario("chunked16k", "GET, 16 KiB response the backend sends in 4 KiB chunks, 64 connections",
             response_size=16384, response_chunk=4096),
    Scenario("post16k", "POST with a 16 KiB request body, 12-byte response, 64 connections",
             method="POST", request_body=16384),
    Scenario("connections", "RSS idle and with 10,000 idle keep-alive connections (one GET each), "
             "then a fixed open-loop load while they are held", kind="memory"),
    POLICIES,
]

BY_NAME = {s.name: s for s in SCENARIOS}
