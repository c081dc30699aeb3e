"""Registry: an OCI distribution client with auth (``client``, ``auth``) and race-safe tag
promotion inside the registry (``promote``). Never imports build or pipeline.

Public entries: ``client.RegistryClient``, ``promote.promote``."""
