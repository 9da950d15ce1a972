"""Plans are pure: sizes, crops, layouts and keys from numbers alone (table-driven)."""

from __future__ import annotations

import re

import pytest

from pipeline.ingest.info import ImageInfo
from pipeline.model.embedded_text import EmbeddedText
from pipeline.plan.image import decode_size, fill_region, fit_inside, plan_image
from pipeline.plan.kinds import STILL_KINDS

SHA = "ab" * 32
TEXT = EmbeddedText(caption="Bà Lê Thị Minh Tâm", byline="Đình Hà", credit="Đình Hà")


def info(width: int, height: int, orientation: int = 1) -> ImageInfo:
    stored = (height, width) if orientation >= 5 else (width, height)
    return ImageInfo(format="JPEG", mime="image/jpeg", width=width, height=height,
                     stored_width=stored[0], stored_height=stored[1], orientation=orientation,
                     mode="RGB", bytes=1000)


def by_name(plans):
    return {(p.preset.split("@")[0], p.name, p.spec.format): p for p in plans}


@pytest.mark.parametrize(("src", "frame", "focus", "expected"), [
    ((6000, 4000), (1920, 1080), (0.5, 0.5), (0, 312.5, 6000, 3687.5)),
    ((6000, 4000), (1920, 1080), (0.5, 0.0), (0, 0, 6000, 3375)),
    ((6000, 4000), (1920, 1080), (0.5, 1.0), (0, 625, 6000, 4000)),
    ((3000, 2000), (1080, 1080), (0.1, 0.5), (0, 0, 2000, 2000)),
    ((3000, 2000), (1080, 1080), (0.5, 0.5), (500, 0, 2500, 2000)),
    ((3000, 2000), (1080, 1080), (0.9, 0.5), (1000, 0, 3000, 2000)),
])
def test_fill_region_centres_on_focus_within_edges(src, frame, focus, expected) -> None:
    assert fill_region(src, frame, focus) == pytest.approx(expected)


@pytest.mark.parametrize(("src", "frame", "expected"), [
    ((3000, 4000), (1920, 1080), (555, 0, 810, 1080)),
    ((800, 600), (1920, 1080), (560, 240, 800, 600)),   # smaller than the frame: never upscaled
])
def test_fit_inside(src, frame, expected) -> None:
    assert fit_inside(src, frame) == expected


def test_web_widths_never_upscale_and_source_width_replaces_dropped(presets) -> None:
    plans = plan_image(info(1500, 1000), SHA, [presets["web"]], TEXT)
    widths = sorted({p.width for p in plans})
    assert widths == [320, 640, 1024, 1500]
    assert {p.name for p in plans} == {"w320", "w640", "w1024", "w1500"}
    assert all(p.width <= 1500 for p in plans)
    w1024 = by_name(plans)[("web", "w1024", "jpeg")]
    assert (w1024.width, w1024.height, w1024.layout) == (1024, 683, "scale")


def test_small_source_gets_no_upscaled_web_rendition(presets) -> None:
    plans = plan_image(info(300, 200), SHA, [presets["web"]], TEXT)
    assert {(p.width, p.height) for p in plans} == {(300, 200)}


def test_landscape_broadcast_is_a_focal_crop(presets) -> None:
    (plan,) = plan_image(info(6000, 4000), SHA, [presets["broadcast"]], TEXT, focus=(0.5, 0.45))
    assert (plan.width, plan.height, plan.layout) == (1920, 1080, "crop")
    assert plan.region == pytest.approx((0, 112.5, 6000, 3487.5))


def test_portrait_broadcast_is_a_blurred_fill(presets) -> None:
    (plan,) = plan_image(info(3000, 4000), SHA, [presets["broadcast"]], TEXT)
    assert plan.layout == "blur-fill"
    assert plan.region == (0, 0, 3000, 4000)           # nothing of the picture is cut
    assert plan.placement == (555, 0, 810, 1080)


def test_small_source_on_broadcast_is_centred_not_upscaled(presets) -> None:
    (plan,) = plan_image(info(800, 600), SHA, [presets["broadcast"]], TEXT)
    assert plan.layout == "blur-fill"
    assert plan.placement == (560, 240, 800, 600)


def test_social_renditions_burn_the_caption(presets) -> None:
    plans = plan_image(info(6000, 4000), SHA, [presets["social"]], TEXT)
    assert {(p.width, p.height) for p in plans} == {(1080, 1080), (1080, 1350)}
    assert all(p.caption == TEXT.caption for p in plans)


def test_keys_follow_the_design(presets) -> None:
    plans = plan_image(info(6000, 4000), SHA, [presets["web"], presets["broadcast"]], TEXT)
    for plan in plans:
        assert re.fullmatch(rf"renditions/{SHA[:16]}/(web|broadcast)@1/[a-z0-9-]+-[0-9a-f]{{8}}\.(jpg|webp)",
                            plan.key), plan.key
    assert len({p.key for p in plans}) == len(plans)


def test_spec_hash_changes_with_whatever_changes_bytes(presets) -> None:
    def key(**kwargs):
        args = {"info": info(6000, 4000), "asset_sha256": SHA, "presets": [presets["social"]],
                "text": TEXT, "focus": (0.5, 0.5), "branded": False, **kwargs}
        return {p.name: p.key for p in plan_image(**args)}

    base = key()
    assert key() == base                                              # deterministic
    assert key(focus=(0.2, 0.5)) != base                              # another crop
    assert key(text=EmbeddedText(caption="Khác")) != base             # another caption
    assert key(branded=True) != base                                  # no logo
    assert key(asset_sha256="cd" * 32) != base                        # another source


def test_branded_source_gets_no_logo(presets) -> None:
    plans = plan_image(info(6000, 4000), SHA, [presets["web"]], TEXT, branded=True)
    assert all(p.logo is None for p in plans)
    plans = plan_image(info(6000, 4000), SHA, [presets["web"]], TEXT)
    assert all(p.logo is not None for p in plans)


def test_plans_are_largest_first_and_decode_size_serves_the_largest(presets) -> None:
    source = info(6000, 4000)
    plans = plan_image(source, SHA, [presets["web"], presets["broadcast"]], TEXT)
    scales = [p.scale for p in plans]
    assert scales == sorted(scales, reverse=True)
    width, height = decode_size(source, plans)
    assert width >= 2000 and width < 6000 / 2 + 2     # JPEG DCT scaling can halve it
    assert height >= 1080


def test_still_plans_take_file_and_key_from_their_kind(presets) -> None:
    plans = plan_image(info(3000, 2000), SHA, [presets[n] for n in sorted(presets)], TEXT)
    assert {p.spec.format for p in plans} >= {"jpeg", "webp"}
    for plan in plans:
        kind = STILL_KINDS[plan.spec.format]
        assert (plan.extension, plan.mime) == (kind.extension, kind.mime)
        assert plan.key.endswith(f".{kind.extension}")
