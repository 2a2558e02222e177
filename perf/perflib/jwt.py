"""An RS256 key pair and a long-lived access token for the `policies` scenario, made
with the `openssl` command line (the harness uses the Python standard library only).

`make(workdir)` writes the private key to `workdir/jwt-key.pem` (so a run can be
traced), and returns the public key as JWK `n`/`e` (base64url) and one token signed
with it. The token is made once per run, before any target starts, and every request
of the scenario carries it.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ISSUER = "https://perf.portico.test/"
AUDIENCE = "api://perf"
KID = "perf-key-1"
SUBJECT = "perf-client"


@dataclass
class JwtMaterial:
    key_file: Path
    n: str          # base64url, no padding
    e: str
    token: str
    claims: dict


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _openssl(args: list[str], stdin: bytes | None = None) -> bytes:
    r = subprocess.run(["openssl", *args], input=stdin, capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {r.stderr.decode(errors='replace').strip()}")
    return r.stdout


def make(workdir: Path, lifetime_s: int = 10 * 365 * 86400) -> JwtMaterial:
    workdir.mkdir(parents=True, exist_ok=True)
    key = workdir / "jwt-key.pem"
    _openssl(["genrsa", "-out", str(key), "2048"])
    modulus = _openssl(["rsa", "-in", str(key), "-noout", "-modulus"]).decode().strip()
    m = re.fullmatch(r"Modulus=([0-9A-Fa-f]+)", modulus)
    if not m:
        raise RuntimeError(f"unexpected openssl -modulus output: {modulus[:80]!r}")
    n = bytes.fromhex(m.group(1)).lstrip(b"\0")
    text = _openssl(["rsa", "-in", str(key), "-noout", "-text"]).decode()
    m = re.search(r"publicExponent: (\d+)", text)
    if not m:
        raise RuntimeError("no publicExponent in openssl rsa -text output")
    e_int = int(m.group(1))
    e = e_int.to_bytes((e_int.bit_length() + 7) // 8, "big")

    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": SUBJECT, "scp": "perf.read",
              "iat": now, "nbf": now - 60, "exp": now + lifetime_s}
    header = {"alg": "RS256", "typ": "JWT", "kid": KID}
    signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                     + b64url(json.dumps(claims, separators=(",", ":")).encode()))
    signature = _openssl(["dgst", "-sha256", "-sign", str(key)], stdin=signing_input.encode())
    return JwtMaterial(key_file=key, n=b64url(n), e=b64url(e),
                       token=f"{signing_input}.{b64url(signature)}", claims=claims)
