"""Mirror: a Docker Hub mirror in front of every pull; probe, fallback with one warning,
rate-limit errors (``resolve``), and the builder/engine config that carries it (``render``).

Public entries: ``resolve.effective_docker_registry``/``pull_reference``/``probe``,
``render.render``."""
