"""EBU R128 loudness: a cheap audio-only measurement before the render, a check after it.

Pass 1 runs ``loudnorm`` in analysis mode over the audio alone (no video decode) on the same
stereo downmix the render uses; its measurement does not depend on the target, so one pass
serves every preset. Pass 2 is inside the render graph: the gain that brings the measured
programme to the target, and a limiter only if the true-peak ceiling needs one (see
:func:`normalise`). Afterwards every output is
measured independently with ``ebur128`` and the figures go into the manifest.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import RenderError
from pipeline.model.presets import Loudness
from pipeline.render.av.runner import binary, input_args, run_capture

STEREO_48K = "aresample=48000,aformat=sample_rates=48000:channel_layouts=stereo"
"""The programme audio every output is made from: 48 kHz stereo (5.1 is downmixed, mono doubled)."""


@dataclass(frozen=True)
class Measured:
    """Pass-1 figures of the source programme audio."""

    integrated: float
    true_peak: float
    lra: float
    threshold: float


@dataclass(frozen=True)
class Level:
    """What an output measures: integrated loudness (LUFS) and true peak (dBTP)."""

    integrated: float
    true_peak: float


def measure_argv(path: Path, demuxer: str) -> list[str]:
    return [binary("ffmpeg"), "-hide_banner", "-nostdin", "-loglevel", "info",
            *input_args(demuxer, path), "-map", "0:a:0", "-vn", "-sn", "-dn",
            "-af", f"{STEREO_48K},loudnorm=print_format=json", "-f", "null", "-"]


def parse_loudnorm(stderr: str) -> Measured:
    """The JSON block ``loudnorm=print_format=json`` prints last."""
    start, end = stderr.rfind("{"), stderr.rfind("}")
    try:
        data = json.loads(stderr[start:end + 1])
        values = {k: float(data[k]) for k in ("input_i", "input_tp", "input_lra", "input_thresh")}
    except (ValueError, KeyError) as exc:
        raise RenderError("the loudness measurement gave no result", code="loudness",
                          log_tail=stderr[-2000:]) from exc
    return Measured(values["input_i"], values["input_tp"], values["input_lra"], values["input_thresh"])


def measure(path: Path, demuxer: str, timeout: float) -> Measured:
    return parse_loudnorm(run_capture(measure_argv(path, demuxer), timeout))


def normalise(target: Loudness, measured: Measured | None) -> list[tuple[str, dict[str, object]]]:
    """Pass 2 as filters: a plain gain to the target, plus a peak limiter only when the gain
    would push the true peak over the ceiling.

    This is what ``loudnorm`` does in linear mode, without its 3-second look-ahead: inside a
    graph feeding a dozen encoders that look-ahead made ffmpeg queue seconds of raw frames for
    every output (4 GB for a 1080p clip). The limiter looks 5 ms ahead and sits 1 dB under the
    ceiling (it sees sample peaks; true peaks between samples can be a little higher).
    """
    if measured is None or measured.integrated < -70:   # silence: nothing to normalise to
        return []
    gain = target.integrated - measured.integrated
    filters: list[tuple[str, dict[str, object]]] = [("volume", {"volume": f"{gain:.2f}dB"})]
    if measured.true_peak + gain > target.true_peak - 0.5:
        ceiling = 10 ** ((target.true_peak - 1.0) / 20)
        filters.append(("alimiter", {"limit": f"{ceiling:.4f}", "attack": 5, "release": 50,
                                     "level": "disabled"}))
    return filters


_SUMMARY_I = re.compile(r"Integrated loudness:\s*I:\s*(-?[\d.]+|-inf)\s*LUFS")
_SUMMARY_TP = re.compile(r"True peak:\s*Peak:\s*(-?[\d.]+|-inf)\s*dBFS")


def level_argv(path: Path, demuxer: str, stream: str = "0:a:0", mono_pair: bool = False) -> list[str]:
    """``ebur128`` over one output; ``mono_pair`` joins two mono tracks (MXF) into stereo."""
    argv = [binary("ffmpeg"), "-hide_banner", "-nostdin", "-loglevel", "info", *input_args(demuxer, path)]
    if mono_pair:
        graph = "[0:a:0][0:a:1]join=inputs=2:channel_layout=stereo,ebur128=peak=true[out]"
        return [*argv, "-filter_complex", graph, "-map", "[out]", "-f", "null", "-"]
    return [*argv, "-map", stream, "-af", "ebur128=peak=true", "-f", "null", "-"]


def _number(text: str) -> float:
    return float("-inf") if text == "-inf" else float(text)


def parse_level(stderr: str) -> Level:
    summary = stderr[stderr.rfind("Summary:"):]
    i_match, tp_match = _SUMMARY_I.search(summary), _SUMMARY_TP.search(summary)
    if not i_match or not tp_match:
        raise RenderError("the loudness check gave no result", code="loudness",
                          log_tail=stderr[-2000:])
    return Level(_number(i_match.group(1)), _number(tp_match.group(1)))


def level(path: Path, demuxer: str, timeout: float, mono_pair: bool = False) -> Level:
    return parse_level(run_capture(level_argv(path, demuxer, mono_pair=mono_pair), timeout))
