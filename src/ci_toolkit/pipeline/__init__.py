"""Pipeline: the ``steps:`` format (``schema`` + ``schema.json``, ``model``), the plan of exact
commands (``plan``) and its execution, where later steps build on earlier ones (``run``).

Public entries: ``model.load``, ``plan.plan``/``check``, ``run.run``. May use build, cache,
containers and registry."""
