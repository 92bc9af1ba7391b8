"""JWT bearer tokens: signatures from a PEM key, an HMAC secret or a JWKS file; claims."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from inferd.api.app import build_app
from inferd.api.http import HttpApp
from inferd.errors import ConfigError, Unauthenticated
from inferd.security.jwt import JwtSettings, JwtVerifier
from inferd.security.keys import Role
from inferd.settings import Settings

X = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(private: Any) -> bytes:
    return bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ))  # fmt: skip


def token(key: Any = RSA, alg: str = "RS256", headers: dict[str, Any] | None = None,
          **claims: Any) -> str:  # fmt: skip
    body = {"sub": "alice", "role": "predict", "exp": int(time.time()) + 600, **claims}
    return jwt.encode(body, key, algorithm=alg, headers=headers)


@pytest.fixture
def pem_file(tmp_path: Path) -> Path:
    path = tmp_path / "idp.pem"
    path.write_bytes(pem(RSA))
    return path


def test_rs256_token_maps_to_role_and_scope(pem_file: Path) -> None:
    verifier = JwtVerifier(JwtSettings(key_file=pem_file))
    key = verifier.verify(token(role="operator", models=["linear"]))
    assert (key.id, key.role, key.models) == ("jwt:alice", Role.OPERATOR, frozenset({"linear"}))
    assert verifier.verify(token(models=["*"])).models is None
    assert verifier.verify(token()).models is None


# Tokens are made when the test runs, not at collection: a suite slower than their 600 s
# lifetime would otherwise see "Signature has expired" instead of the reason under test.
BAD_TOKENS: list[tuple[Callable[[], str], str]] = [
    (lambda: token(OTHER), "Signature verification failed"),
    (lambda: token(exp=int(time.time()) - 3600), "expired"),
    (lambda: token(role="root"), "claim 'role' must be predict, operator or admin; got 'root'"),
    (lambda: token(role=None), "got None"),
    (lambda: token(models="linear"), "claim 'models' must be a list"),
    (lambda: jwt.encode({"sub": "a", "role": "admin"}, RSA, algorithm="RS256"), "exp"),
    (lambda: token(aud="someone-else"), "aud"),
    (lambda: "a.b.c", "malformed JWT"),
]


@pytest.mark.parametrize(("bad", "needle"), BAD_TOKENS)
def test_bad_tokens_are_refused_with_the_reason(
    pem_file: Path, bad: Callable[[], str], needle: str
) -> None:
    verifier = JwtVerifier(JwtSettings(key_file=pem_file))
    with pytest.raises(Unauthenticated, match=needle.replace("(", r"\(")) as info:
        verifier.verify(bad())
    assert info.value.http_status == 401


def test_public_key_is_never_an_hmac_secret(pem_file: Path) -> None:
    """The classic algorithm-confusion attack: HS256 "signed" with the public key's bytes."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": "eve", "role": "admin", "exp": int(time.time()) + 60}
    signing_input = header + b"." + b64(json.dumps(claims).encode())
    signature = hmac.new(pem(RSA), signing_input, hashlib.sha256).digest()
    forged = (signing_input + b"." + b64(signature)).decode()
    verifier = JwtVerifier(JwtSettings(key_file=pem_file))
    with pytest.raises(Unauthenticated, match="alg value is not allowed"):
        verifier.verify(forged)


def test_audience_issuer_and_algorithms(pem_file: Path) -> None:
    verifier = JwtVerifier(JwtSettings(key_file=pem_file, audience="inferd", issuer="idp"))
    assert verifier.verify(token(aud="inferd", iss="idp")).role is Role.PREDICT
    with pytest.raises(Unauthenticated, match="aud"):
        verifier.verify(token(iss="idp"))
    with pytest.raises(Unauthenticated, match="issuer"):
        verifier.verify(token(aud="inferd", iss="evil"))
    only_ps = JwtVerifier(JwtSettings(key_file=pem_file, algorithms=("PS256",)))
    with pytest.raises(Unauthenticated, match="alg value is not allowed"):
        only_ps.verify(token())
    with pytest.raises(ConfigError, match="jwt_algorithms"):
        JwtVerifier(JwtSettings(key_file=pem_file, algorithms=("HS256",)))


def test_hmac_secret_file(tmp_path: Path) -> None:
    secret = b"s" * 40
    (tmp_path / "secret").write_bytes(secret + b"\n")
    verifier = JwtVerifier(JwtSettings(key_file=tmp_path / "secret"))
    assert verifier.verify(token(secret, "HS256")).id == "jwt:alice"
    (tmp_path / "short").write_bytes(b"short")
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        JwtVerifier(JwtSettings(key_file=tmp_path / "short"))
    with pytest.raises(ConfigError, match="exactly one"):
        JwtVerifier(JwtSettings())


def test_jwks_by_kid_and_reload_on_change(tmp_path: Path) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())

    def jwk(private: Any, kid: str) -> dict[str, Any]:
        data = json.loads(jwt.algorithms.get_default_algorithms()["ES256" if kid == "e1"
                          else "RS256"].to_jwk(private.public_key()))  # fmt: skip
        return {**data, "kid": kid}

    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk(RSA, "r1"), jwk(ec_key, "e1")]}))
    verifier = JwtVerifier(JwtSettings(jwks_file=path))
    assert verifier.verify(token(headers={"kid": "r1"})).role is Role.PREDICT
    assert verifier.verify(token(ec_key, "ES256", headers={"kid": "e1"}, sub="bob")).name == "bob"
    with pytest.raises(Unauthenticated, match="unknown key id 'r2'"):
        verifier.verify(token(OTHER, headers={"kid": "r2"}))
    # Rotation: the file changes, the new key verifies, the dropped one no longer does.
    path.write_text(json.dumps({"keys": [jwk(OTHER, "r2")]}))
    later = time.time() + 5
    import os

    os.utime(path, (later, later))
    assert verifier.verify(token(OTHER, headers={"kid": "r2"})).id == "jwt:alice"
    with pytest.raises(Unauthenticated, match="unknown key id 'r1'"):
        verifier.verify(token(headers={"kid": "r1"}, sub="carol"))
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="jwt_jwks_file"):
        JwtVerifier(JwtSettings(jwks_file=path))


def test_verified_tokens_are_cached_until_they_expire(pem_file: Path) -> None:
    now = [time.time()]
    verifier = JwtVerifier(JwtSettings(key_file=pem_file, leeway_s=0), clock=lambda: now[0])
    text = token(exp=int(now[0]) + 10)
    first = verifier.verify(text)
    assert verifier.verify(text) is first  # from the cache
    now[0] += 60
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(text)


@pytest.fixture
async def client(repo: Path, tmp_path: Path, pem_file: Path) -> AsyncIterator[httpx.AsyncClient]:
    app: HttpApp = build_app(Settings(home=tmp_path, model_repository=repo, jwt_key_file=pem_file))
    assert app.guard is not None  # auto: a JWT key is a credential configured
    assert await app.dataplane.start() == {}
    app.guard.refresh()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c
    await app.dataplane.stop()


async def test_http_accepts_jwt_bearer_tokens_by_role_and_scope(
    client: httpx.AsyncClient,
) -> None:
    def auth(text: str) -> dict[str, str]:
        return {"authorization": f"Bearer {text}"}

    r = await client.post("/v2/models/linear/infer", json=X, headers=auth(token()))
    assert r.status_code == 200, r.text
    r = await client.get("/v1/models", headers=auth(token()))
    assert r.status_code == 403
    assert "role predict" in r.json()["error"]
    assert (await client.get("/v1/models", headers=auth(token(role="operator")))).is_success
    scoped = token(models=["mlp"])
    r = await client.post("/v2/models/linear/infer", json=X, headers=auth(scoped))
    assert r.status_code == 403
    assert r.json()["error"] == "API key 'jwt:alice' may not use model 'linear'"
    r = await client.post("/v2/models/linear/infer", json=X, headers=auth(token(OTHER)))
    assert r.status_code == 401
    assert "Signature verification failed" in r.json()["error"]
