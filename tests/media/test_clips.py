"""Clips through the web and broadcast presets, checked independently with ffprobe and ebur128."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from pipeline.errors import ProbeError, UnsupportedMedia
from pipeline.ingest.avprobe import probe_av
from pipeline.ingest.limits import Limits
from pipeline.ingest.probe import probe
from pipeline.ingest.sniff import sniff
from pipeline.model.embedded_text import EmbeddedText
from pipeline.plan.video import plan_video
from pipeline.render.av.clip import render_video
from pipeline.render.av.runner import input_args
from tests import clips

pytestmark = pytest.mark.media

MAKERS = {
    "phone.mp4": clips.phone_clip,
    "vertical-60fps.mov": clips.vertical_60fps,
    "interlaced-1080i50.mxf": clips.interlaced_mxf,
    "hevc-10bit.mp4": clips.hevc_10bit,
    "no-audio.mp4": clips.no_audio,
    "surround-5.1.mp4": clips.surround,
    "vfr.mp4": clips.variable_rate,
}


def ffprobe(path: Path) -> dict:
    done = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                           "-show_streams", str(path)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def ebur128(path: Path, mono_pair: bool = False) -> tuple[float, float]:
    graph = (["-filter_complex", "[0:a:0][0:a:1]join=inputs=2:channel_layout=stereo,ebur128=peak=true"]
             if mono_pair else ["-map", "0:a:0", "-af", "ebur128=peak=true"])
    done = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-i", str(path), *graph, "-f", "null", "-"],
                          capture_output=True, text=True, check=True)
    summary = done.stderr[done.stderr.rfind("Summary:"):]
    integrated = float(summary.split("I:")[1].split("LUFS")[0])
    peak = float(summary.split("Peak:")[1].split("dBFS")[0])
    return integrated, peak


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, presets):
    """Every test clip rendered once through web + broadcast: {clip: {output name: path}}."""
    root = tmp_path_factory.mktemp("clips")
    out = {}
    for name, make in MAKERS.items():
        source = make(root / name)
        info = probe(source, Limits())
        plan = plan_video(info, "cd" * 32, [presets["web"], presets["broadcast"]], EmbeddedText())
        scratch = root / f"out-{name}"
        scratch.mkdir()
        done = render_video(source, plan, scratch)
        out[name] = {"source": source, "info": info,
                     **{r.plan.name: r for r in done}}
    return out


def video_stream(data: dict) -> dict:
    return next(s for s in data["streams"] if s["codec_type"] == "video")


def audio_streams(data: dict) -> list[dict]:
    return [s for s in data["streams"] if s["codec_type"] == "audio"]


def duration_of(data: dict) -> float:
    stream = video_stream(data)
    return float(stream.get("duration") or data["format"]["duration"])


@pytest.mark.parametrize("clip", list(MAKERS))
def test_xdcam_is_1080i50_tff_422_with_four_pcm_tracks_at_minus_23(rendered, clip: str) -> None:
    result = rendered[clip]["xdcam-hd422"]
    data = ffprobe(result.path)
    assert data["format"]["format_name"] == "mxf"
    video = video_stream(data)
    assert (video["codec_name"], video["pix_fmt"], video["width"], video["height"]) == (
        "mpeg2video", "yuv422p", 1920, 1080)
    assert video["field_order"] == "tt"
    assert Fraction(video["r_frame_rate"]) == 25
    tracks = audio_streams(data)
    assert len(tracks) == 4
    assert all((t["codec_name"], t["channels"], int(t["sample_rate"])) == ("pcm_s24le", 1, 48000)
               for t in tracks)
    assert abs(duration_of(data) - rendered[clip]["info"].video.duration) <= 1 / 25 + 0.021
    if rendered[clip]["info"].audio is not None:
        integrated, peak = ebur128(result.path, mono_pair=True)
        assert integrated == pytest.approx(-23, abs=1)
        assert peak <= -1.0
        assert result.facts["loudness"]["integrated"] == pytest.approx(integrated, abs=0.2)


@pytest.mark.parametrize("clip", list(MAKERS))
def test_web_mp4_is_h264_yuv420p_faststart_at_minus_16(rendered, clip: str) -> None:
    info = rendered[clip]["info"]
    for name in ("mp4-1080", "mp4-720"):
        result = rendered[clip][name]
        data = ffprobe(result.path)
        video = video_stream(data)
        assert (video["codec_name"], video["profile"], video["pix_fmt"]) == ("h264", "High", "yuv420p")
        assert video["field_order"] == "progressive"
        assert video["r_frame_rate"] == video["avg_frame_rate"], "constant frame rate"
        fps = Fraction(video["r_frame_rate"])
        assert fps <= 30
        assert abs(duration_of(data) - info.video.duration) <= 1 / float(fps) + 0.021
        head = result.path.read_bytes()[:4096]
        assert head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head, "+faststart"
        if info.audio is None:
            assert not audio_streams(data)
            continue
        (audio,) = audio_streams(data)
        assert (audio["codec_name"], audio["channels"], int(audio["sample_rate"])) == ("aac", 2, 48000)
        integrated, peak = ebur128(result.path)
        assert integrated == pytest.approx(-16, abs=1)
        assert peak <= -1.0


def test_vertical_phone_clip_stays_vertical_on_web_and_is_pillarboxed_for_air(rendered) -> None:
    clip = rendered["vertical-60fps.mov"]
    assert (clip["info"].width, clip["info"].height) == (720, 1280)
    web = video_stream(ffprobe(clip["mp4-1080"].path))
    assert (web["width"], web["height"]) == (720, 1280)      # never upscaled, turned upright
    assert Fraction(web["r_frame_rate"]) == 30                # 60 halved to the web cap
    assert (clip["mp4-720"].facts["width"], clip["mp4-720"].facts["height"]) == (720, 1280)
    proxy = video_stream(ffprobe(clip["proxy-1080p25"].path))
    assert (proxy["width"], proxy["height"], Fraction(proxy["r_frame_rate"])) == (1920, 1080, 25)


def test_interlaced_source_is_deinterlaced_for_web_and_kept_for_air(rendered) -> None:
    clip = rendered["interlaced-1080i50.mxf"]
    assert clip["info"].video.field_order == "tt"
    web = video_stream(ffprobe(clip["mp4-1080"].path))
    assert web["field_order"] == "progressive" and Fraction(web["r_frame_rate"]) == 25


def test_variable_rate_phone_clip_becomes_constant(rendered) -> None:
    clip = rendered["vfr.mp4"]
    assert clip["info"].video.vfr
    web = video_stream(ffprobe(clip["mp4-1080"].path))
    assert Fraction(web["r_frame_rate"]) == Fraction(30000, 1001)


def test_hevc_10_bit_becomes_8_bit(rendered) -> None:
    clip = rendered["hevc-10bit.mp4"]
    assert clip["info"].video.bit_depth == 10
    assert video_stream(ffprobe(clip["mp4-720"].path))["pix_fmt"] == "yuv420p"


def test_surround_is_downmixed_to_stereo(rendered) -> None:
    clip = rendered["surround-5.1.mp4"]
    assert clip["info"].audio.channels == 6
    (audio,) = audio_streams(ffprobe(clip["mp4-720"].path))
    assert audio["channels"] == 2


def test_poster_is_a_jpeg_frame(rendered) -> None:
    poster = rendered["phone.mp4"]["poster"]
    data = ffprobe(poster.path)
    assert video_stream(data)["codec_name"] == "mjpeg"
    assert (poster.facts["width"], poster.facts["height"]) == (1280, 720)


@pytest.mark.parametrize(("maker", "error", "words"), [
    (clips.truncated_clip, ProbeError, "truncated"),
    (lambda p: p.write_text("#EXTM3U\n#EXTINF:10,\nhttp://example.com/a.ts\n"), UnsupportedMedia, "playlist"),
    (lambda p: p.write_text("ffconcat version 1.0\nfile '/etc/passwd'\n"), UnsupportedMedia, "concat script"),
    (lambda p: p.write_text("Kịch bản phóng sự: ...\n" * 40, encoding="utf-8"), UnsupportedMedia, "text file"),
])
def test_bad_clips_are_refused_with_a_reason(tmp_path: Path, maker, error, words, monkeypatch) -> None:
    path = tmp_path / "clip.mp4"
    maker(path)

    def no_ffmpeg(*args, **kwargs):
        raise AssertionError(f"ffmpeg/ffprobe must not see this file: {args[0]}")

    monkeypatch.setattr("pipeline.render.av.runner.subprocess.run", no_ffmpeg)
    monkeypatch.setattr("pipeline.render.av.runner.subprocess.Popen", no_ffmpeg)
    with pytest.raises(error, match=words):
        probe(path, Limits())


def test_a_clip_claiming_a_codec_we_do_not_take_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mjpeg.mov"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=320x240:rate=25:duration=1", "-c:v", "mjpeg", str(path)], check=True)
    with pytest.raises(UnsupportedMedia, match="video codec 'mjpeg' is not accepted"):
        probe_av(path, sniff(path))


def _master(rendered, clip: str) -> tuple[Path, str]:
    hls = rendered[clip]["hls"]
    return hls.path, hls.path.read_text()


@pytest.mark.parametrize("clip", ["phone.mp4", "vertical-60fps.mov", "no-audio.mp4"])
def test_hls_master_lists_every_rung_with_its_iframe_playlist_and_each_rung_plays(rendered, clip) -> None:
    master, text = _master(rendered, clip)
    variants = rendered[clip]["hls"].facts["variants"]
    assert variants, "at least one rung"
    for variant in variants:
        name = variant["name"]
        assert f"\n{name}/index.m3u8\n" in text
        assert f'URI="{name}/iframes.m3u8"' in text
        assert f"RESOLUTION={variant['width']}x{variant['height']}" in text
        media = (master.parent / name / "index.m3u8").read_text()
        target = int(media.split("#EXT-X-TARGETDURATION:")[1].split()[0])
        assert 1 <= target <= 6 and "#EXT-X-PLAYLIST-TYPE:VOD" in media
        assert '#EXT-X-MAP:URI="init.mp4"' in media and media.rstrip().endswith("#EXT-X-ENDLIST")
        iframes = (master.parent / name / "iframes.m3u8").read_text()
        assert "#EXT-X-I-FRAMES-ONLY" in iframes and "#EXT-X-BYTERANGE:" in iframes
        played = subprocess.run(["ffmpeg", "-hide_banner", "-v", "error", "-i", str(master.parent / name / "index.m3u8"),
                                 "-f", "null", "-"], capture_output=True, text=True, check=False)
        assert played.returncode == 0 and not played.stderr.strip(), played.stderr
    assert text.count("#EXT-X-STREAM-INF:") == text.count("#EXT-X-I-FRAME-STREAM-INF:") == len(variants)
    data = ffprobe(master)
    assert len({(s["width"], s["height"]) for s in data["streams"] if s["codec_type"] == "video"}) == len(variants)


def test_hls_ladder_is_never_upscaled_and_has_no_duplicates(rendered) -> None:
    names = [v["name"] for v in rendered["vertical-60fps.mov"]["hls"].facts["variants"]]
    sizes = [(v["width"], v["height"]) for v in rendered["vertical-60fps.mov"]["hls"].facts["variants"]]
    assert sizes[0] == (720, 1280) and len(set(sizes)) == len(sizes)
    assert names[0] == "720p", "the 720x1280 source keeps the 720p rung, not a fake 1080p"


def test_hls_segments_are_six_seconds_of_aligned_two_second_gops(tmp_path: Path, presets) -> None:
    source = clips.phone_clip(tmp_path / "long.mp4", seconds=13.0, size="640x360", rate="25")
    info = probe(source, Limits())
    plan = plan_video(info, "ef" * 32, [presets["web"]], EmbeddedText())
    plan = plan.only({o.key for o in plan.outputs if o.name == "hls"})
    (tmp_path / "o").mkdir()
    (hls,) = render_video(source, plan, tmp_path / "o")
    media = (hls.path.parent / "360p" / "index.m3u8").read_text()
    durations = [float(line[8:-1]) for line in media.splitlines() if line.startswith("#EXTINF:")]
    assert durations[:-1] == [6.0] * (len(durations) - 1) and durations[-1] == pytest.approx(1.0, abs=0.05)
    keyframes = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v", "-skip_frame", "nokey", "-show_entries",
         "frame=pts_time", "-of", "csv=p=0", str(hls.path.parent / "360p" / "index.m3u8")],
        capture_output=True, text=True, check=True).stdout.split()
    times = [float(t.strip(",")) for t in keyframes]
    assert [round(t - times[0], 2) for t in times][:7] == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0]


def test_mp4_720_is_the_720p_rung_remuxed_not_encoded_again(rendered) -> None:
    def video_md5(path: Path) -> str:
        return subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-c", "copy",
                               "-f", "md5", "-"], capture_output=True, text=True, check=True).stdout
    clip = rendered["phone.mp4"]
    rung = clip["hls"].path.parent / "720p" / "index.m3u8"
    assert video_md5(clip["mp4-720"].path) == video_md5(rung)


def test_no_source_metadata_leaks_into_outputs(rendered) -> None:
    source_tags = ffprobe(rendered["phone.mp4"]["source"])["format"].get("tags", {})
    assert "location" in source_tags, "the phone clip does carry a GPS position"
    for name in ("mp4-1080", "mp4-720", "proxy-1080p25", "xdcam-hd422"):
        tags = ffprobe(rendered["phone.mp4"][name].path)["format"].get("tags", {})
        assert not {"location", "location-eng", "make", "model"} & set(tags), (name, tags)


def test_thumbnail_sprite_and_its_webvtt_index(rendered) -> None:
    sprite = rendered["phone.mp4"]["sprite"]
    index = sprite.path.read_text()
    cues = [line for line in index.splitlines() if "-->" in line]
    assert index.startswith("WEBVTT") and len(cues) == 2      # a 3 s clip, one every 2 s
    assert "sprite-000.jpg#xywh=0,0,160,90" in index and "sprite-000.jpg#xywh=160,0,160,90" in index
    ((key, sheet, mime),) = sprite.extras
    assert key.endswith("/sprite-000.jpg") and mime == "image/jpeg"
    assert (video_stream(ffprobe(sheet))["width"], video_stream(ffprobe(sheet))["height"]) == (1600, 900)


def test_an_external_data_reference_is_not_followed(tmp_path: Path) -> None:
    """A MOV can name other files that hold its samples; every input we open says
    ``-enable_drefs 0``, so ffmpeg reads only the uploaded file."""
    movie = clips.external_reference_mov(tmp_path / "external-reference.mov")
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning", *input_args("mov", movie),
            "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    ours = subprocess.run(argv, capture_output=True, check=False)
    assert "Skipped opening external track" in ours.stderr.decode()
    assert b"\xfd\x00\x00" not in ours.stdout          # no red pixel from external.mov
    followed = [("1" if word == "0" and argv[i - 1] == "-enable_drefs" else word) for i, word in enumerate(argv)]
    control = subprocess.run(followed, capture_output=True, check=False)
    assert control.stdout[:3] == b"\xfd\x00\x00", "the test file must really point at external.mov"
