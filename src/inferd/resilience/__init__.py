"""Resilience between the protocol layer and the model versions: what answers when.

    Resilience (layer.py) ── the data plane's one hook; per model, from model.yaml:
    ├── Precomputed (precomputed.py) answers by entity id from a version's published table
    │   ├── LookupBatcher (lookup.py)  concurrent lookups joined into one store read
    │   ├── TableStore, RowReader (tables.py), RedisRowReader (table_redis.py)
    │   └── RowLayout (layout.py)      a row's outputs packed in a fixed layout
    ├── LocalCache (cache.py)       LRU bounded in bytes, TTL on an injectable clock
    ├── RedisCache (redis_cache.py) optional, shared by replicas; its failures never fail a request
    ├── Coalescer (coalesce.py)     identical requests in flight share one inference
    ├── CircuitBreaker (breaker.py) per version: closed / open / half-open
    └── fallback.py                 primary version -> fallback versions -> a default response

    Admission (admission.py) ── overload control, the data plane's gate before a batcher:
    └── Gate (gate.py)              per version: enter, wait by traffic class, or 503
        └── AdaptiveLimit (concurrency.py)  the version's adaptive concurrency limit

Nothing is imported here: ``inferd.config`` imports :mod:`inferd.resilience.config`, and the
layer imports the model manager, which imports the config.
"""
