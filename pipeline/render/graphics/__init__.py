"""Graphics drawn by Pillow: caption bars, lower thirds, subtitles, the station logo."""
