"""One module per CLI command: ``register(subparsers, common)`` and a thin handler."""
