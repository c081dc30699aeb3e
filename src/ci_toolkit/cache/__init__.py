"""Cache: build-cache keys, the local store (immutable generations, atomic ``current`` swap,
locks, GC) and the cache backends a build can use.

Public entries: ``keys.derive_key``/``validate_key``, ``backends.plan_cache``,
``store.open_session``/``entries``, ``prune.prune``."""
