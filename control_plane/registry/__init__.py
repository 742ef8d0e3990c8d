"""The registry as requests read it: a per-process cache of API keys, label routes and pinned
versions, kept fresh by the registry's generation (``cache``), changes announced to every
replica over Redis (``notify``), and the cache as a dependency alias (``deps``)."""
