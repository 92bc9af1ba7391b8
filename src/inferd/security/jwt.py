"""JWT bearer tokens: verified against a key file or a JWKS file, mapped to a role and scope.

A company's identity provider signs tokens; inferd only verifies them (signature, ``exp``,
``nbf``, and ``aud`` / ``iss`` when configured) and reads two claims: the role
(``predict``, ``operator`` or ``admin``) and, optionally, the list of models the token may
use. The subject (``sub``) names the caller in errors and is the unit of rate and
concurrency limits, as a key id is for API keys.

A verified token is cached until it expires (bounded), so a client that sends the same token
on every request pays for one signature check, not one per request. There is no revocation
list for tokens: keep their lifetime short, or revoke the signing key (the JWKS file is read
again when it changes).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from inferd.errors import ConfigError, Unauthenticated
from inferd.security.keys import ApiKey, Role

logger = logging.getLogger(__name__)

_CACHE_SIZE = 10_000
_HMAC = ["HS256", "HS384", "HS512"]
_ASYMMETRIC = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
               "ES512", "EdDSA"]  # fmt: skip


def looks_like_jwt(token: str) -> bool:
    """Three base64url parts: the shape of a JWS compact token (never an inferd key)."""
    return token.count(".") == 2 and not token.startswith("inferd_")


@dataclass(frozen=True)
class JwtSettings:
    """Where the verification keys come from and which claims matter.

    Attributes:
        key_file: a PEM public key (RS*, PS*, ES*, EdDSA) or a file holding an HMAC secret.
        jwks_file: a JSON Web Key Set; the token's ``kid`` picks the key.
        algorithms: accepted ``alg`` values; None: every algorithm of the key's kind.
        audience: the required ``aud``; None: a token with ``aud`` is refused (PyJWT's rule).
        issuer: the required ``iss``; None: not checked.
        role_claim: the claim holding the role.
        models_claim: the claim holding the model names (absent: every model).
        leeway_s: clock skew allowed on ``exp`` and ``nbf``.
    """

    key_file: Path | None = None
    jwks_file: Path | None = None
    algorithms: tuple[str, ...] | None = None
    audience: str | None = None
    issuer: str | None = None
    role_claim: str = "role"
    models_claim: str = "models"
    leeway_s: float = 30.0


class JwtVerifier:
    """Verifies bearer tokens and turns them into :class:`ApiKey` principals.

    Raises:
        ConfigError: (at construction) a key file that cannot be read or parsed.
    """

    def __init__(self, settings: JwtSettings, clock: Callable[[], float] = time.time) -> None:
        if (settings.key_file is None) == (settings.jwks_file is None):
            raise ConfigError("settings", "jwt_key_file",
                              "give exactly one of jwt_key_file and jwt_jwks_file")  # fmt: skip
        self.settings = settings
        self._clock = clock
        self._cache: OrderedDict[str, tuple[ApiKey, float]] = OrderedDict()
        self._jwks_mtime = -1.0
        self._keys: dict[str | None, tuple[Any, list[str]]] = {}
        self._load_keys()

    # -- keys --------------------------------------------------------------------------------

    def _load_keys(self) -> None:
        s = self.settings
        if s.key_file is not None:
            self._keys = {None: self._key_from_file(s.key_file)}
            return
        assert s.jwks_file is not None
        field = "jwt_jwks_file"
        keys: dict[str | None, tuple[Any, list[str]]] = {}
        try:
            self._jwks_mtime = os.stat(s.jwks_file).st_mtime
            data = json.loads(s.jwks_file.read_text())
            for raw in data["keys"]:
                jwk = jwt.PyJWK(raw)
                # A key that names its "alg" takes only that; one that does not takes every
                # algorithm of its kind (PyJWK would assume one, e.g. RS256 for RSA).
                kind = _HMAC if raw.get("kty") == "oct" else _ASYMMETRIC
                named = raw.get("alg")
                keys[jwk.key_id] = (jwk.key, self._allowed([named] if named else kind))
        except (OSError, ValueError, KeyError, TypeError, jwt.PyJWTError) as err:
            raise ConfigError("settings", field, f"cannot use {s.jwks_file}: {err}") from err
        if not keys:
            raise ConfigError("settings", field, f"{s.jwks_file} holds no keys")
        if len(keys) == 1:  # a single key also verifies tokens that name no kid
            keys[None] = next(iter(keys.values()))
        self._keys = keys

    def _key_from_file(self, path: Path) -> tuple[Any, list[str]]:
        try:
            raw = path.read_bytes()
        except OSError as err:
            raise ConfigError("settings", "jwt_key_file", f"cannot read: {err}") from err
        if b"-----BEGIN" not in raw:
            secret = raw.strip()
            if len(secret) < 32:
                raise ConfigError("settings", "jwt_key_file", "an HMAC secret needs at least "
                                  f"32 bytes; the file holds {len(secret)}")  # fmt: skip
            return secret, self._allowed(_HMAC)
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        try:
            key = load_pem_public_key(raw)
        except ValueError as err:
            raise ConfigError("settings", "jwt_key_file",
                              f"not a PEM public key ({err})") from err  # fmt: skip
        return key, self._allowed(_ASYMMETRIC)

    def _allowed(self, kind: list[str]) -> list[str]:
        wanted = self.settings.algorithms
        allowed = [a for a in kind if wanted is None or a in wanted]
        if not allowed:
            raise ConfigError("settings", "jwt_algorithms", f"none of {list(wanted or [])} "
                              f"fits the configured key (it takes {', '.join(kind)})")  # fmt: skip
        return allowed

    def _maybe_reload(self) -> None:
        path = self.settings.jwks_file
        if path is None:
            return
        try:
            changed = os.stat(path).st_mtime != self._jwks_mtime
        except OSError:
            return  # keep the keys we have while the file is being replaced
        if changed:
            try:
                self._load_keys()
                self._cache.clear()
                logger.info("JWKS reloaded from %s", path)
            except ConfigError as err:
                logger.warning("JWKS not reloaded: %s", err.message)

    # -- tokens ------------------------------------------------------------------------------

    def verify(self, token: str) -> ApiKey:
        """The principal of a valid token.

        Raises:
            Unauthenticated: bad signature, expired, wrong audience or issuer, unknown
                ``kid``, or a missing or unknown role claim.
        """
        now = self._clock()
        cached = self._cache.get(token)
        if cached is not None and cached[1] > now:
            return cached[0]
        self._maybe_reload()
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as err:
            raise Unauthenticated(f"malformed JWT: {err}") from None
        entry = self._keys.get(kid)
        if entry is None:
            raise Unauthenticated(f"JWT signed with an unknown key id {kid!r}")
        key, algorithms = entry
        s = self.settings
        try:
            claims = jwt.decode(
                token, key, algorithms=algorithms, audience=s.audience, issuer=s.issuer,
                leeway=s.leeway_s, options={"require": ["exp"]},
            )  # fmt: skip
        except jwt.PyJWTError as err:
            raise Unauthenticated(f"JWT rejected: {err}") from None
        if float(claims["exp"]) + s.leeway_s <= now:  # this clock, which the cache also uses
            raise Unauthenticated("JWT rejected: Signature has expired")
        principal = self._principal(claims)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.popitem(last=False)
        self._cache[token] = (principal, float(claims["exp"]))
        return principal

    def _principal(self, claims: dict[str, Any]) -> ApiKey:
        s = self.settings
        subject = str(claims.get("sub") or "unknown")
        role_text = claims.get(s.role_claim)
        try:
            role = Role.parse(role_text) if isinstance(role_text, str) else None
        except Exception:
            role = None
        if role is None:
            raise Unauthenticated(f"JWT of '{subject}': claim '{s.role_claim}' must be "
                                  f"predict, operator or admin; got {role_text!r}")  # fmt: skip
        models = claims.get(s.models_claim)
        if models is not None and not (
            isinstance(models, list) and all(isinstance(m, str) for m in models)
        ):
            raise Unauthenticated(f"JWT of '{subject}': claim '{s.models_claim}' must be a "
                                  f"list of model names; got {models!r}")  # fmt: skip
        scope = frozenset(models) if models is not None and "*" not in models else None
        return ApiKey(f"jwt:{subject}", role, scope, name=subject, created_by="jwt")
