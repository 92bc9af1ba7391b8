"""API keys, roles and model scopes, rate/concurrency/size limits (see docs/security.md).

Guard ── authenticates (KeyStore -> dict of key hashes), authorises (policy), limits
├── KeyStore / ApiKey / Role      keys.py
├── Group / classify_*            policy.py
└── RateLimiter / Concurrency / RequestLimits   limits.py
"""

from inferd.security.guard import Guard
from inferd.security.keys import ApiKey, KeyStore, Role
from inferd.security.limits import Concurrency, RateLimiter, RequestLimits
from inferd.security.policy import Group

__all__ = [
    "ApiKey",
    "Concurrency",
    "Group",
    "Guard",
    "KeyStore",
    "RateLimiter",
    "RequestLimits",
    "Role",
]
