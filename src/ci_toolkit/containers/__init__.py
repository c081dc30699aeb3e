"""Containers: labelled job containers and services (``run``, ``services``), cleanup on
signals (``cleanup``), the label set and owner liveness (``labels``), and orphan sweeps
(``sweep``). Never imports build or pipeline.

Public entries: ``run.run_in_container``, ``sweep.sweep``, ``labels.label_context``."""
