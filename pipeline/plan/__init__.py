"""Planning: which renditions an asset gets, decided from numbers alone (no I/O here)."""
