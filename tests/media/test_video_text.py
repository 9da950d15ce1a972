"""Lower thirds and burned subtitles render literally: a frame cut from the output matches a
reference render of the exact text, filter metacharacters and Vietnamese included."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import structural_similarity

from pipeline.ingest.limits import Limits
from pipeline.ingest.probe import probe
from pipeline.model.embedded_text import EmbeddedText
from pipeline.model.presets import parse_preset
from pipeline.model.story import LowerThird
from pipeline.model.subtitles import parse
from pipeline.plan.video import plan_video
from pipeline.render.av.clip import render_video
from pipeline.render.graphics import text
from tests.conftest import PRESETS

pytestmark = pytest.mark.media

NAME = 'Bà Lê Thị Minh Tâm: "50%" {x} \\N %{pts} \'a\'b'
TITLE = "Chủ tịch UBND phường Phú Sơn, thành phố Thanh Hóa; 100%: [ok]"
CUE = "Ông Nguyễn Đình Thênh: %{localtime} \\ {\\b1} 'x':y, kỷ cương"
SRT = f"1\n00:00:02,000 --> 00:00:02,900\n{CUE}\n"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("video-text")
    source = root / "grey.mp4"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "color=c=0x406080:size=1280x720:rate=25:duration=3", "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(source)], check=True)
    preset = parse_preset({
        "preset": {"name": "strap", "version": 1},
        "caption": {"bar_opacity": 1.0, "bar_colour": "#101820"},
        "video": {"frame": "fill", "lower_third": True, "burn_subtitles": True,
                  "outputs": [{"type": "mp4", "name": "check", "width": 1280, "height": 720, "crf": 12}]},
    }, PRESETS, "strap.toml")
    info = probe(source, Limits())
    plan = plan_video(info, "ab" * 32, [preset], EmbeddedText(),
                      lower_third=LowerThird(name=NAME, title=TITLE, start=0.4, end=1.6),
                      cues=tuple(parse(SRT)))
    (root / "out").mkdir()
    (result,) = render_video(source, plan, root / "out")
    return result.path, preset


def frame_at(path: Path, seconds: float) -> Image.Image:
    data = subprocess.run(["ffmpeg", "-v", "error", "-ss", str(seconds), "-i", str(path), "-frames:v", "1",
                           "-f", "image2pipe", "-vcodec", "png", "-"], capture_output=True, check=True).stdout
    target = path.with_name(f"frame-{seconds}.png")
    target.write_bytes(data)
    with Image.open(target) as img:
        return img.convert("RGB")


def similarity(frame: Image.Image, graphic: text.Graphic) -> float:
    box = (graphic.x, graphic.y, graphic.x + graphic.image.width, graphic.y + graphic.image.height)
    got = np.asarray(frame.crop(box).convert("L"))
    want = np.asarray(graphic.image.convert("RGB").convert("L"))
    return float(structural_similarity(got, want, data_range=255))


def test_lower_third_matches_a_reference_render_of_the_literal_text(rendered) -> None:
    path, preset = rendered
    frame = frame_at(path, 1.0)
    reference = text.lower_third(NAME, TITLE, (1280, 720), preset.caption, str(preset.font_path))
    expanded = text.lower_third(NAME.replace("%{pts}", "1.000").replace("\\N", "\n"), TITLE, (1280, 720),
                                preset.caption, str(preset.font_path))
    assert similarity(frame, reference) > 0.9
    assert similarity(frame, reference) > similarity(frame, expanded) + 0.05, "the text was not reinterpreted"


def test_lower_third_shows_only_in_its_time_range(rendered) -> None:
    path, preset = rendered
    reference = text.lower_third(NAME, TITLE, (1280, 720), preset.caption, str(preset.font_path))
    assert similarity(frame_at(path, 0.1), reference) < 0.5
    assert similarity(frame_at(path, 2.2), reference) < 0.5


def test_burned_subtitle_matches_a_reference_render(rendered) -> None:
    path, preset = rendered
    frame = frame_at(path, 2.4)
    reference = text.subtitle(CUE, (1280, 720), preset.caption, str(preset.font_path))
    assert similarity(frame, reference) > 0.9
    assert similarity(frame_at(path, 1.0), reference) < 0.5


def _cue_text(index: int) -> str:
    return "M" * (1 + 3 * (index % 3))      # three widths: which cue is shown can be measured


def test_the_most_cues_allowed_burn_in_and_each_shows_on_its_frame(tmp_path: Path) -> None:
    """5,000 one-millisecond cues on a 5 s clip: 5,000 chained overlays overflowed ffmpeg-python's
    recursion; one graphics track per picture size renders them, each on the frame at its time."""
    from pipeline.model.subtitles import LIMITS, Cue

    source = tmp_path / "grey.mp4"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "color=c=0x808080:size=128x72:rate=25:duration=5", "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(source)], check=True)
    preset = parse_preset({
        "preset": {"name": "tiny", "version": 1},
        "caption": {"bar_opacity": 1.0, "bar_colour": "#000000"},
        "video": {"frame": "fill", "burn_subtitles": True,
                  "outputs": [{"type": "mp4", "name": "tiny", "width": 128, "height": 72, "crf": 10}]},
    }, PRESETS, "tiny.toml")
    cues = tuple(Cue(i / 1000, (i + 1) / 1000, _cue_text(i)) for i in range(LIMITS.max_cues))
    plan = plan_video(probe(source, Limits()), "cd" * 32, [preset], EmbeddedText(), cues=cues)
    (tmp_path / "out").mkdir()
    (result,) = render_video(source, plan, tmp_path / "out")
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(result.path), "-f", "rawvideo", "-pix_fmt", "gray",
                          "-"], capture_output=True, check=True).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, 72, 128)
    assert len(frames) == 125

    def bar_width(frame: np.ndarray, row: int) -> int:
        """Extent of what is not the grey background along a row: the black panel, white text."""
        marked = np.flatnonzero(np.abs(frame[row].astype(int) - 128) > 40)
        return int(marked[-1] - marked[0] + 1) if len(marked) else 0

    for number in (0, 25, 26, 27, 61, 124):             # frame n is at n * 40 ms: cue 40 n is on screen
        want = text.subtitle(_cue_text(40 * number), (128, 72), preset.caption, str(preset.font_path))
        row = want.y + want.image.height // 2
        assert abs(bar_width(frames[number], row) - want.image.width) <= 2, number
