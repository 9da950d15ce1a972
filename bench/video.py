"""Clip benchmark: our one-process render against a hand-written single ffmpeg command and
against one ffmpeg process per output, all making the same web + broadcast set.

Run with the project's virtual environment::

    .venv/bin/python bench/video.py [--seconds 60] [--runs 1] [--keep DIR]

A full 60 s run takes several minutes on 2 vCPUs; ``--seconds 20`` is a quick check.

What it does
------------
1. Generates the source once (not timed): a ``--seconds`` long 1920x1080 29.97 fps H.264 High
   "phone" clip at about 15 Mb/s (``testsrc2`` plus temporal noise, so x264 has real work; x264
   ``veryfast``), with AAC stereo sine tones whose level steps around -26 LUFS.
2. **ours**: ``probe()`` + ``plan_video()`` with the ``web`` and ``broadcast`` presets from
   ``load_presets()``, then ``render_video()`` into a scratch folder: loudness pass 1, ONE ffmpeg
   process (the HLS ladder 1080/720/480/360 as fragmented MP4s, XDCAM HD422 MXF, 1080p25
   proxy), the poster and the thumbnail sprite from quick runs of their own (input seek; rough
   ``skip_frame noref`` decode), the web 1080p and 720p MP4s remuxed from the matching rungs,
   HLS packaging, the sprite's WebVTT index, then the output checks (ffprobe + ``ebur128`` per
   output, sha256). All of it is timed; the source's own sha256 is not (the images benchmark
   leaves it out too).
3. **(a) one hand-written command** (:func:`single_command`): decode once, one ``fps`` conform
   per preset, the logo burned once per preset at 1080 before a ``split``, every other size
   scaled from that 1080 picture, and the same encoders and rate settings as our graph
   (x264 ``veryfast`` High, 2 s closed GOPs, ``X264_THREADS`` threads per encoder, the rung
   bitrates for HLS, CRF 23 / 8 Mb/s for the proxy, the XDCAM HD422 option set of
   ``pipeline.render.av.outputs.XDCAM_VIDEO``; :func:`baseline_drift` checks at start that the
   presets and graph still match what the commands were written for). The poster (``trim`` at
   10 %) and the sprite (``fps=1/2``, 160x90, ``tile=10x10``) are outputs of the same graph,
   logo-free as ours. Differences: the 1080p and 720p MP4s are encodes of their own (with the
   settings of the rungs ours remuxes them from, 5000/5500 and 2800/3000 kb/s: no sharing); the
   HLS ladder is ffmpeg's own ``-f hls`` fMP4 muxer with ``var_stream_map`` and one shared audio
   rendition (our rungs each carry their audio, and we also write I-frame playlists, which
   ffmpeg cannot); loudness is **single-pass** ``loudnorm`` (dynamic mode) to -16 (web) and -23
   (broadcast), so (a) has no pass 1 (the report also shows (a) with our pass-1 time added).
4. **(b) one ffmpeg process per output**, run one after another (:func:`per_output_commands`):
   MP4 1080p, MP4 720p, the HLS ladder (one ``-f hls`` output, so one process), poster (input
   ``-ss`` seek, as ours), sprite (a full decode), XDCAM MXF, proxy. Each decodes the source
   again and runs its own single-pass ``loudnorm``; the logo is sized for and burned on each
   output's frame.

Method
------
Each approach runs in a fresh subprocess (``--child``), which does its imports, then takes the
clock: wall time with ``time.perf_counter``; CPU seconds as user + system of the child itself
plus every ffmpeg/ffprobe it waited for (``getrusage`` ``RUSAGE_SELF`` and ``RUSAGE_CHILDREN``
deltas); peak RSS as ``ru_maxrss`` of ``RUSAGE_CHILDREN``, i.e. the largest single ffmpeg
process (not a sum). For ours the child also wraps the pipeline's own functions
(``loudness.measure``, ``build_argv``, ``run_ffmpeg``, ``run_capture``, ``_remux``, ``_sprite``,
``_package``, ``_facts``, ``file_sha256``) to split the time into phases, outermost call only;
"other (Python)" is the rest, and the longest stretch no phase accounts for is printed. "others
CPU s" is what the rest of the machine used meanwhile (``/proc/stat`` busy time minus ours):
other users' jobs, which inflate wall times (a warning is printed above 5 % of the machine).
``--runs`` rounds alternate the order of the approaches; the tables show medians. The outputs
of the last round are then read back (not timed): every expected file exists and ffprobe finds
the right codec, size, frame rate, field order, audio tracks and duration; integrated loudness
of the web MP4 1080p and the MXF is measured with ``ebur128`` and must be within 1 LU of -16
and -23.

Reading the result
------------------
``ratio`` is wall time over wall time: below 1.00 the first-named approach is faster. The
last line, ``ratio 0.93`` style, is ours / (a), which the research target in
``shared/reference/video.md`` puts at <= 1.00 (it measured (a) at about 0.85x (b), and sharing
the 720p encode at about -17 %; ours now shares the 1080p MP4 encode too). On 2 vCPUs ffmpeg
keeps both cores busy, so CPU seconds are the steadier figure; wall time also moves with
machine contention (see "others CPU s"). Compare ratios, not seconds, between machines. Ours
pays for work (a) and (b) do not do: the loudness pass 1, the separate still runs, the
read-back checks and hashing; the phase table shows how much each costs.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from machine import machine_busy, work_folder

from pipeline.render.av.outputs import X264_THREADS, XDCAM_VIDEO
from pipeline.render.av.runner import binary

APPROACHES = ("ours", "single", "per-output")
LABELS = {"ours": "ours", "single": "(a) one command", "per-output": "(b) per output"}
PRESETS = ("web", "broadcast")
WEB_RATE = "30000/1001"
"""The source's rate: the web preset keeps the natural rate (<= 30 fps), as our plan does."""
LOGO = Path(__file__).resolve().parent.parent / "presets" / "station" / "logo.png"
HLS_RUNGS = (("1080p", 1920, 1080, 5000, 5500), ("720p", 1280, 720, 2800, 3000),
             ("480p", 854, 480, 1200, 1300), ("360p", 640, 360, 700, 800))
"""name, width, height, bitrate, maxrate (kb/s): ``presets/web.toml``."""
MB = 1024 * 1024


# --- source generation (not timed) ---------------------------------------------------------

TONES = ("aevalsrc='0.07*sin(2*PI*(440+110*floor(mod(t,6)/2))*t)*(0.55+0.45*lt(mod(t,7),4))"
         "|0.06*sin(2*PI*(330+55*floor(mod(t,5)/2.5))*t)*(0.55+0.45*lt(mod(t+2,9),5))'")
"""Two sine voices (left, right) stepping in pitch and in level: about -26 LUFS, LRA ~3.5 LU."""


def make_source(path: Path, seconds: float) -> None:
    """A phone-like clip: 1080p29.97 H.264 High ~15 Mb/s with noise, AAC stereo ~-26 LUFS."""
    argv = [binary("ffmpeg"), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate={WEB_RATE},noise=alls=12:allf=t",
            "-f", "lavfi", "-i", f"{TONES}:s=48000",
            "-map", "0:v", "-map", "1:a", "-t", f"{seconds:.3f}",
            "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt", "yuv420p",
            "-b:v", "15M", "-maxrate", "18M", "-bufsize", "30M", "-g", "30",
            "-c:a", "aac", "-b:a", "192k", "-ar", "48000", "-ac", "2",
            "-metadata", "location=+10.7626+106.6602/", "-movflags", "+faststart", str(path)]
    subprocess.run(argv, check=True)


# --- the hand-written baselines ------------------------------------------------------------

FF = ("-hide_banner", "-nostdin", "-loglevel", "error", "-y")
CLEAN = ["-map_metadata", "-1", "-map_chapters", "-1"]
AAC = ["-c:a", "aac", "-b:a", "128k", "-ac", "2", "-ar", "48000"]
STEREO = "aresample=48000,aformat=sample_rates=48000:channel_layouts=stereo"
WEB_LOUDNORM = "loudnorm=I=-16:TP=-1:LRA=11,aresample=48000"
AIR_LOUDNORM = "loudnorm=I=-23:TP=-1:LRA=15,aresample=48000"
XDCAM = ["-c:v", "mpeg2video", "-profile:v", "0", "-level:v", "2", "-pix_fmt", "yuv422p",
         "-b:v", "50000k", "-minrate", "50000k", "-maxrate", "50000k",
         "-bufsize", "17825792", "-rc_init_occupancy", "17825792",
         "-rc_max_vbv_use", "1", "-rc_min_vbv_use", "1",
         "-g", "12", "-bf", "2", "-sc_threshold", "1000000000", "-flags", "+ildct+ilme",
         "-alternate_scan", "1", "-intra_vlc", "1", "-non_linear_quant", "1", "-dc", "10",
         "-qmin", "1", "-qmax", "12", "-lmin", "118", "-seq_disp_ext", "1",
         "-video_format", "component", "-color_primaries", "bt709", "-color_trc", "bt709",
         "-colorspace", "bt709", "-color_range", "tv", "-aspect", "16:9",
         "-c:a", "pcm_s24le", "-ar", "48000", "-timecode", "10:00:00:00", "-f", "mxf"]
"""XDCAM HD422 1080i50 (25 fps, TFF set by ``setfield``), 50 Mb/s CBR: our graph's option set."""


def x264(gop: int, level: str | None) -> list[str]:
    """x264 as our graph sets it: veryfast, High, closed 2 s GOPs, our threads per encoder,
    BT.709 tags."""
    return ["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high",
            *(["-level:v", level] if level else []),
            "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-threads", str(X264_THREADS),
            "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709"]


POSTER = ["-frames:v", "1", "-q:v", "2", "-update", "1"]
SPRITE = "fps=1/2,scale=160:90:flags=lanczos,setsar=1,tile=10x10,format=yuvj420p"
"""The web preset's scrub thumbnails: 160x90 every 2 s, 10x10 per JPEG sheet."""
SPRITE_OUT = ["-q:v", "4", "-start_number", "0", "-fps_mode", "passthrough", "-f", "image2"]


def logo_chain(label: str, width: int, opacity: float) -> str:
    """The station logo scaled to ``width`` and made ``opacity`` transparent."""
    return f"scale={width}:-1:flags=lanczos,format=rgba,colorchannelmixer=aa={opacity}[{label}]"


WEB_LOGO = {1920: (192, "x=W-w-48:y=H-h-27"), 1280: (128, "x=W-w-32:y=H-h-18")}
"""Web logo (bottom-right, 10 % of the width, margin 2.5 %) per frame width."""
AIR_LOGO = (230, "x=W-w-96:y=54")
"""Broadcast logo at 1920x1080 (top-right, 12 % of the width, margin 5 %)."""


def hls_options(folder: Path) -> list[str]:
    """ffmpeg's own fMP4 HLS: 6 s segments of three 2 s GOPs, a master, one audio group."""
    rates = []
    for index, (_name, _w, height, bitrate, maxrate) in enumerate(HLS_RUNGS):
        rates += [f"-b:v:{index}", f"{bitrate}k", f"-maxrate:v:{index}", f"{maxrate}k",
                  f"-bufsize:v:{index}", f"{maxrate * 2}k",
                  f"-level:v:{index}", "4.1" if height > 720 else "3.1"]
    streams = " ".join(["a:0,agroup:aud,name:audio",
                        *(f"v:{i},agroup:aud,name:{rung[0]}" for i, rung in enumerate(HLS_RUNGS))])
    return [*x264(60, None), *rates, *AAC, *CLEAN,
            "-f", "hls", "-hls_time", "6", "-hls_playlist_type", "vod",
            "-hls_segment_type", "fmp4", "-hls_flags", "independent_segments",
            "-master_pl_name", "master.m3u8", "-var_stream_map", streams,
            "-hls_segment_filename", str(folder / "%v" / "seg_%03d.m4s"), str(folder / "%v" / "index.m3u8")]


def make_hls_folder(folder: Path) -> None:
    for name in ("audio", *(rung[0] for rung in HLS_RUNGS)):
        (folder / name).mkdir(parents=True, exist_ok=True)


def single_command(src: Path, out: Path, poster_at: float) -> list[str]:
    """(a) ONE ffmpeg command for every output, written by hand without our sharing tricks."""
    make_hls_folder(out / "hls")
    logo_w, place_w = WEB_LOGO[1920]
    logo_a, place_a = AIR_LOGO
    graph = ";".join([
        "[0:v]split=3[web][air][stills]",
        "[1:v]split=2[logo_web][logo_air]",
        # web: natural rate, logo once at 1080, then one branch per output
        f"[web]fps={WEB_RATE},scale=1920:1080:flags=lanczos,setsar=1[web1080]",
        "[logo_web]" + logo_chain("lw", logo_w, 0.8),
        f"[web1080][lw]overlay={place_w}:format=auto,split=6[w1][w2][w3][w4][w5][w6]",
        "[w1]format=yuv420p[mp4_1080]",
        "[w2]scale=1280:720:flags=lanczos,format=yuv420p[mp4_720]",
        "[w3]format=yuv420p[hls_1080]",
        "[w4]scale=1280:720:flags=lanczos,format=yuv420p[hls_720]",
        "[w5]scale=854:480:flags=lanczos,format=yuv420p[hls_480]",
        "[w6]scale=640:360:flags=lanczos,format=yuv420p[hls_360]",
        # stills, without the logo (as ours): poster at 10 %, thumbnail sprite
        "[stills]split=2[st1][st2]",
        f"[st1]trim=start={poster_at:.3f}:duration=0.2,setpts=PTS-STARTPTS,"
        "scale=1280:720:flags=lanczos,setsar=1,format=yuvj420p[poster]",
        f"[st2]{SPRITE}[sprite]",
        # broadcast: 25 fps, logo once, XDCAM and proxy
        "[air]fps=25,scale=1920:1080:flags=lanczos,setsar=1[air1080]",
        "[logo_air]" + logo_chain("la", logo_a, 0.9),
        f"[air1080][la]overlay={place_a}:format=auto,split=2[b1][b2]",
        "[b1]setfield=tff,format=yuv422p[xdcam]",
        "[b2]format=yuv420p[proxy]",
        # sound: 48 kHz stereo once, single-pass loudnorm per preset
        f"[0:a]{STEREO},asplit=2[snd_web][snd_air]",
        f"[snd_web]{WEB_LOUDNORM},asplit=3[aw1][aw2][aw3]",
        f"[snd_air]{AIR_LOUDNORM},asplit=3[ab1][ab2][ab3]",
        "[ab1]channelsplit=channel_layout=stereo[ch1][ch2]",
        "[ab2]channelsplit=channel_layout=stereo[ch3][ch4]",
    ])
    return [
        binary("ffmpeg"), *FF, "-i", str(src), "-i", str(LOGO), "-filter_complex", graph,
        "-map", "[mp4_1080]", "-map", "[aw1]", *x264(60, "4.1"), "-b:v", "5000k",
        "-maxrate", "5500k", "-bufsize", "11000k", *AAC, *CLEAN, "-movflags", "+faststart",
        str(out / "web-1080.mp4"),
        "-map", "[mp4_720]", "-map", "[aw2]", *x264(60, "3.1"), "-b:v", "2800k",
        "-maxrate", "3000k", "-bufsize", "6000k", *AAC, *CLEAN, "-movflags", "+faststart",
        str(out / "web-720.mp4"),
        "-map", "[aw3]", "-map", "[hls_1080]", "-map", "[hls_720]", "-map", "[hls_480]",
        "-map", "[hls_360]", *hls_options(out / "hls"),
        "-map", "[poster]", *POSTER, *CLEAN, str(out / "poster.jpg"),
        "-map", "[sprite]", *SPRITE_OUT, *CLEAN, str(out / "sprite-%03d.jpg"),
        "-map", "[xdcam]", "-map", "[ch1]", "-map", "[ch2]", "-map", "[ch3]", "-map", "[ch4]",
        *XDCAM, *CLEAN, str(out / "xdcam.mxf"),
        "-map", "[proxy]", "-map", "[ab3]", *x264(50, "4.1"), "-crf", "23",
        "-maxrate", "8000k", "-bufsize", "16000k", *AAC, *CLEAN, "-movflags", "+faststart",
        str(out / "proxy.mp4"),
    ]


def _one(src: Path, graph: str, maps: list[str], options: list[str], target: Path) -> list[str]:
    return [binary("ffmpeg"), *FF, "-i", str(src), "-i", str(LOGO), "-filter_complex", graph,
            *[arg for label in maps for arg in ("-map", f"[{label}]")], *options, str(target)]


def _web_picture(width: int, height: int) -> str:
    """Source to a web frame with the logo sized for it: ``[0:v]...[pic]``."""
    logo, place = WEB_LOGO[width]
    return (f"[0:v]fps={WEB_RATE},scale={width}:{height}:flags=lanczos,setsar=1[base];"
            f"[1:v]{logo_chain('logo', logo, 0.8)};[base][logo]overlay={place}:format=auto[pic]")


def _air_picture() -> str:
    logo, place = AIR_LOGO
    return ("[0:v]fps=25,scale=1920:1080:flags=lanczos,setsar=1[base];"
            f"[1:v]{logo_chain('logo', logo, 0.9)};[base][logo]overlay={place}:format=auto[pic]")


def per_output_commands(src: Path, out: Path, poster_at: float) -> list[tuple[str, list[str]]]:
    """(b) one ffmpeg process per output, each decoding the source again."""
    make_hls_folder(out / "hls")
    web_sound = f"[0:a]{STEREO},{WEB_LOUDNORM}[snd]"
    air_sound = f"[0:a]{STEREO},{AIR_LOUDNORM}[snd]"
    scales = "".join(f"[h{i}]scale={w}:{h}:flags=lanczos,format=yuv420p[v{i}];"
                     for i, (_n, w, h, _b, _m) in enumerate(HLS_RUNGS))
    splits = "".join(f"[h{i}]" for i in range(len(HLS_RUNGS)))
    return [
        ("mp4-1080", _one(src, f"{_web_picture(1920, 1080)};[pic]format=yuv420p[v];{web_sound}",
                          ["v", "snd"], [*x264(60, "4.1"), "-b:v", "5000k", "-maxrate", "5500k",
                                         "-bufsize", "11000k", *AAC, *CLEAN, "-movflags", "+faststart"],
                          out / "web-1080.mp4")),
        ("mp4-720", _one(src, f"{_web_picture(1280, 720)};[pic]format=yuv420p[v];{web_sound}",
                         ["v", "snd"], [*x264(60, "3.1"), "-b:v", "2800k", "-maxrate", "3000k",
                                        "-bufsize", "6000k", *AAC, *CLEAN, "-movflags", "+faststart"],
                         out / "web-720.mp4")),
        ("hls", [binary("ffmpeg"), *FF, "-i", str(src), "-i", str(LOGO), "-filter_complex",
                 f"{_web_picture(1920, 1080)};[pic]split={len(HLS_RUNGS)}{splits};{scales}{web_sound}",
                 "-map", "[snd]", *[arg for i in range(len(HLS_RUNGS)) for arg in ("-map", f"[v{i}]")],
                 *hls_options(out / "hls")]),
        ("poster", [binary("ffmpeg"), *FF, "-ss", f"{poster_at:.3f}", "-i", str(src),
                    "-vf", "scale=1280:720:flags=lanczos,setsar=1,format=yuvj420p", *POSTER, *CLEAN,
                    str(out / "poster.jpg")]),
        ("sprite", [binary("ffmpeg"), *FF, "-i", str(src), "-vf", SPRITE, *SPRITE_OUT, *CLEAN,
                    str(out / "sprite-%03d.jpg")]),
        ("xdcam", _one(src, f"{_air_picture()};[pic]setfield=tff,format=yuv422p[v];{air_sound};"
                            "[snd]asplit=2[s1][s2];[s1]channelsplit=channel_layout=stereo[c1][c2];"
                            "[s2]channelsplit=channel_layout=stereo[c3][c4]",
                       ["v", "c1", "c2", "c3", "c4"], [*XDCAM, *CLEAN], out / "xdcam.mxf")),
        ("proxy", _one(src, f"{_air_picture()};[pic]format=yuv420p[v];{air_sound}", ["v", "snd"],
                       [*x264(50, "4.1"), "-crf", "23", "-maxrate", "8000k", "-bufsize", "16000k",
                        *AAC, *CLEAN, "-movflags", "+faststart"], out / "proxy.mp4")),
    ]


def xdcam_drift() -> list[str]:
    """Options where the hand-written XDCAM flags differ from our graph's ``XDCAM_VIDEO``."""
    written = dict(zip(XDCAM[::2], XDCAM[1::2], strict=True))
    return [f"-{key}: ours {value}, hand-written {written.get(f'-{key}')}"
            for key, value in XDCAM_VIDEO.items() if written.get(f"-{key}") != str(value)]


ASSUMED: dict[tuple[str, str], dict[str, Any]] = {
    ("web", "mp4-1080"): {"width": 1920, "height": 1080, "from_rung": "1080p", "x264_preset": "veryfast",
                          "profile": "high", "audio_bitrate": 128},
    ("web", "mp4-720"): {"width": 1280, "height": 720, "from_rung": "720p", "x264_preset": "veryfast",
                         "profile": "high", "audio_bitrate": 128},
    ("web", "hls"): {"segment_seconds": 6.0, "x264_preset": "veryfast", "audio_bitrate": 128,
                     "rungs": [{"name": n, "width": w, "height": h, "bitrate": b, "maxrate": m}
                               for n, w, h, b, m in HLS_RUNGS]},
    ("web", "poster"): {"width": 1280, "at": 0.1},
    ("web", "sprite"): {"interval": 2.0, "width": 160, "columns": 10, "rows": 10},
    ("web", "captions"): {"type": "webvtt"},
    ("broadcast", "xdcam-hd422"): {"bitrate": 50, "audio_tracks": 4, "timecode": "10:00:00:00"},
    ("broadcast", "proxy-1080p25"): {"width": 1920, "height": 1080, "crf": 23, "maxrate": 8000,
                                     "from_rung": None, "x264_preset": "veryfast", "profile": "high",
                                     "level": "4.1", "audio_bitrate": 128},
}
"""What the hand-written commands assume about each preset output (a subset of its fields)."""
ASSUMED_VIDEO = {
    "web": {"frame": "fit", "frame_rate": "natural", "max_fps": 30.0, "gop_seconds": 2.0,
            "loudness": {"integrated": -16.0, "true_peak": -1.0, "lra": 11.0}},
    "broadcast": {"frame": "fill", "frame_rate": "pal-interlaced", "gop_seconds": 2.0,
                  "loudness": {"integrated": -23.0, "true_peak": -1.0, "lra": 15.0}},
}
ASSUMED_LOGO = {"web": {"position": "bottom-right", "width": 0.10, "opacity": 0.80, "margin": 0.025},
                "broadcast": {"position": "top-right", "width": 0.12, "opacity": 0.90, "margin": 0.05}}


def baseline_drift() -> list[str]:
    """Where our presets or graph no longer match what (a) and (b) were written for: the
    benchmark refuses to compare different work."""
    from pipeline.model.presets import load_presets

    presets = load_presets()
    problems = xdcam_drift()
    for name in PRESETS:
        preset = presets[name]
        if preset.video is None:
            problems.append(f"{name}: no video section")
            continue
        outputs = {out.name: out.model_dump(mode="json") for out in preset.video.outputs}
        spec = preset.video.model_dump(mode="json")
        logo = preset.logo.model_dump(mode="json") if preset.logo else {}
        mine = {output for preset_name, output in ASSUMED if preset_name == name}
        if set(outputs) != mine:
            problems.append(f"{name}: outputs {sorted(outputs)}, the baselines make {sorted(mine)}")
        checks = [(f"{name} {output}", outputs.get(output, {}), ASSUMED[(name, output)]) for output in mine]
        checks += [(f"{name} video", spec, ASSUMED_VIDEO[name]), (f"{name} logo", logo, ASSUMED_LOGO[name])]
        for label, actual, wanted in checks:
            problems += [f"{label} {key}: preset {actual.get(key)!r}, baselines {value!r}"
                         for key, value in wanted.items() if actual.get(key) != value]
    return problems


def baseline_files(out: Path) -> dict[str, Path]:
    """Where (a) and (b) write each rendition."""
    return {"web mp4-1080": out / "web-1080.mp4", "web mp4-720": out / "web-720.mp4",
            "web hls": out / "hls" / "master.m3u8", "web poster": out / "poster.jpg",
            "web sprite": out / "sprite-000.jpg",
            "broadcast xdcam-hd422": out / "xdcam.mxf", "broadcast proxy-1080p25": out / "proxy.mp4"}


# --- the child: one approach, timed ---------------------------------------------------------


def _cpu(before: resource.struct_rusage, after: resource.struct_rusage) -> float:
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


@dataclass
class Phases:
    """Wall and CPU (children included) per phase, counting only the outermost wrapped call."""

    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    events: list[tuple[str, float, float]] = field(default_factory=list)
    """(phase, start, end) on the ``perf_counter`` clock, to find time no phase accounts for."""
    depth: int = 0

    def add(self, name: str, wall: float, cpu: float) -> None:
        self.wall[name] = self.wall.get(name, 0.0) + wall
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self.depth:
                return function(*args, **kwargs)
            self.depth += 1
            kids = resource.getrusage(resource.RUSAGE_CHILDREN)
            me = resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.depth -= 1
                cpu = (_cpu(kids, resource.getrusage(resource.RUSAGE_CHILDREN))
                       + _cpu(me, resource.getrusage(resource.RUSAGE_SELF)))
                self.add(name, time.perf_counter() - started, cpu)
                self.events.append((name, started, time.perf_counter()))

        return timed


OUR_PHASES = (("probe + plan", None), ("loudness pass 1", "measure"), ("graph (argv)", "build_argv"),
              ("ffmpeg, one process", "run_ffmpeg"), ("poster + sprite runs", "run_capture"),
              ("remux MP4s from rungs", "_remux"), ("sprite index (+sha256)", "_sprite"),
              ("HLS packaging (+ebur128)", "_package"), ("output checks (ffprobe+ebur128)", "_facts"),
              ("sha256 of outputs", "file_sha256"))


def prepare_ours(source: Path, out: Path) -> tuple[Callable[[], dict[str, str]], Phases]:
    """The timed step for our pipeline (probe, plan, render), instrumented per phase."""
    from pipeline.ingest.info import AVInfo
    from pipeline.ingest.limits import Limits
    from pipeline.ingest.probe import probe
    from pipeline.model.embedded_text import EmbeddedText
    from pipeline.model.presets import load_presets
    from pipeline.plan.video import plan_video
    from pipeline.render.av import clip as video_module
    from pipeline.render.av import loudness
    from pipeline.render.av import outputs as outputs_module

    all_presets = load_presets()
    presets = [all_presets[name] for name in PRESETS]
    sha = hashlib.sha256(source.read_bytes()).hexdigest()   # the content hash is not render work
    phases = Phases()
    loudness.measure = phases.wrap("loudness pass 1", loudness.measure)
    for name, attribute in OUR_PHASES[2:]:
        assert attribute is not None
        module = outputs_module if attribute in ("_sprite", "_package", "_facts") else video_module
        setattr(module, attribute, phases.wrap(name, getattr(module, attribute)))

    def run() -> dict[str, str]:
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        me = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        info = probe(source, Limits())
        assert isinstance(info, AVInfo)
        plan = plan_video(info, sha, presets, EmbeddedText(language="vi"))
        phases.add("probe + plan", time.perf_counter() - started,
                   _cpu(kids, resource.getrusage(resource.RUSAGE_CHILDREN))
                   + _cpu(me, resource.getrusage(resource.RUSAGE_SELF)))
        phases.events.append(("probe + plan", started, time.perf_counter()))
        done = video_module.render_video(source, plan, out)
        files = {f"{r.plan.preset.split('@')[0]} {r.plan.name}": str(r.path) for r in done}
        for r in done:   # the sprite's file is its WebVTT index: check its first sheet
            if r.plan.spec.type == "sprite" and r.extras:
                files[f"{r.plan.preset.split('@')[0]} {r.plan.name}"] = str(r.extras[0][1])
        return files

    return run, phases


def measure_one(approach: str, source: Path, out: Path, poster_at: float) -> dict[str, Any]:
    """Child process body: time one approach end to end."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    phases: Phases | None = None
    steps: dict[str, float] = {}
    if approach == "ours":
        step, phases = prepare_ours(source, out)
    else:
        commands = ([("one command", single_command(source, out, poster_at))] if approach == "single"
                    else per_output_commands(source, out, poster_at))

        def step() -> dict[str, str]:
            for name, argv in commands:
                started = time.perf_counter()
                done = subprocess.run(argv, capture_output=True, text=True, check=False)
                steps[name] = time.perf_counter() - started
                if done.returncode != 0:
                    raise SystemExit(f"{approach} {name} failed:\n{done.stderr[-3000:]}")
            return {name: str(path) for name, path in baseline_files(out).items()}

    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    me = resource.getrusage(resource.RUSAGE_SELF)
    busy = machine_busy()
    started = time.perf_counter()
    files = step()
    wall = time.perf_counter() - started
    busy = machine_busy() - busy
    kids_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = _cpu(kids, kids_after) + _cpu(me, resource.getrusage(resource.RUSAGE_SELF))
    gap = ("", 0.0)
    if phases is not None:
        phases.add("other (Python)", wall - sum(phases.wall.values()), cpu - sum(phases.cpu.values()))
        steps = dict(phases.wall)
        marks = [("start", started, started), *sorted(phases.events, key=lambda e: e[1]),
                 ("end", started + wall, started + wall)]
        gap = max(((f"{before[0]} -> {after[0]}", after[1] - before[2])
                   for before, after in itertools.pairwise(marks)), key=lambda g: g[1])
    return {"wall": wall, "cpu": cpu, "peak_mb": kids_after.ru_maxrss / 1024, "others": max(0.0, busy - cpu),
            "files": files,
            "steps": steps, "step_cpu": dict(phases.cpu) if phases else {}, "gap": list(gap)}


# --- parent: schedule, verify, report ------------------------------------------------------


@dataclass
class Measurement:
    wall: float
    cpu: float
    peak_mb: float
    others: float
    """CPU-seconds the rest of the machine used meanwhile (other users' jobs): contention."""
    files: dict[str, str]
    steps: dict[str, float]
    step_cpu: dict[str, float]
    gap: list[Any]
    """Ours: the longest stretch between two instrumented phases (where, seconds)."""


def measure_in_subprocess(approach: str, source: Path, out: Path, poster_at: float) -> Measurement:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", approach, str(source),
               str(out), f"{poster_at:.3f}"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{approach} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return Measurement(**json.loads(done.stdout.strip().splitlines()[-1]))


def ffprobe(path: Path) -> dict[str, Any]:
    argv = [binary("ffprobe"), "-v", "error", "-print_format", "json", "-show_format",
            "-show_streams", str(path)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["ffprobe failed"])[-1]}
    data: dict[str, Any] = json.loads(done.stdout)
    return data


EXPECTED: dict[str, dict[str, Any]] = {
    "web mp4-1080": {"codec": "h264", "size": (1920, 1080), "fps": 29.97, "audio": ("aac", 1)},
    "web mp4-720": {"codec": "h264", "size": (1280, 720), "fps": 29.97, "audio": ("aac", 1)},
    "web hls": {"codec": "h264", "sizes": [(w, h) for _n, w, h, _b, _m in HLS_RUNGS], "fps": 29.97,
                "audio": ("aac", None)},
    "web poster": {"codec": "mjpeg", "size": (1280, 720)},
    "web sprite": {"codec": "mjpeg", "size": (1600, 900)},
    "broadcast xdcam-hd422": {"codec": "mpeg2video", "size": (1920, 1080), "fps": 25.0,
                              "field_order": "tt", "pix_fmt": "yuv422p", "audio": ("pcm_s24le", 4)},
    "broadcast proxy-1080p25": {"codec": "h264", "size": (1920, 1080), "fps": 25.0, "audio": ("aac", 1)},
}
LOUDNESS = {"web mp4-1080": -16.0, "broadcast xdcam-hd422": -23.0}


def _rate(text: str) -> float:
    num, _, den = text.partition("/")
    return float(num) / float(den or 1) if float(den or 1) else 0.0


def check(name: str, path: Path, duration: float) -> tuple[str, list[str]]:
    """A short description of one output file and its problems (empty: all as expected)."""
    want = EXPECTED[name]
    if not path.is_file() or path.stat().st_size == 0:
        return "missing", ["missing"]
    data = ffprobe(path)
    if "error" in data:
        return "unreadable", [f"ffprobe: {data['error']}"]
    streams = data.get("streams", [])
    videos = [s for s in streams if s.get("codec_type") == "video"]
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    problems = []
    sizes = [(int(v.get("width", 0)), int(v.get("height", 0))) for v in videos]
    if not videos or any(v.get("codec_name") != want["codec"] for v in videos):
        problems.append(f"video codec {[v.get('codec_name') for v in videos]}")
    if sorted(sizes) != sorted(want.get("sizes", [want.get("size")])):
        problems.append(f"sizes {sizes}")
    if "fps" in want and any(abs(_rate(v.get("r_frame_rate", "0/1")) - want["fps"]) > 0.02 for v in videos):
        problems.append(f"fps {[v.get('r_frame_rate') for v in videos]}")
    for key in ("field_order", "pix_fmt"):
        if key in want and any(v.get(key) != want[key] for v in videos):
            problems.append(f"{key} {[v.get(key) for v in videos]}")
    if "audio" in want:
        codec, count = want["audio"]
        if not audios or any(a.get("codec_name") != codec for a in audios) or (
                count is not None and len(audios) != count):
            problems.append(f"audio {[a.get('codec_name') for a in audios]}")
    length = float((data.get("format") or {}).get("duration") or 0)
    if want["codec"] != "mjpeg" and abs(length - duration) > 0.5:
        problems.append(f"duration {length:.2f} s")
    if name == "web hls":
        folder = path.parent
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        segments = sum(1 for _ in folder.rglob("*.m4s"))
        text = f"{len(videos)} rungs, {segments} segments, {size / MB:.1f} MB"
    else:
        fps = f" {_rate(videos[0].get('r_frame_rate', '0/1')):.2f}fps" if "fps" in want else ""
        text = f"{sizes[0][0]}x{sizes[0][1]}{fps} {path.stat().st_size / MB:.1f} MB"
    return text, problems


def verify(results: dict[str, Measurement], duration: float) -> tuple[list[str], bool]:
    from pipeline.render.av import loudness

    width = 34
    lines = [f"  {'rendition':<24}" + "".join(f" {LABELS[a]:<{width}}" for a in results)]
    failed = False
    for name in EXPECTED:
        cells = []
        for m in results.values():
            if name not in m.files:
                cells.append("FAIL not made")
                failed = True
                continue
            text, problems = check(name, Path(m.files[name]), duration)
            failed = failed or bool(problems)
            cells.append(text + (f"  FAIL {'; '.join(problems)}" if problems else ""))
        lines.append(f"  {name:<24}" + "".join(f" {cell:<{width}}" for cell in cells))
    for name, target in LOUDNESS.items():
        cells = []
        for m in results.values():
            path = Path(m.files.get(name, "/nonexistent"))
            if not path.is_file():
                cells.append("-")
                continue
            mxf = path.suffix == ".mxf"
            level = loudness.level(path, "mxf" if mxf else "mov", 120, mono_pair=mxf)
            bad = not math.isfinite(level.integrated) or abs(level.integrated - target) > 1.0
            failed = failed or bad
            cells.append(f"{level.integrated:.1f} LUFS {level.true_peak:.1f} dBTP"
                         + ("  FAIL" if bad else ""))
        lines.append(f"  {'loudness ' + name.split()[1]:<24}" + "".join(f" {c:<{width}}" for c in cells))
    return lines, failed


def _version() -> str:
    done = subprocess.run([binary("ffmpeg"), "-hide_banner", "-version"], capture_output=True, text=True,
                          check=False)
    return (done.stdout.splitlines() or ["ffmpeg ?"])[0]


def run_benchmark(seconds: float, runs: int, folder: Path) -> int:
    from pipeline.render.av import loudness

    drift = baseline_drift()
    if drift:
        raise SystemExit("the hand-written baselines no longer match our presets/graph; update"
                         " bench/video.py:\n  " + "\n  ".join(drift))
    source = folder / "source.mp4"
    print(f"generating a {seconds:g} s source in {source} ...", file=sys.stderr)
    make_source(source, seconds)
    facts = ffprobe(source)
    duration = float(facts["format"]["duration"])
    poster_at = round(duration * 0.1, 3)   # the web preset's poster: 10 % into the clip
    level = loudness.level(source, "mov", 120)
    results: dict[str, list[Measurement]] = {a: [] for a in APPROACHES}
    for round_no in range(runs):
        order = APPROACHES if round_no % 2 == 0 else tuple(reversed(APPROACHES))
        for approach in order:
            m = measure_in_subprocess(approach, source, folder / "out" / approach, poster_at)
            results[approach].append(m)
            print(f"run {round_no + 1}/{runs} {LABELS[approach]}: {m.wall:.1f} s wall, {m.cpu:.1f} CPU-s",
                  file=sys.stderr)

    video = next(s for s in facts["streams"] if s["codec_type"] == "video")
    print(f"{_version()}; {os.cpu_count()} CPUs; median of {runs} fresh process(es) per approach")
    print(f"source: {duration:.2f} s {video['width']}x{video['height']}"
          f" {_rate(video['r_frame_rate']):.2f} fps {video['codec_name']} {video.get('profile', '')},"
          f" {int(facts['format']['bit_rate']) / 1e6:.1f} Mb/s, AAC stereo at {level.integrated:.1f} LUFS")
    print("outputs: web MP4 1080p + 720p, HLS 1080/720/480/360, poster, thumbnail sprite; broadcast"
          " XDCAM HD422 MXF (4 PCM tracks) + 1080p25 proxy; logo on all but the stills")
    header = (f"{'approach':<18} {'wall s':>7} {'CPU s':>7} {'CPU/wall':>8} {'x realtime':>10}"
              f" {'peak RSS MB':>11} {'others CPU s':>12}  runs (wall s)")
    print()
    print(header)
    print("-" * len(header))
    wall = {a: statistics.median(m.wall for m in ms) for a, ms in results.items()}
    cpu = {a: statistics.median(m.cpu for m in ms) for a, ms in results.items()}
    for approach, ms in results.items():
        peak = statistics.median(m.peak_mb for m in ms)
        others = statistics.median(m.others for m in ms)
        print(f"{LABELS[approach]:<18} {wall[approach]:>7.1f} {cpu[approach]:>7.1f}"
              f" {cpu[approach] / wall[approach]:>8.2f} {duration / wall[approach]:>10.2f} {peak:>11.0f}"
              f" {others:>12.1f}  " + " ".join(f"{m.wall:.1f}" for m in ms))
    cpus = os.cpu_count() or 1
    busy = [m.others / (m.wall * cpus) for ms in results.values() for m in ms]
    if max(busy) > 0.05:
        print(f"WARNING: other processes used up to {max(busy):.0%} of the machine during a measurement"
              " ('others CPU s'): wall times are inflated; trust CPU seconds more, or rerun when idle")
    print()
    print("ratios (wall, CPU; below 1.00 the first is faster)")
    for a, b in (("ours", "single"), ("ours", "per-output"), ("single", "per-output")):
        pair = f"{LABELS[a]} / {LABELS[b]}"
        print(f"  {pair:<34} wall {wall[a] / wall[b]:.2f}   CPU {cpu[a] / cpu[b]:.2f}")
    print()
    print("ours, by phase (median wall s, CPU s incl. ffmpeg/ffprobe children):")
    names = [name for name, _attr in OUR_PHASES] + ["other (Python)"]
    for name in names:
        walls = [m.steps.get(name, 0.0) for m in results["ours"]]
        phase_cpu = [m.step_cpu.get(name, 0.0) for m in results["ours"]]
        print(f"  {name:<34} {statistics.median(walls):>7.2f} {statistics.median(phase_cpu):>7.2f}")
    where, longest = results["ours"][-1].gap
    if longest >= 0.05:
        print(f"  longest stretch no phase accounts for (last run): {longest:.2f} s, {where}")
    print("(b), by process (median wall s): " + ", ".join(
        f"{name} {statistics.median(m.steps[name] for m in results['per-output']):.1f}"
        for name in results["per-output"][0].steps))
    pass1 = statistics.median(m.steps.get("loudness pass 1", 0.0) for m in results["ours"])
    render = statistics.median(m.steps.get("ffmpeg, one process", 0.0) for m in results["ours"])
    print(f"ours' ffmpeg process alone vs (a): {render:.1f} s / {wall['single']:.1f} s ="
          f" {render / wall['single']:.2f}; (a) with a loudness pass 1 added (two-pass, as ours):"
          f" {wall['single'] + pass1:.1f} s, ours / that = {wall['ours'] / (wall['single'] + pass1):.2f}")
    print()
    print("Verification (last round; ffprobe read-back, not timed; (a)/(b) loudness is single-pass"
          " loudnorm, ours is two-pass linear):")
    lines, failed = verify({a: ms[-1] for a, ms in results.items()}, duration)
    print("\n".join(lines))
    print()
    print(f"overall: ours {wall['ours']:.1f} s, (a) {wall['single']:.1f} s, (b) {wall['per-output']:.1f} s"
          f"{'  (VERIFICATION FAILED)' if failed else ''}")
    print(f"ratio {wall['ours'] / wall['single']:.2f}")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the generated clip")
    parser.add_argument("--runs", type=int, default=1, help="fresh-process runs per approach")
    parser.add_argument("--keep", metavar="DIR", help="keep the source and outputs in DIR")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        approach, source, out, poster_at = args.child
        print(json.dumps(measure_one(approach, Path(source), Path(out), float(poster_at))))
        return 0
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.seconds < 5:
        parser.error("--seconds must be at least 5")
    with work_folder(args.keep, "video") as folder:
        return run_benchmark(args.seconds, args.runs, folder)


if __name__ == "__main__":
    sys.exit(main())
