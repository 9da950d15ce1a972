"""Turn a :class:`VideoPlan` into ONE ffmpeg command line (pure: builds argv, runs nothing).

This is the only module that imports ffmpeg-python (unmaintained since 2019; kept replaceable
here). The graph decodes the source once; each preset branch conforms the frame rate and fields
once; each frame size is built once with its graphics (logo) and smaller sizes of the same
shape are scaled from it; audio is downmixed to 48 kHz stereo once and normalised per preset.
What each kind of output adds (its last filters, encoder options, audio tracks) is its step in
:mod:`pipeline.render.av.outputs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import ffmpeg as fp

from pipeline.ingest.info import AVInfo
from pipeline.model.presets import LogoSpec, Loudness
from pipeline.plan.audio import AudioPlan
from pipeline.plan.frames import Frame, even
from pipeline.plan.video import BranchPlan, OutputPlan, VideoPlan
from pipeline.render.av.loudness import Measured, normalise
from pipeline.render.av.outputs import AUDIO_STEPS, CLIP_STEPS, Stream, rate_arg, rung_target
from pipeline.render.av.runner import GLOBAL_ARGS, binary, input_options


def _split(stream: Stream, count: int, audio: bool = False) -> list[Stream]:
    if count <= 1:
        return [stream] * count
    node = stream.filter_multi_output("asplit" if audio else "split", count)
    return [node[i] for i in range(count)]


def _logo(logo_stream: Stream, spec: LogoSpec, frame: Frame, base: Stream) -> Stream:
    width = even(frame.width * spec.width)
    margin_x, margin_y = round(frame.width * spec.margin), round(frame.height * spec.margin)
    x = str(margin_x) if spec.position.endswith("left") else f"W-w-{margin_x}"
    y = str(margin_y) if spec.position.startswith("top") else f"H-h-{margin_y}"
    mark = (logo_stream.filter("scale", width, -1, flags="lanczos").filter("format", "rgba")
            .filter("colorchannelmixer", aa=spec.opacity))
    return fp.overlay(base, mark, x=x, y=y, eof_action="repeat", format="auto")


def _geometry(stream: Stream, frame: Frame, interlaced: bool) -> Stream:
    if frame.geometry == "scale":
        scaled = stream.filter("scale", frame.width, frame.height, flags="lanczos",
                               interl=1 if interlaced else 0)
        return scaled.filter("setsar", 1)
    back, front = _split(stream, 2)
    small = (even(frame.width / 4), even(frame.height / 4))
    back = (back.filter("scale", small[0], small[1], force_original_aspect_ratio="increase")
            .filter("crop", small[0], small[1]).filter("boxblur", 8, 2)
            .filter("scale", frame.width, frame.height).filter("eq", brightness=-0.08))
    front = front.filter("scale", frame.inner[0], frame.inner[1], flags="lanczos",
                         interl=1 if interlaced else 0)
    return fp.overlay(back, front, x="(W-w)/2", y="(H-h)/2").filter("setsar", 1)


Consumer = tuple[OutputPlan, str | None]
"""Who takes a picture from a branch: an output, or one rung (by name) of an HLS output."""


def consumers(branch: BranchPlan) -> list[tuple[Consumer, Frame]]:
    out: list[tuple[Consumer, Frame]] = []
    for plan in branch.outputs:
        if plan.rungs:
            out += [((plan, rung.name), rung.frame) for rung in plan.rungs]
        elif plan.encoded:
            out.append(((plan, None), plan.frame))
    return out


@dataclass(frozen=True)
class GraphicsTrack:
    """The graphics burned into one picture size (lower third, subtitles) as one timed image
    track: an ffconcat script of equal-sized RGBA images (see :mod:`pipeline.render.graphics.track`),
    laid over the picture with its top-left corner at (x, y)."""

    script: Path
    x: int
    y: int


def concat_script(entries: Sequence[tuple[str, float | None]]) -> str:
    """An ffconcat script showing each image (a file name next to the script) for its duration
    in seconds (the last one has none). Every image is read at 1000 frames a second: the track then
    has a millisecond time base, and graphics change on the very frame they should."""
    lines = ["ffconcat version 1.0"]
    for name, duration in entries:
        lines += ["file '" + name.replace("'", "'\\''") + "'", "option framerate 1000"]
        if duration is not None:
            lines.append(f"duration {duration:.3f}")
    return "\n".join(lines) + "\n"


def _overlay_track(base: Stream, track: GraphicsTrack) -> Stream:
    images = fp.input("file:" + str(track.script), **input_options("concat")).video
    return fp.overlay(base, images, x=track.x, y=track.y, eof_action="repeat", format="auto", shortest=1)


def _frames(branch: BranchPlan, stream: Stream, logo: Stream | None, interlaced: bool,
            overlays: dict[Frame, GraphicsTrack]) -> dict[Consumer, Stream]:
    """One video stream per consumer: each root picture built once from the source with its
    graphics (logo, lower third, subtitles); smaller same-shape pictures scaled from it."""
    tree = branch.frame_tree()
    wanted = consumers(branch)
    users = {f: [c for c, frame in wanted if frame == f] for f in tree}
    children = {f: [c for c in tree if tree[c] == f] for f in tree}
    roots = [f for f in tree if tree[f] is None]
    root_streams = _split(stream, len(roots))
    logos = _split(logo, len(roots)) if logo is not None else [None] * len(roots)
    out: dict[Consumer, Stream] = {}

    def build(frame: Frame, source: Stream, mark: Stream | None, root: bool) -> None:
        if root:
            made = _geometry(source, frame, interlaced)
            if mark is not None and branch.logo is not None:
                made = _logo(mark, branch.logo, frame, made)
            track = overlays.get(frame)
            if track is not None:
                made = _overlay_track(made, track)
        else:
            made = source.filter("scale", frame.width, frame.height, flags="lanczos",
                                 interl=1 if interlaced else 0)
        copies = _split(made, len(users[frame]) + len(children[frame]))
        for consumer, copy in zip(users[frame], copies, strict=False):
            out[consumer] = copy
        for child, copy in zip(children[frame], copies[len(users[frame]):], strict=True):
            build(child, copy, None, root=False)

    for frame, source, mark in zip(roots, root_streams, logos, strict=True):
        build(frame, source, mark, root=True)
    return out


CLEAN = {"map_metadata": -1, "map_chapters": -1}
"""Outputs inherit nothing from the source's metadata: no GPS ``location`` tag from a phone, no
device names, no timecode track that was not asked for."""


def _output(plan: OutputPlan, branch: BranchPlan, picture: Stream, sound: Stream | None,
            rung: str | None, target: Path) -> Stream:
    """One graph-fed output: its picture finished, its audio tracks, its encoder options."""
    step = CLIP_STEPS[plan.spec.type]
    assert step.picture is not None
    assert step.options is not None
    streams: list[Stream] = [step.picture(picture, plan, branch)]
    if sound is not None:
        streams += step.sound(sound, plan)
    args = {**CLEAN, **step.options(plan, branch.gop_seconds, rung)}
    return fp.output(*streams, str(target), **args)


def build_argv(plan: VideoPlan, source: Path, targets: dict[str, Path], measured: Measured | None,
               overlays: dict[tuple[str, Frame], GraphicsTrack] | None = None) -> list[str]:
    """The ffmpeg command for every output of ``plan``; ``targets`` maps output keys to files."""
    info = plan.info
    video = info.video
    src = fp.input("file:" + str(source), **input_options(info.demuxer))
    branches = [b for b in plan.branches if consumers(b)] if video is not None else []
    video_streams = _split(src.video, len(branches))
    audio_users = [b for b in branches if any(c.has_audio for (c, _rung), _f in consumers(b))]
    radio = {target: [a for a in plan.audio if a.spec.loudness == target]
             for target in dict.fromkeys(a.spec.loudness for a in plan.audio)}
    programme: list[Stream] = []
    if info.audio is not None and (audio_users or radio):
        sound = src.audio.filter("aresample", 48000).filter(
            "aformat", sample_rates=48000, channel_layouts="stereo")
        if video is not None:   # the picture sets the programme length: pad or cut the sound to it
            length = f"{video.duration:.3f}"
            sound = sound.filter("apad", whole_dur=length).filter("atrim", end=length)
        programme = _split(sound, len(audio_users) + len(radio), audio=True)
    outputs = _audio_outputs(radio, programme[len(audio_users):], measured, targets)
    if video is None:
        return _compile(outputs)
    logo_files = sorted({b.logo_file for b in branches if b.logo_file})
    logo_inputs = {f: fp.input("file:" + f, **input_options("image2")) for f in logo_files}
    logo_uses = {f: sum(1 for b in branches if b.logo_file == f) for f in logo_files}
    logo_streams = {f: iter(_split(logo_inputs[f].video, logo_uses[f])) for f in logo_files}

    for index, branch in enumerate(branches):
        stream = video_streams[index]
        if branch.deinterlace:
            stream = stream.filter("bwdif", mode="send_field")
        stream = stream.filter("fps", rate_arg(branch.rate))
        logo = next(logo_streams[branch.logo_file]) if branch.logo_file else None
        mine = {frame: track for (preset, frame), track in (overlays or {}).items()
                if preset == branch.preset}
        pictures = _frames(branch, stream, logo, branch.fields == "keep", mine)
        takers = [c for c, _frame in consumers(branch) if c[0].has_audio]
        audio: list[Stream] = []
        if takers:
            if programme:
                branch_audio = programme[audio_users.index(branch)]
                if branch.loudness is not None:
                    branch_audio = _normalised(branch_audio, branch.loudness, measured)
            else:
                branch_audio = fp.input(f"anullsrc=r=48000:cl=stereo:d={video.duration:.3f}",
                                        f="lavfi").audio if any(
                    CLIP_STEPS[c[0].spec.type].silence_if_mute for c in takers) else None
            if branch_audio is not None:
                audio = _split(branch_audio, len(takers), audio=True)
        audio_for = dict(zip(takers, audio, strict=False))
        for consumer, picture in pictures.items():
            plan_out, rung = consumer
            target = targets[rung_target(plan_out, rung) if rung else plan_out.key]
            outputs.append(_output(plan_out, branch, picture, audio_for.get(consumer), rung, target))
    return _compile(outputs)


def _normalised(sound: Stream, target: Loudness, measured: Measured | None) -> Stream:
    for name, args in normalise(target, measured):
        sound = sound.filter(name, **args)
    return sound


def _compile(outputs: list[Stream]) -> list[str]:
    command = [binary("ffmpeg"), *GLOBAL_ARGS, "-progress", "pipe:1", "-nostats"]
    compiled: Sequence[str] = fp.merge_outputs(*outputs).compile(cmd=command)
    return list(compiled)


def _audio_outputs(radio: dict[Loudness, list[AudioPlan]], sources: list[Stream],
                   measured: Measured | None, targets: dict[str, Path]) -> list[Stream]:
    """Audio-only renditions: one loudness pass per target, shared by the formats wanting it."""
    outputs = []
    for (target, plans), sound in zip(radio.items(), sources, strict=True):
        normalised = _normalised(sound, target, measured)
        for plan, copy in zip(plans, _split(normalised, len(plans), audio=True), strict=True):
            step = AUDIO_STEPS[plan.spec.type]
            args = {**CLEAN, **step.options, "ac": 2, "ar": 48000}
            if step.bitrate:
                args["b:a"] = f"{plan.spec.bitrate}k"
            outputs.append(fp.output(copy, str(targets[plan.key]), **args))
    return outputs


def still_argv(plan: OutputPlan, info: AVInfo, source: Path, target: Path) -> list[str]:
    """A still taken straight from the source (a poster, thumbnail sheets) in a quick run of its
    own: its kind's input options, the source's fields undone, the size, then its kind's filters."""
    still = CLIP_STEPS[plan.spec.type].still
    assert still is not None
    video = info.video
    assert video is not None
    before: dict[str, object] = {**input_options(info.demuxer), **still.seek(plan)}
    stream = fp.input("file:" + str(source), **before).video
    if video.interlaced:
        stream = stream.filter("bwdif", mode="send_frame")
    stream = stream.filter("scale", plan.frame.width, plan.frame.height, flags="lanczos").filter("setsar", 1)
    stream, options = still.finish(stream, plan)
    args: dict[str, object] = {**CLEAN, "f": "image2", **options}
    command = [binary("ffmpeg"), *GLOBAL_ARGS]
    return list(fp.output(stream, str(target), **args).compile(cmd=command))
