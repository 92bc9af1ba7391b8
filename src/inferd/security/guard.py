"""The guard: authenticates API keys (and JWTs), checks roles and model scopes, applies rate and
concurrency limits. Transports call it; it never touches the database on a request.

Keys live in a dict from key hash to :class:`ApiKey`, refreshed from the registry when its
revision changes (polled every ``poll_s``, one cheap single-row query) and at once after a
key is created or revoked through this process. A request costs one SHA-256 of the presented
key and one dict lookup.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from inferd.errors import PermissionDenied, Unauthenticated
from inferd.registry.outage import OutageLog, poll
from inferd.security.jwt import JwtVerifier, looks_like_jwt
from inferd.security.keys import ApiKey, KeyStore, Role, hash_key
from inferd.security.limits import Clock, Concurrency, RateLimiter
from inferd.security.policy import ALL_MODELS, REQUIRED_ROLE, Group

logger = logging.getLogger(__name__)


class Guard:
    """Authentication and authorisation state of one server process.

    Args:
        store: the registry's keys; None for bootstrap keys only.
        bootstrap: hash -> key for keys that live outside the registry (the admin key from
            ``INFERD_ADMIN_KEY``).
        metrics_auth: whether ``/metrics`` needs a key.
        key_rate: requests per second per key (0: no limit), with ``key_burst``.
        client_rate: requests per second per client address (0: no limit), ``client_burst``.
        max_concurrent: requests one key may have in flight.
        clock: monotonic seconds for the rate limiters.
        jwt: verifies bearer JWTs; None: only API keys are accepted.
    """

    def __init__(
        self,
        store: KeyStore | None,
        bootstrap: dict[str, ApiKey] | None = None,
        *,
        metrics_auth: bool = True,
        key_rate: float = 0.0,
        key_burst: int = 100,
        client_rate: float = 0.0,
        client_burst: int = 200,
        max_concurrent: int = 256,
        clock: Clock = time.monotonic,
        jwt: JwtVerifier | None = None,
    ) -> None:
        self.store = store
        self.jwt = jwt
        self.bootstrap = dict(bootstrap or {})
        self.metrics_auth = metrics_auth
        self.keys: dict[str, ApiKey] = dict(self.bootstrap)
        self.key_limiter = RateLimiter(key_rate, key_burst, "API key", clock) if key_rate else None
        self.client_limiter = (
            RateLimiter(client_rate, client_burst, "client", clock) if client_rate else None
        )
        self.concurrency = Concurrency(max_concurrent)
        self._revision = -1

    # -- the key cache ---------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload the keys from the registry (blocking: call it in a thread)."""
        if self.store is None:
            return
        revision = self.store.registry.revision()
        keys = self.store.active()
        self.keys = {**keys, **self.bootstrap}
        self._revision = revision

    async def run(self, poll_s: float) -> None:
        """Refresh whenever the registry revision moves, until cancelled."""
        if self.store is None:
            return
        registry = self.store.registry

        async def tick() -> None:
            if await asyncio.to_thread(registry.revision) != self._revision:
                await asyncio.to_thread(self.refresh)

        outage = OutageLog(logger, "API keys not refreshed")
        await poll(tick, poll_s, outage, "API key refresh failed", wait_first=True)

    # -- checks ------------------------------------------------------------------------------

    def authenticate(self, token: bytes | str | None) -> ApiKey:
        """The key for a presented token. Raises Unauthenticated (401)."""
        if not token:
            raise Unauthenticated("no API key")
        key = self.keys.get(hash_key(token))
        if key is not None:
            return key
        if self.jwt is not None:
            text = token.decode("latin-1") if isinstance(token, bytes) else token
            if looks_like_jwt(text):
                return self.jwt.verify(text)
        raise Unauthenticated("unknown or revoked API key")

    def authorize(self, key: ApiKey, group: Group, model: str | None) -> None:
        """Raises PermissionDenied (403) when the key's role or scope does not allow it.

        The message is the same whether or not ``model`` exists.
        """
        needed = REQUIRED_ROLE[group]
        if needed is not None and key.role < needed:
            raise PermissionDenied(
                f"API key '{key.id}' has role {key.role.label}; {group.value} endpoints need "
                f"role {needed.label} or higher"
            )
        if model is not None:
            self.check_model(key, model)

    def check_model(self, key: ApiKey, model: str) -> None:
        """Raises PermissionDenied unless the key's scope includes ``model``."""
        if key.allows_model(model):
            return
        if model == ALL_MODELS:
            raise PermissionDenied(
                f"API key '{key.id}' is limited to some models and may not use endpoints that "
                "span every model"
            )
        raise PermissionDenied(f"API key '{key.id}' may not use model '{model}'")

    def admit(self, token: bytes | str | None, group: Group, model: str | None,
              client: str | None) -> ApiKey | None:  # fmt: skip
        """Authenticate, authorise and take rate and concurrency tokens for one request.

        Returns the key, whose concurrency slot :meth:`release` gives back; None for an open
        endpoint (nothing to release).
        """
        if group is Group.OPEN or (group is Group.METRICS and not self.metrics_auth):
            return None
        if self.client_limiter is not None and client is not None:
            self.client_limiter.take(client)
        key = self.authenticate(token)
        self.authorize(key, group, model)
        if self.key_limiter is not None:
            self.key_limiter.take(key.id)
        self.concurrency.acquire(key.id)
        return key

    def release(self, key: ApiKey) -> None:
        self.concurrency.release(key.id)


def bootstrap_keys(keys: Iterable[str]) -> dict[str, ApiKey]:
    """Hash -> admin key for keys given outside the registry."""

    return {hash_key(k): ApiKey("bootstrap-admin", Role.ADMIN, None, "INFERD_ADMIN_KEY")
            for k in keys}  # fmt: skip
