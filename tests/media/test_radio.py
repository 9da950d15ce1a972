"""Radio renditions from an audio file and from a clip's sound: formats and loudness."""

from __future__ import annotations

import subprocess

import pytest

from pipeline.ingest.limits import Limits
from pipeline.ingest.probe import probe
from pipeline.model.embedded_text import EmbeddedText
from pipeline.plan.video import plan_video
from pipeline.render.av.clip import render_video
from tests.media.test_clips import audio_streams, ebur128, ffprobe

pytestmark = pytest.mark.media


@pytest.fixture(scope="module")
def interview(tmp_path_factory, presets) -> dict:
    root = tmp_path_factory.mktemp("radio")
    source = root / "interview.mp3"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=frequency=300:sample_rate=44100:duration=6,volume=0.05", "-ac", "1",
                    "-c:a", "libmp3lame", "-b:a", "96k", str(source)], check=True)
    info = probe(source, Limits())
    assert info.kind == "audio" and info.audio.channels == 1
    plan = plan_video(info, "ab" * 32, [presets["web"], presets["radio"]], EmbeddedText())
    assert not plan.outputs, "video presets make nothing from an audio file"
    (root / "out").mkdir()
    return {r.plan.name: r for r in render_video(source, plan, root / "out")}


def test_broadcast_wav_is_bwf_pcm24_48k_stereo_at_minus_23(interview) -> None:
    wav = interview["bwf"]
    head = wav.path.read_bytes()[:512]
    assert head[:4] == b"RIFF" and head[8:12] == b"WAVE" and b"bext" in head
    (stream,) = audio_streams(ffprobe(wav.path))
    assert (stream["codec_name"], int(stream["sample_rate"]), stream["channels"]) == ("pcm_s24le", 48000, 2)
    integrated, peak = ebur128(wav.path)
    assert integrated == pytest.approx(-23, abs=1) and peak <= -1


@pytest.mark.parametrize(("name", "codec"), [("aac-128", "aac"), ("mp3-128", "mp3")])
def test_web_audio_at_minus_16(interview, name: str, codec: str) -> None:
    result = interview[name]
    (stream,) = audio_streams(ffprobe(result.path))
    assert stream["codec_name"] == codec and stream["channels"] == 2
    assert int(ffprobe(result.path)["format"]["bit_rate"]) == pytest.approx(128_000, rel=0.15)
    integrated, peak = ebur128(result.path)
    assert integrated == pytest.approx(-16, abs=1) and peak <= -1
    assert result.facts["loudness"]["integrated"] == pytest.approx(integrated, abs=0.3)
