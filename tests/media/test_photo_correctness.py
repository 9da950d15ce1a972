"""Photos come out upright, in sRGB, at the right size, with focus kept and portraits whole."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import Image, ImageChops
from skimage.metrics import structural_similarity

from pipeline.errors import ProbeError, UnsupportedMedia
from pipeline.ingest.limits import Limits
from pipeline.ingest.probe import probe
from pipeline.plan.image import fit_inside
from pipeline.render.graphics.text import draw_caption_bar, require_raqm
from tests.fixtures import BLUE, RED, marked, photo, pixel_bomb_png, rotated_jpeg, truncated_jpeg
from tests.media.render_helpers import TEXT, load, render

pytestmark = pytest.mark.media


def _colour_at(img: Image.Image, fx: float, fy: float) -> tuple[int, ...]:
    rgb = img.convert("RGB")
    x, y = int(fx * (rgb.width - 1)), int(fy * (rgb.height - 1))
    return rgb.getpixel((x, y))


def _near(colour: tuple[int, ...], target: tuple[int, int, int], tol: int = 40) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(colour, target, strict=False))


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_exif_orientation_is_honoured(tmp_path: Path, presets, orientation: int) -> None:
    source = rotated_jpeg(tmp_path / f"rotated-{orientation}.jpg", orientation, (1200, 800))
    info = probe(source, Limits())
    assert (info.width, info.height) == (1200, 800)
    outputs = render(source, [presets["web"]], tmp_path / "out")
    img = load(outputs[("web", "w640", "jpeg")])
    assert img.size == (640, 427)
    assert _near(_colour_at(img, 0.03, 0.04), RED), "red marker must stay top-left"
    assert _near(_colour_at(img, 0.97, 0.04), BLUE), "blue marker must stay top-right"
    assert img.getexif().get(0x0112) in (None, 1), "no orientation tag may survive"


def test_cmyk_jpeg_is_converted_to_rgb_with_its_colours(tmp_path: Path, presets) -> None:
    rgb = Image.new("RGB", (800, 600), (200, 60, 40))
    rgb.paste((30, 90, 200), (400, 0, 800, 600))
    rgb.convert("CMYK").save(tmp_path / "cmyk.jpg", "JPEG", quality=95)
    assert load(tmp_path / "cmyk.jpg").mode == "CMYK"
    img = load(render(tmp_path / "cmyk.jpg", [presets["web"]], tmp_path / "o")[("web", "w640", "jpeg")])
    assert img.mode == "RGB"
    assert _near(_colour_at(img, 0.25, 0.5), (200, 60, 40), 12)
    assert _near(_colour_at(img, 0.6, 0.5), (30, 90, 200), 12)


def test_16_bit_grey_png_is_scaled_not_clipped(tmp_path: Path, presets) -> None:
    ramp = np.tile(np.linspace(0, 65535, 800, dtype=np.uint16), (600, 1))
    Image.fromarray(ramp).save(tmp_path / "grey16.png")
    assert load(tmp_path / "grey16.png").mode.startswith("I")
    img = load(render(tmp_path / "grey16.png", [presets["web"]], tmp_path / "o")[("web", "w640", "jpeg")])
    row = np.asarray(img.convert("L"))[300]
    assert row[5] < 20 and row[320] == pytest.approx(128, abs=12) and row[620] > 200
    assert (np.asarray(img.convert("L")) >= 250).mean() < 0.2


def test_alpha_is_flattened_for_jpeg_and_kept_for_webp(tmp_path: Path, presets) -> None:
    rgba = Image.new("RGBA", (800, 600), (0, 0, 0, 0))
    rgba.paste((20, 120, 60, 255), (200, 150, 600, 450))
    rgba.save(tmp_path / "alpha.png")
    outputs = render(tmp_path / "alpha.png", [presets["web"]], tmp_path / "o")
    jpeg = load(outputs[("web", "w640", "jpeg")])
    webp = load(outputs[("web", "w640", "webp")])
    assert _near(_colour_at(jpeg, 0.05, 0.5), (255, 255, 255), 3), "transparent -> white in JPEG"
    assert _near(_colour_at(jpeg, 0.5, 0.5), (20, 120, 60), 10)
    assert webp.mode == "RGBA" and webp.getpixel((10, 300))[3] == 0


def test_palette_and_icc_profile_are_converted(tmp_path: Path, presets) -> None:
    photo((800, 600), 2).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "palette.png")
    out = render(tmp_path / "palette.png", [presets["web"]], tmp_path / "o")
    assert load(out[("web", "w640", "jpeg")]).mode == "RGB"


ADOBE_RGB = Path("/usr/share/color/icc/compatibleWithAdobeRGB1998.icc")  # Debian icc-profiles-free


def test_icc_tagged_photo_is_converted_to_srgb(tmp_path: Path, presets) -> None:
    from PIL import ImageCms

    srgb_colour = (200, 60, 40)
    adobe = ImageCms.ImageCmsProfile(str(ADOBE_RGB))
    tagged = ImageCms.profileToProfile(Image.new("RGB", (800, 600), srgb_colour),
                                       ImageCms.createProfile("sRGB"), adobe, outputMode="RGB")
    assert not _near(tagged.getpixel((0, 0)), srgb_colour, 12), "the profile changes the numbers"
    tagged.save(tmp_path / "adobe-rgb.jpg", quality=95, icc_profile=adobe.tobytes())
    img = load(render(tmp_path / "adobe-rgb.jpg", [presets["web"]], tmp_path / "o")[("web", "w640", "jpeg")])
    assert _near(_colour_at(img, 0.3, 0.5), srgb_colour, 5)


def test_heic_is_read(tmp_path: Path, presets) -> None:
    pillow_heif.from_pillow(marked((1200, 800))).save(tmp_path / "phone.heic", quality=90)
    outputs = render(tmp_path / "phone.heic", [presets["web"]], tmp_path / "o")
    img = load(outputs[("web", "w1024", "jpeg")])
    assert img.size == (1024, 683)
    assert _near(_colour_at(img, 0.03, 0.04), RED) and _near(_colour_at(img, 0.97, 0.04), BLUE)


def test_never_upscaled(tmp_path: Path, presets) -> None:
    photo((900, 600)).save(tmp_path / "small.jpg", quality=90)
    outputs = render(tmp_path / "small.jpg", [presets["web"]], tmp_path / "o")
    sizes = {load(p).size for p in outputs.values()}
    assert sizes == {(320, 213), (640, 427), (900, 600)}


def test_focal_point_stays_in_the_crop(tmp_path: Path, presets) -> None:
    img = Image.new("RGB", (3000, 2000), (120, 120, 120))
    img.paste(RED, (250, 950, 350, 1050))            # a red face at x=0.1, y=0.5
    img.save(tmp_path / "focus.jpg", quality=92)
    centred = render(tmp_path / "focus.jpg", [presets["social"]], tmp_path / "a")
    focused = render(tmp_path / "focus.jpg", [presets["social"]], tmp_path / "b", focus=(0.1, 0.5))

    def has_red(path: Path) -> bool:
        arr = np.asarray(load(path).convert("RGB")).astype(int)
        return bool(((arr[..., 0] > 180) & (arr[..., 1] < 80) & (arr[..., 2] < 80)).sum() > 50)

    assert not has_red(centred[("social", "square", "jpeg")]), "a centre crop cuts the face off"
    assert has_red(focused[("social", "square", "jpeg")]), "the focal crop keeps it"


def test_portrait_on_broadcast_is_whole_over_a_blurred_fill(tmp_path: Path, presets) -> None:
    source = photo((1500, 2000), 9)
    source.save(tmp_path / "portrait.jpg", quality=95)
    out = load(render(tmp_path / "portrait.jpg", [presets["broadcast"]], tmp_path / "o")[
        ("broadcast", "still-1080", "jpeg")]).convert("RGB")
    assert out.size == (1920, 1080)
    left, top, width, height = fit_inside((1500, 2000), (1920, 1080))
    middle = np.asarray(out.crop((left, top + 200, left + width, top + height)).convert("L"))
    expected = np.asarray(source.resize((width, height), Image.Resampling.LANCZOS)
                          .crop((0, 200, width, height)).convert("L"))
    assert structural_similarity(middle, expected, data_range=255) > 0.8, "the whole portrait is shown"
    side = np.asarray(out.crop((0, 0, left - 1, 1080)).convert("L")).astype(float)
    sharp = np.asarray(out.crop((left, 0, left + width, 1080)).convert("L")).astype(float)
    assert np.abs(np.diff(side, axis=1)).mean() < np.abs(np.diff(sharp, axis=1)).mean() / 3, \
        "the sides are a blurred fill"


def test_caption_renders_the_same_from_nfc_and_nfd(tmp_path: Path, presets) -> None:
    require_raqm()
    style = presets["social"].caption
    font = str(presets["social"].font_path)
    base = Image.new("RGB", (1080, 1080), (90, 110, 130))
    nfc = draw_caption_bar(base, unicodedata.normalize("NFC", TEXT.caption), style, font)
    nfd = draw_caption_bar(base, unicodedata.normalize("NFD", TEXT.caption), style, font)
    assert ImageChops.difference(nfc, nfd).getbbox() is None
    assert ImageChops.difference(nfc, base).getbbox() is not None, "a caption was drawn"
    box = ImageChops.difference(nfc, base).getbbox()
    assert box[1] > 1080 * 0.5 and box[3] == 1080, "caption bar sits at the bottom"


def test_caption_text_stays_inside_title_safe_area(presets) -> None:
    style = presets["social"].caption
    font = str(presets["social"].font_path)
    base = Image.new("RGB", (1080, 1350), (0, 0, 0))
    long_caption = " ".join([TEXT.caption] * 4)
    out = np.asarray(draw_caption_bar(base, long_caption, style, font).convert("L"))
    text_cols = np.where((out > 200).any(axis=0))[0]       # white text pixels only
    text_rows = np.where((out > 200).any(axis=1))[0]
    assert text_cols.min() >= 1080 * 0.05 and text_cols.max() <= 1080 * 0.95
    assert text_rows.max() <= 1350 * 0.95


def test_logo_is_present(tmp_path: Path, presets) -> None:
    photo((2400, 1600), 4).save(tmp_path / "p.jpg", quality=92)
    with_logo = load(render(tmp_path / "p.jpg", [presets["web"]], tmp_path / "a")[("web", "w1024", "jpeg")])
    without = load(render(tmp_path / "p.jpg", [presets["web"]], tmp_path / "b", branded=True)[
        ("web", "w1024", "jpeg")])
    logo = presets["web"].logo
    diff = np.asarray(ImageChops.difference(with_logo, without).convert("L")).astype(float)
    w, h = with_logo.size
    lw = round(w * logo.width)
    x0, y0 = w - round(w * logo.margin) - lw, h - round(h * logo.margin) - lw * 360 // 1200
    inside = diff[y0:h - round(h * logo.margin), x0:w - round(w * logo.margin)].mean()
    outside = diff[: h // 2, : w // 2].mean()
    assert inside >= 10, f"logo box differs by {inside:.1f}"
    assert inside >= 5 * max(outside, 0.5), f"outside differs by {outside:.1f}"


@pytest.mark.parametrize(("maker", "error", "words"), [
    (lambda p: p.write_bytes(b""), ProbeError, "empty"),
    (truncated_jpeg, ProbeError, "truncated"),
    (lambda p: p.write_text("Biên bản họp giao ban\n" * 20, encoding="utf-8"), UnsupportedMedia, "text file"),
    (pixel_bomb_png, UnsupportedMedia, "too many pixels"),
    (lambda p: p.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 200), ProbeError, "cannot be read"),
])
def test_bad_input_is_refused_with_a_reason(tmp_path: Path, maker, error, words: str) -> None:
    path = tmp_path / "bad.jpg"
    maker(path)
    with pytest.raises(error) as caught:
        probe(path, Limits())
    assert words in caught.value.reason


def test_avif_is_available_as_a_preset_format(tmp_path: Path) -> None:
    from pipeline.model.presets import parse_preset
    from tests.conftest import PRESETS

    preset = parse_preset({"preset": {"name": "web", "version": 1},
                           "image": {"renditions": [{"widths": [640], "formats": ["avif"], "effort": 2}]}},
                          PRESETS, "web.toml")
    photo((1200, 800)).save(tmp_path / "p.jpg", quality=90)
    out = render(tmp_path / "p.jpg", [preset], tmp_path / "o")
    img = load(out[("web", "w640", "avif")])
    assert (img.format, img.size) == ("AVIF", (640, 427))


def test_pixel_cap_is_ours_not_pillows(tmp_path: Path) -> None:
    pixel_bomb_png(tmp_path / "100mp.png", 10000, 10000)        # above Pillow's 89.5 MP warning
    assert probe(tmp_path / "100mp.png", Limits()).width == 10000  # below our 120 MP cap
    with pytest.raises(UnsupportedMedia, match="too many pixels"):
        probe(tmp_path / "100mp.png", Limits(max_image_pixels=50_000_000))
