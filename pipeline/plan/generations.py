"""A re-run's generation in the spec material: how a re-run gets keys of its own.

Rendition keys are content-addressed from the source and the spec, so rendering an asset again
would land on the keys the current manifest (and every earlier version) names, and clip bytes may
differ from one encode to the next. A re-run therefore renders under a *generation* (a token the
re-run's marker carries): part of the spec material of the re-run preset's renditions, it gives
them new spec hashes and keys. Without a generation the material, and every key, is as before.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipeline.model.presets import Preset


def generation_material(generations: Mapping[str, str] | None, preset: Preset) -> dict[str, str]:
    """What the preset's generation (``generations`` by preset name) adds to its renditions' spec
    material: nothing without one, else ``{"generation": ...}``."""
    generation = (generations or {}).get(preset.name, "")
    return {"generation": generation} if generation else {}
