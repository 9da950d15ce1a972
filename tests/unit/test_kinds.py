"""Output kinds are one registry: each kind's file facts and planning on the plan side, its render
step under the same name on the render side, and the preset schema naming the same kinds."""

from __future__ import annotations

import typing

import pytest

from pipeline.model.embedded_text import EmbeddedText
from pipeline.model.presets import AudioOutput, ImageFormat, ImageRenditionSpec, VideoOutput
from pipeline.model.subtitles import Cue
from pipeline.plan.kinds import AUDIO_KINDS, CLIP_KINDS, KINDS, STILL_KINDS
from pipeline.plan.video import plan_video
from pipeline.render.av.outputs import AUDIO_STEPS, CLIP_STEPS
from pipeline.render.image.encoders import ENCODERS
from tests.unit.test_video_plan import SHA, clip


def test_every_kind_has_a_render_step_and_every_step_a_kind() -> None:
    assert set(ENCODERS) == set(STILL_KINDS)
    assert set(CLIP_STEPS) == set(CLIP_KINDS)
    assert set(AUDIO_STEPS) == set(AUDIO_KINDS)


def test_kind_names_are_unique_across_families() -> None:
    assert len(KINDS) == len(STILL_KINDS) + len(CLIP_KINDS) + len(AUDIO_KINDS)
    assert {k.family for k in STILL_KINDS.values()} == {"image"}
    assert {k.family for k in CLIP_KINDS.values()} == {"video"}
    assert {k.family for k in AUDIO_KINDS.values()} == {"audio"}


@pytest.mark.parametrize(("name", "extension", "mime"), [
    ("jpeg", "jpg", "image/jpeg"), ("webp", "webp", "image/webp"), ("avif", "avif", "image/avif"),
    ("png", "png", "image/png"),
    ("mp4", "mp4", "video/mp4"), ("hls", "m3u8", "application/vnd.apple.mpegurl"),
    ("xdcam", "mxf", "application/mxf"), ("poster", "jpg", "image/jpeg"), ("sprite", "vtt", "text/vtt"),
    ("webvtt", "vtt", "text/vtt"),
    ("bwf", "wav", "audio/wav"), ("aac", "m4a", "audio/mp4"), ("mp3", "mp3", "audio/mpeg"),
])
def test_file_of_each_kind(name: str, extension: str, mime: str) -> None:
    assert (KINDS[name].extension, KINDS[name].mime) == (extension, mime)


def test_each_clip_step_has_what_its_feed_needs() -> None:
    for name, kind in CLIP_KINDS.items():
        step = CLIP_STEPS[name]
        graph = step.picture is not None and step.options is not None
        assert graph == (kind.feed == "graph"), name
        assert (step.still is not None) == (kind.feed == "seek"), name


def test_the_preset_schema_names_the_same_kinds() -> None:
    assert set(typing.get_args(ImageFormat)) == set(STILL_KINDS)
    assert set(typing.get_args(AudioOutput.model_fields["type"].annotation)) == set(AUDIO_KINDS)
    outputs = typing.get_args(typing.get_args(VideoOutput)[0])
    assert {typing.get_args(o.model_fields["type"].annotation)[0] for o in outputs} == set(CLIP_KINDS)


@pytest.mark.parametrize("name", sorted(STILL_KINDS))
def test_image_specs_agree_with_their_kind(name: str) -> None:
    spec = ImageRenditionSpec(name="w320", format=name, mode="width", width=320, quality=80,
                              effort=4)
    assert (spec.extension, spec.mime) == (STILL_KINDS[name].extension, STILL_KINDS[name].mime)


def test_clip_plans_take_file_and_key_from_their_kind(presets) -> None:
    plan = plan_video(clip(), SHA, [presets[n] for n in sorted(presets)], EmbeddedText(),
                      cues=(Cue(0.5, 1.5, "Xin chào"),))
    assert {o.spec.type for o in plan.outputs} == set(CLIP_KINDS)
    for out in plan.outputs:
        kind = CLIP_KINDS[out.spec.type]
        assert (out.extension, out.mime, out.has_audio) == (kind.extension, kind.mime, kind.has_audio)
        assert out.key.endswith(f"/{kind.index}" if kind.index else f".{kind.extension}"), out.key
        assert out.encoded == (kind.feed == "graph" and out.from_rung is None)
    assert {(a.spec.type, a.extension, a.mime) for a in plan.audio} == {
        (k.name, k.extension, k.mime) for k in AUDIO_KINDS.values()}
