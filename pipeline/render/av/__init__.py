"""Clips and audio: the ffmpeg runner, the filter graph, loudness, HLS."""
