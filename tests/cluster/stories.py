"""Small stories for the cluster tests: real photos and a real clip, a few seconds of work."""

from __future__ import annotations

from pathlib import Path

from tests import clips
from tests.fixtures import photo, truncated_jpeg


def small_story(root: Path, story_id: str = "cluster-test", *, clip_seconds: float = 6.0,
                clip_size: str = "1280x720", photos: int = 2, truncated: bool = False,
                presets: str = '["web"]') -> Path:
    """A story folder with ``photos`` photos and one clip; returns the story file."""
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    assets = []
    for index in range(photos):
        name = f"anh-{index + 1:02d}.jpg"
        photo((1800, 1200), seed=index).save(media / name, quality=90)
        assets.append(f'[[assets]]\nfile = "media/{name}"\ncaption = "Ảnh {index + 1}: hội nghị"\n'
                      'credit = "Đình Hà"\n')
    clips.phone_clip(media / "clip.mp4", seconds=clip_seconds, size=clip_size)
    assets.append('[[assets]]\nfile = "media/clip.mp4"\ncaption = "Toàn cảnh hội nghị"\ncredit = "Đức Anh"\n')
    if truncated:
        truncated_jpeg(media / "hong.jpg")
        assets.append('[[assets]]\nfile = "media/hong.jpg"\ncaption = "Ảnh hỏng"\n')
    story = root / "story.toml"
    story.write_text(
        f'[story]\nid = "{story_id}"\ntitle = "Thử nghiệm cụm máy"\nbyline = "Đình Hà"\n'
        'published = 2023-09-12T21:15:00+07:00\nsource = "Phòng chống tham nhũng"\n'
        f'copyright = "Thanh Hoa Radio and Television"\npresets = {presets}\n\n' + "\n".join(assets),
        encoding="utf-8")
    return story
