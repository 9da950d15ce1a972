"""Loudness pass 2 is a computed gain (plus a limiter only when needed); parsers read ffmpeg."""

from __future__ import annotations

import pytest

from pipeline.errors import RenderError
from pipeline.model.presets import Loudness
from pipeline.render.av.loudness import Level, Measured, normalise, parse_level, parse_loudnorm

AIR = Loudness(integrated=-23, true_peak=-1, lra=15)
WEB = Loudness(integrated=-16, true_peak=-1, lra=11)


def test_quiet_programme_gets_a_plain_gain() -> None:
    measured = Measured(integrated=-30.0, true_peak=-12.0, lra=5, threshold=-40)
    assert normalise(AIR, measured) == [("volume", {"volume": "7.00dB"})]


def test_gain_that_would_clip_gets_a_limiter_under_the_ceiling() -> None:
    measured = Measured(integrated=-26.0, true_peak=-3.0, lra=5, threshold=-36)
    (gain, limiter) = normalise(WEB, measured)
    assert gain == ("volume", {"volume": "10.00dB"})
    name, args = limiter
    assert name == "alimiter" and args["level"] == "disabled"
    assert float(args["limit"]) == pytest.approx(10 ** (-2 / 20), abs=1e-3)


@pytest.mark.parametrize("measured", [None, Measured(-99.0, -99.0, 0, -109)])
def test_silence_is_left_alone(measured) -> None:
    assert normalise(AIR, measured) == []


def test_parse_loudnorm_json() -> None:
    stderr = """[Parsed_loudnorm_2 @ 0x5] \n{\n\t"input_i" : "-26.71",\n\t"input_tp" : "-8.02",
\t"input_lra" : "6.30",\n\t"input_thresh" : "-37.12",\n\t"output_i" : "-24.0"\n}\n"""
    assert parse_loudnorm(stderr) == Measured(-26.71, -8.02, 6.3, -37.12)
    with pytest.raises(RenderError):
        parse_loudnorm("no json here")


def test_parse_ebur128_summary() -> None:
    stderr = """[Parsed_ebur128_0 @ 0x5] Summary:

  Integrated loudness:
    I:         -23.0 LUFS
    Threshold: -33.1 LUFS

  Loudness range:
    LRA:         4.2 LU

  True peak:
    Peak:       -3.4 dBFS"""
    assert parse_level(stderr) == Level(-23.0, -3.4)
    silent = stderr.replace("-23.0 LUFS", "-70.0 LUFS").replace("-3.4 dBFS", "-inf dBFS")
    assert parse_level(silent) == Level(-70.0, float("-inf"))
