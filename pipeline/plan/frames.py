"""Frame rates, field cadence and picture geometry of clip outputs. Pure: numbers in, numbers out."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from pipeline.ingest.info import AVInfo
from pipeline.model.presets import HlsOutput, HlsRung

STANDARD_RATES = tuple(Fraction(r) for r in ("24000/1001", "24", "25", "30000/1001", "30", "50",
                                             "60000/1001", "60"))
PAL_FIELDS = Fraction(50)
PAL_FRAMES = Fraction(25)

Geometry = Literal["scale", "blur-fill"]
Cadence = Literal["progressive", "psf", "weave", "keep-fields"]
"""How interlaced output is made: ``psf`` 25p flagged TFF; ``weave`` 50p -> 50 fields
(``tinterlace``); ``keep-fields`` the source is already 25i and stays so."""


@dataclass(frozen=True)
class Frame:
    """The picture an output gets: its size and how the source fills it."""

    width: int
    height: int
    geometry: Geometry
    inner: tuple[int, int]
    """Size of the whole source picture inside the frame (equals the frame for ``scale``)."""


@dataclass(frozen=True)
class RungPlan:
    """One HLS rung: its picture and bitrates (kb/s)."""

    name: str
    frame: Frame
    bitrate: int
    maxrate: int


def nearest_rate(rate: Fraction) -> Fraction:
    """The standard frame rate closest to ``rate`` (VFR phone clips become CFR at it)."""
    return min(STANDARD_RATES, key=lambda r: abs(float(r) - float(rate)))


def natural_rate(info: AVInfo, max_fps: float) -> Fraction:
    assert info.video is not None
    video = info.video
    rate = nearest_rate(video.avg_fps if video.vfr else video.fps)
    if video.interlaced:
        rate = nearest_rate(rate)  # fields are not frames: a 25i source is 25 frames/s
    while float(rate) > max_fps + 0.01:
        rate = rate / 2
    return rate


def pal_cadence(info: AVInfo) -> tuple[Fraction, Cadence]:
    """Progressive rate of the branch and how 1080i50 is made from it."""
    assert info.video is not None
    video = info.video
    rate = nearest_rate(video.avg_fps if video.vfr else video.fps)
    if video.interlaced and rate == PAL_FRAMES:
        return PAL_FRAMES, "keep-fields"
    if video.interlaced or float(rate) > 40:
        return PAL_FIELDS, "weave"   # 50p/60p, or 30i deinterlaced to 60p: true 50 fields
    return PAL_FRAMES, "psf"          # 24/25/30p: 25 frames, each both fields


def even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def plan_frame(info: AVInfo, box: tuple[int, int], mode: Literal["fit", "fill"]) -> Frame:
    assert info.video is not None
    sw, sh = info.video.width, info.video.height
    if mode == "fit":
        if sh > sw and box[0] > box[1]:
            box = (box[1], box[0])   # a vertical clip gets a vertical box
        k = min(box[0] / sw, box[1] / sh, 1.0)
        size = (even(sw * k), even(sh * k))
        return Frame(size[0], size[1], "scale", size)
    width, height = box
    if abs(sw / sh - width / height) / (width / height) < 0.02:
        return Frame(width, height, "scale", (width, height))
    k = min(width / sw, height / sh)
    return Frame(width, height, "blur-fill", (even(sw * k), even(sh * k)))


def plan_rungs(info: AVInfo, spec: HlsOutput, mode: Literal["fit", "fill"]
               ) -> tuple[tuple[RungPlan, ...], dict[str, str]]:
    """The ladder for this source, and which kept rung stands for each declared one.

    Rungs that would need upscaling collapse onto the same picture; of those the smallest
    declared rung is kept (a 720p source keeps the "720p" rung with its bitrates, not a
    "1080p" rung that is really 720p)."""
    groups: dict[Frame, list[HlsRung]] = {}
    for rung in spec.rungs:
        groups.setdefault(plan_frame(info, (rung.width, rung.height), mode), []).append(rung)
    kept = tuple(RungPlan(same[-1].name, frame, same[-1].bitrate, same[-1].maxrate)
                 for frame, same in groups.items())
    alias = {rung.name: same[-1].name for same in groups.values() for rung in same}
    return kept, alias
