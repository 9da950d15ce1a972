"""Ingest: what a file is and whether it may enter (sniff, limits, probe of images and clips)."""
