"""Rendering: pixels and streams into renditions."""
