"""storymedia pipeline: the pure library (no Celery here).

Layers: story and presets (data) -> probe -> plan (pure) -> render -> storage -> manifest.
"""

__version__ = "0.1.0"
