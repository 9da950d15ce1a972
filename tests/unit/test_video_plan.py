"""Clip plans are pure: rates, fields, frames, ladders, keys and the ffmpeg argv from numbers."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from pipeline.ingest.info import AudioStream, AVInfo, VideoStream
from pipeline.model.embedded_text import EmbeddedText
from pipeline.model.story import LowerThird
from pipeline.model.subtitles import Cue
from pipeline.plan.frames import natural_rate, pal_cadence, plan_frame
from pipeline.plan.video import plan_video
from pipeline.render.av.graph import build_argv, rung_target

SHA = "ab" * 32


def clip(width=1920, height=1080, fps="30000/1001", field="progressive", audio=True, rotation=0,
         avg=None, duration=10.0) -> AVInfo:
    rate = Fraction(fps)
    video = VideoStream(codec="h264", profile="High", pix_fmt="yuv420p", bit_depth=8, width=width,
                        height=height, coded_width=width, coded_height=height, rotation=rotation, sar=(1, 1),
                        fps=rate, avg_fps=Fraction(avg) if avg else rate, vfr=avg is not None,
                        field_order=field, duration=duration)
    sound = AudioStream(codec="aac", channels=2, layout="stereo", sample_rate=48000) if audio else None
    return AVInfo(kind="video", container="mp4", demuxer="mov", mime="video/mp4", bytes=1, duration=duration,
                  video=video, audio=sound)


@pytest.mark.parametrize(("fps", "field", "expected"), [
    ("30000/1001", "progressive", Fraction(30000, 1001)),
    ("60", "progressive", Fraction(30)),
    ("50", "progressive", Fraction(25)),
    ("60000/1001", "progressive", Fraction(30000, 1001)),
    ("25", "tt", Fraction(25)),
    ("24000/1001", "progressive", Fraction(24000, 1001)),
])
def test_web_rate_is_natural_up_to_30(fps, field, expected) -> None:
    assert natural_rate(clip(fps=fps, field=field), 30) == expected


def test_vfr_becomes_the_nearest_standard_rate() -> None:
    assert natural_rate(clip(fps="30", avg="27.8"), 30) == Fraction(30000, 1001)


@pytest.mark.parametrize(("fps", "field", "rate", "cadence"), [
    ("25", "progressive", 25, "psf"),
    ("30000/1001", "progressive", 25, "psf"),
    ("24", "progressive", 25, "psf"),
    ("50", "progressive", 50, "weave"),
    ("60", "progressive", 50, "weave"),
    ("25", "tt", 25, "keep-fields"),
    ("25", "bb", 25, "keep-fields"),
    ("30000/1001", "tt", 50, "weave"),
])
def test_pal_cadence(fps, field, rate, cadence) -> None:
    assert pal_cadence(clip(fps=fps, field=field)) == (Fraction(rate), cadence)


@pytest.mark.parametrize(("src", "box", "mode", "expected"), [
    ((1920, 1080), (1280, 720), "fit", (1280, 720, "scale", (1280, 720))),
    ((1280, 720), (1920, 1080), "fit", (1280, 720, "scale", (1280, 720))),          # never upscaled
    ((1080, 1920), (1920, 1080), "fit", (1080, 1920, "scale", (1080, 1920))),       # box turns
    ((1080, 1920), (1920, 1080), "fill", (1920, 1080, "blur-fill", (608, 1080))),   # pillarbox
    ((1280, 720), (1920, 1080), "fill", (1920, 1080, "scale", (1920, 1080))),        # air needs full HD
    ((1920, 1080), (1080, 1080), "fill", (1080, 1080, "blur-fill", (1080, 608))),
])
def test_frames(src, box, mode, expected) -> None:
    frame = plan_frame(clip(*src), box, mode)
    assert (frame.width, frame.height, frame.geometry, frame.inner) == expected


def test_plan_outputs_and_keys(presets) -> None:
    plan = plan_video(clip(), SHA, [presets["web"], presets["broadcast"]], EmbeddedText())
    names = [o.name for o in plan.outputs]
    assert names == ["mp4-1080", "mp4-720", "hls", "poster", "sprite", "xdcam-hd422", "proxy-1080p25"]
    hls = next(o for o in plan.outputs if o.name == "hls")
    assert [r.name for r in hls.rungs] == ["1080p", "720p", "480p", "360p"]
    assert hls.key.startswith(f"renditions/{SHA[:16]}/web@1/hls-") and hls.key.endswith("/master.m3u8")
    mp4_720 = next(o for o in plan.outputs if o.name == "mp4-720")
    assert mp4_720.from_rung == "720p" and not mp4_720.encoded


def test_small_source_ladder_keeps_the_matching_rung_names(presets) -> None:
    plan = plan_video(clip(640, 360), SHA, [presets["web"]], EmbeddedText())
    hls = next(o for o in plan.outputs if o.name == "hls")
    assert [r.name for r in hls.rungs] == ["360p"]
    assert next(o for o in plan.outputs if o.name == "mp4-720").from_rung == "360p"


def test_sidecar_only_with_subtitles_and_burn_only_where_asked(presets) -> None:
    bare = plan_video(clip(), SHA, [presets["web"], presets["social"]], EmbeddedText())
    assert "captions" not in [o.name for o in bare.outputs]
    cues = (Cue(0.5, 1.5, "Xin chào"),)
    with_subs = plan_video(clip(), SHA, [presets["web"], presets["social"]], EmbeddedText(), cues=cues)
    assert "captions" in [o.name for o in with_subs.outputs]
    burned = {b.preset: b.subtitles for b in with_subs.branches}
    assert burned == {"web@1": (), "social@1": cues}
    social_keys = {o.key for o in with_subs.outputs if o.preset == "social@1"}
    assert social_keys.isdisjoint(o.key for o in bare.outputs), "burned text changes the key"


def test_lower_third_only_on_air_and_in_the_key(presets) -> None:
    strap = LowerThird(name="Bà Lê Thị Minh Tâm", title="Chủ tịch UBND", start=1, end=4)
    plain = plan_video(clip(), SHA, [presets["web"], presets["broadcast"]], EmbeddedText())
    with_strap = plan_video(clip(), SHA, [presets["web"], presets["broadcast"]], EmbeddedText(), strap)
    assert {b.preset: b.lower_third for b in with_strap.branches} == {"web@1": None, "broadcast@1": strap}
    keys = lambda p, preset: {o.key for o in p.outputs if o.preset == preset}  # noqa: E731
    assert keys(plain, "web@1") == keys(with_strap, "web@1")
    assert keys(plain, "broadcast@1").isdisjoint(keys(with_strap, "broadcast@1"))


def test_radio_from_clips_and_audio_files(presets) -> None:
    plan = plan_video(clip(), SHA, [presets["radio"]], EmbeddedText())
    assert [(a.name, a.extension, a.mime) for a in plan.audio] == [
        ("bwf", "wav", "audio/wav"), ("aac-128", "m4a", "audio/mp4"), ("mp3-128", "mp3", "audio/mpeg")]
    silent = plan_video(clip(audio=False), SHA, [presets["radio"]], EmbeddedText())
    assert silent.audio == ()


def _argv(plan) -> list[str]:
    targets = {o.key: Path(f"/scratch/{i}.out") for i, o in enumerate(plan.everything)}
    for o in plan.outputs:
        for r in o.rungs:
            targets[rung_target(o, r.name)] = Path(f"/scratch/{o.name}-{r.name}.mp4")
    return build_argv(plan, Path("/media/in put.mp4"), targets, None)


def test_one_ffmpeg_process_reads_the_source_once_as_a_local_file(presets) -> None:
    plan = plan_video(clip(), SHA, [presets["web"], presets["broadcast"], presets["radio"]], EmbeddedText())
    argv = _argv(plan)
    inputs = [argv[i + 1] for i, a in enumerate(argv) if a == "-i"]
    assert inputs.count("file:/media/in put.mp4") == 1
    assert all(i.startswith("file:") for i in inputs)
    for index, arg in enumerate(argv):
        if arg == "-i":
            assert "-protocol_whitelist" in argv[max(0, index - 4):index]
    assert argv.count("-map_metadata") == len([o for o in plan.everything if getattr(o, "encoded", True)]) + 3
    graph = argv[argv.index("-filter_complex") + 1]
    assert graph.count("[0:v]") == 1 and graph.count("[0:a]") == 1, "decoded once, split after"
    assert "tinterlace" not in graph and "setfield=tff" in graph        # 29.97p -> 25 PsF on air
    assert "pcm_s24le" in argv and "mpeg2video" in argv and "libx264" in argv


def test_user_text_never_reaches_the_command_line(presets) -> None:
    nasty = "Tâm: '%{pts}' \\N [x];,=:"
    plan = plan_video(clip(), SHA, [presets["broadcast"], presets["social"]], EmbeddedText(caption=nasty),
                      LowerThird(name=nasty, title=nasty, start=0, end=2), cues=(Cue(0, 1, nasty),))
    assert not any(nasty[:8] in arg or "%{pts}" in arg for arg in _argv(plan))
