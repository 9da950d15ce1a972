"""The model: stories, presets, manifests and the keys they name (data, no media work)."""
