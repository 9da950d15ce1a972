"""storymedia pipeline: the library, by stage (no Celery, Redis, click or rich here; checked by
the import contracts in pyproject.toml).

model (story, presets, manifest, keys) -> ingest (sniff, limits, probe) -> plan (pure) ->
render (image, graphics, av) -> storage -> run (one asset end to end, the orchestration, job
records, the executors). The front doors (``storymedia`` CLI, ``workers`` Celery tasks) call ``run``.
"""

__version__ = "0.1.0"
