"""Every ffmpeg and ffprobe command opens its inputs the one way: local files only, the demuxer we
chose, and for MOV/MP4 never an external data reference. Burned graphics are one input per picture
size, whatever the number of cues."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.ingest.avprobe import idet_argv
from pipeline.model.embedded_text import EmbeddedText
from pipeline.model.subtitles import LIMITS, Cue
from pipeline.plan.video import plan_video
from pipeline.render.av import loudness
from pipeline.render.av.clip import remux_argv
from pipeline.render.av.graph import GraphicsTrack, build_argv, concat_script, rung_target, still_argv
from pipeline.render.av.runner import ffprobe_argv, input_args, input_options
from pipeline.render.graphics.track import stretches
from tests.unit.test_video_plan import SHA, clip

SOURCE = Path("/media/in put.mov")


INPUT_OPTIONS = {"-f", "-protocol_whitelist", "-enable_drefs", "-safe", "-ss", "-skip_frame",
                 "-skip_loop_filter"}


def _opens(argv: list[str]) -> list[tuple[str, dict[str, str]]]:
    """(input, the input options just before its -i) for every input of a command line."""
    out = []
    for index, word in enumerate(argv):
        if word == "-i":
            before: dict[str, str] = {}
            back = index - 2
            while back >= 0 and argv[back] in INPUT_OPTIONS:
                before[argv[back]] = argv[back + 1]
                back -= 2
            out.append((argv[index + 1], before))
    return out


def _mov_opens_safely(argv: list[str], path: Path = SOURCE) -> None:
    options = dict(_opens(argv))["file:" + str(path)]
    assert options.items() >= {"-protocol_whitelist": "file", "-f": "mov", "-enable_drefs": "0"}.items(), argv


def test_one_function_gives_the_input_options() -> None:
    assert input_options("mov") == {"protocol_whitelist": "file", "f": "mov", "enable_drefs": "0"}
    assert input_options("mxf") == {"protocol_whitelist": "file", "f": "mxf"}
    assert input_args("mov", SOURCE) == ["-protocol_whitelist", "file", "-f", "mov", "-enable_drefs", "0",
                                         "-i", "file:/media/in put.mov"]


@pytest.mark.parametrize("make", [
    lambda: ffprobe_argv(SOURCE, "mov"),
    lambda: idet_argv(SOURCE, "mov"),
    lambda: loudness.measure_argv(SOURCE, "mov"),
    lambda: loudness.level_argv(SOURCE, "mov"),
    lambda: remux_argv(SOURCE, Path("/scratch/out.mp4")),
], ids=["ffprobe", "idet", "loudness-measure", "loudness-level", "remux"])
def test_every_analysis_command_refuses_external_references(make) -> None:
    _mov_opens_safely(make())


def test_the_render_graph_and_stills_refuse_external_references(presets) -> None:
    plan = plan_video(clip(), SHA, [presets["web"], presets["broadcast"]], EmbeddedText())
    targets = {o.key: Path(f"/scratch/{i}.out") for i, o in enumerate(plan.everything)}
    for o in plan.outputs:
        for r in o.rungs:
            targets[rung_target(o, r.name)] = Path(f"/scratch/{o.name}-{r.name}.mp4")
    _mov_opens_safely(build_argv(plan, SOURCE, targets, None))
    for still in (o for o in plan.outputs if o.spec.type in ("poster", "sprite")):
        _mov_opens_safely(still_argv(still, plan.info, SOURCE, Path("/scratch/still.jpg")))


def test_the_most_cues_allowed_make_one_graphics_input(presets) -> None:
    """2,000 cues were 2,000 chained overlays: ffmpeg-python's graph compile hit the recursion limit."""
    cues = tuple(Cue(i * 0.5, i * 0.5 + 0.4, f"Câu {i}") for i in range(LIMITS.max_cues))
    plan = plan_video(clip(duration=3000.0), SHA, [presets["social"]], EmbeddedText(), cues=cues)
    targets = {o.key: Path(f"/scratch/{i}.out") for i, o in enumerate(plan.everything)}
    frames = [frame for branch in plan.branches for frame, parent in branch.frame_tree().items()
              if parent is None and branch.subtitles]
    assert frames
    tracks = {("social@1", frame): GraphicsTrack(Path(f"/scratch/gfx-{n}.ffconcat"), 0, 900)
              for n, frame in enumerate(frames)}
    argv = build_argv(plan, SOURCE, targets, None, tracks)
    graphics = [(name, options) for name, options in _opens(argv) if name.endswith(".ffconcat")]
    assert len(graphics) == len(frames)
    assert all(options == {"-protocol_whitelist": "file", "-f": "concat", "-safe": "0"}
               for _name, options in graphics)
    graph = argv[argv.index("-filter_complex") + 1]
    assert graph.count("overlay=eof_action=repeat:format=auto:shortest=1:x=0:y=900") == len(frames)
    assert graph.count("overlay") < 10


def test_stretches_show_the_newest_cue_of_each_layer() -> None:
    strap = [(0.4, 1.6)]
    cues = [(1.0, 3.0), (2.0, 2.5), (2.5, 2.7), (5.0, 6.0), (9.0, 12.0)]
    assert stretches([strap, cues], until=10.0) == [
        (0.0, (None, None)), (0.4, (0, None)), (1.0, (0, 0)), (1.6, (None, 0)), (2.0, (None, 1)),
        (2.5, (None, 2)), (2.7, (None, 0)), (3.0, (None, None)), (5.0, (None, 3)), (6.0, (None, None)),
        (9.0, (None, 4))]


def test_stretches_are_to_the_millisecond_and_take_the_most_cues() -> None:
    assert stretches([[(0.0004, 0.0006), (0.0011, 1.00049)]], until=5.0) == [(0.0, (0,)), (0.001, (1,)),
                                                                          (1.0, (None,))]
    assert stretches([[(1.0, 1.0004)]], until=5.0) == [(0.0, (None,))]   # shorter than a millisecond
    many = [(i * 0.001, 15.0 - i * 0.001) for i in range(LIMITS.max_cues)]   # nested: all end late
    timeline = stretches([many], until=20.0)
    assert len(timeline) == 2 * LIMITS.max_cues
    assert timeline[LIMITS.max_cues - 1][1] == (LIMITS.max_cues - 1,)
    assert timeline[LIMITS.max_cues][1] == (LIMITS.max_cues - 2,)


def test_concat_script_quotes_names_and_reads_images_at_a_millisecond_time_base() -> None:
    text = concat_script([("blank.png", 0.4), ("gfx-web@1-0001.png", 1.2), ("it's.png", None)])
    assert text == ("ffconcat version 1.0\n"
                    "file 'blank.png'\noption framerate 1000\nduration 0.400\n"
                    "file 'gfx-web@1-0001.png'\noption framerate 1000\nduration 1.200\n"
                    "file 'it'\\''s.png'\noption framerate 1000\n")


def test_the_track_is_strips_of_what_is_shown_and_outlasts_the_clip(tmp_path: Path) -> None:
    from PIL import Image

    from pipeline.render.graphics.text import Graphic
    from pipeline.render.graphics.track import Timed, write_track

    strap = Graphic(Image.new("RGBA", (20, 10), (255, 0, 0, 255)), 5, 50)
    cue = Graphic(Image.new("RGBA", (30, 8), (0, 0, 255, 200)), 10, 35)     # reaches above the strip: clipped
    track = write_track(tmp_path, "gfx", (100, 80), 40, [[Timed(0.5, 2.0, lambda: strap)],
                                                         [Timed(1.0, 3.0, lambda: cue)]], until=5.0)
    assert track == GraphicsTrack(tmp_path / "gfx.ffconcat", 0, 40)
    script = track.script.read_text().split("\n")
    files = [line.split("'")[1] for line in script if line.startswith("file")]
    durations = [line.split()[1] for line in script if line.startswith("duration")]
    assert files == ["gfx-blank.png", "gfx-00001.png", "gfx-00002.png", "gfx-00003.png", "gfx-blank.png",
                     "gfx-blank.png"]
    assert durations == ["0.500", "0.500", "1.000", "1.000", "3602.000"]   # the last image: past the end
    with Image.open(tmp_path / "gfx-00002.png") as both:
        assert both.size == (100, 40)
        assert both.getpixel((6, 11)) == (255, 0, 0, 255)      # the strap, under
        assert both.getpixel((11, 1)) == (0, 0, 255, 200)      # the cue, its top rows cut at the strip
    assert write_track(tmp_path, "none", (100, 80), 40, [[Timed(6.0, 7.0, lambda: cue)]], until=5.0) is None
