"""``storymedia run`` end to end, as a producer runs it: real files, real processes, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.model.manifest import validate
from pipeline.run import jobs
from pipeline.storage import LocalStorage
from tests import clips
from tests.conftest import run_cli
from tests.fixtures import photo, pixel_bomb_png, truncated_jpeg

pytestmark = pytest.mark.e2e

HEAD = """[story]
id = "bad-inputs-2023"
title = "Thành phố Thanh Hóa tăng cường kỷ cương"
byline = "Đình Hà – Đức Anh"
published = 2023-09-12T21:15:00+07:00
source = "Phòng chống tham nhũng"
copyright = "Thanh Hoa Radio and Television"
"""


def asset(file: str, caption: str = "Ảnh minh họa") -> str:
    return f'\n[[assets]]\nfile = "{file}"\ncaption = "{caption}"\ncredit = "Đình Hà"\n'


def manifest_of(out: Path, story_id: str) -> dict:
    return json.loads((out / "public" / "stories" / story_id / "manifest.json").read_text("utf-8"))


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_ino)
            for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def bad_story(tmp_path: Path) -> Path:
    media = tmp_path / "media"
    media.mkdir()
    photo((2400, 1600), 1).save(media / "good.jpg", quality=90)
    photo((1600, 1200), 2).save(media / "good-2.jpg", quality=90)
    (media / "empty.jpg").write_bytes(b"")
    truncated_jpeg(media / "truncated.jpg")
    (media / "notes.jpg").write_text("Biên bản họp giao ban sáng thứ Hai\n" * 30, encoding="utf-8")
    pixel_bomb_png(media / "bomb.png")
    with (media / "huge.jpg").open("wb") as handle:          # sparse: 250 MB on paper
        handle.write(b"\xff\xd8\xff\xe0")
        handle.truncate(250 * 1024 * 1024)
    (media / "playlist.jpg").write_text("#EXTM3U\n#EXTINF:10,\nfile:///etc/passwd\n")
    (media / "playlist.mp4").write_text("#EXTM3U\n#EXTINF:10,\nfile:///etc/passwd\n")
    (media / "concat.mov").write_text("ffconcat version 1.0\nfile '/etc/passwd'\n")
    (media / "script.mp4").write_text("Kịch bản phóng sự\n" * 30, encoding="utf-8")
    clips.truncated_clip(media / "cut.mp4")
    clips.no_audio(media / "good-clip.mp4", seconds=1.0)
    files = ["good.jpg", "empty.jpg", "truncated.jpg", "notes.jpg", "bomb.png", "huge.jpg",
             "playlist.jpg", "playlist.mp4", "concat.mov", "script.mp4", "cut.mp4", "good-clip.mp4",
             "good-2.jpg"]
    story = tmp_path / "story.toml"
    story.write_text(HEAD + "".join(asset(f"media/{f}") for f in files), encoding="utf-8")
    return story


def test_bad_inputs_fail_alone_and_the_rest_completes(bad_story: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_cli("run", str(bad_story), "--out", str(out))
    text = result.stdout + result.stderr
    assert result.returncode == 2, text
    assert "Traceback" not in text
    doc = manifest_of(out, "bad-inputs-2023")
    validate(doc)
    assert doc["status"] == "partial"
    status = {a["filename"]: a for a in doc["assets"]}
    assert status["good.jpg"]["status"] == "done" and status["good-2.jpg"]["status"] == "done"
    assert status["good-clip.mp4"]["status"] == "done" and status["good-clip.mp4"]["kind"] == "video"
    assert len(status["good.jpg"]["renditions"]) == 13
    expected = {"empty.jpg": "empty", "truncated.jpg": "truncated", "notes.jpg": "text file",
                "bomb.png": "too many pixels", "huge.jpg": "too large", "playlist.jpg": "playlist",
                "playlist.mp4": "playlist", "concat.mov": "concat script", "script.mp4": "text file",
                "cut.mp4": "truncated"}
    for name, words in expected.items():
        error = status[name]["error"]
        assert status[name]["status"] == "failed" and not status[name]["renditions"]
        assert words in error["reason"], (name, error)
        assert error["retryable"] is False
        assert words in text, f"the summary shows why {name} failed"
    assert doc["summary"] == {**doc["summary"], "assets": 13, "done": 3, "failed": 10}
    assert result.peak_mb < 1500, f"memory stays bounded: peak {result.peak_mb:.0f} MB"
    # Failed assets leave nothing behind; every listed rendition exists with its checksum.
    for entry in doc["assets"]:
        for rendition in entry["renditions"]:
            assert (out / "public" / rendition["key"]).stat().st_size == rendition["bytes"]


def test_invalid_story_exits_1_with_one_clear_line(tmp_path: Path) -> None:
    story = tmp_path / "story.toml"
    story.write_text(HEAD.replace('id = "bad-inputs-2023"', 'id = "Bad Id"') + asset("media/x.jpg"),
                     encoding="utf-8")
    result = run_cli("run", str(story), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "story.id: must be a slug" in result.stderr
    assert not (tmp_path / "out").exists()
    story.write_text(HEAD + asset("media/x.jpg"), encoding="utf-8")
    result = run_cli("run", str(story), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "story.toml: assets[0].file: media/x.jpg does not exist" in result.stderr


def test_rerun_redoes_nothing_and_a_changed_caption_redoes_one_asset(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    photo((2400, 1600), 1).save(media / "a.jpg", quality=90)
    photo((2000, 3000), 2).save(media / "b.jpg", quality=90)
    story = tmp_path / "story.toml"
    story.write_text(HEAD + asset("media/a.jpg", "Một") + asset("media/b.jpg", "Hai"), encoding="utf-8")
    out = tmp_path / "out"
    first = run_cli("run", str(story), "--out", str(out))
    assert first.returncode == 0, first.stdout + first.stderr
    before = snapshot(out)

    second = run_cli("run", str(story), "--out", str(out))
    assert second.returncode == 0
    assert "Nothing to do: all 26 renditions were already stored" in second.stdout
    after = snapshot(out)
    assert {key: after.get(key) for key in before} == before, "a rerun changes nothing already there"
    added = sorted(set(after) - set(before))
    assert added and all(key.startswith("private/stories/bad-inputs-2023/jobs/") for key in added), (
        "a rerun writes nothing but its own job's records")
    assert manifest_of(out, "bad-inputs-2023")["version"] == 1

    story.write_text(HEAD + asset("media/a.jpg", "Một") + asset("media/b.jpg", "Hai, đã sửa"),
                     encoding="utf-8")
    third = run_cli("run", str(story), "--out", str(out))
    assert third.returncode == 0
    assert "13 renditions made, 13 reused" in third.stdout
    doc = manifest_of(out, "bad-inputs-2023")
    assert doc["version"] == 2
    assert (out / "public" / "stories" / "bad-inputs-2023" / "manifest.v1.json").is_file()
    assert doc["assets"][1]["caption"] == "Hai, đã sửa"
    private = LocalStorage(out / "private")
    _first, second_job, third_job = jobs.story_jobs(private, "bad-inputs-2023")
    assert third_job == doc["job"]
    results = jobs.read_asset_results(private, "bad-inputs-2023", third_job)
    assert [(r.rendered, r.reused) for r in results.values()] == [(0, 13), (13, 0)], (
        "the job's records say only the changed asset was rendered")
    assert jobs.read_done(private, "bad-inputs-2023", third_job)["manifest_version"] == 2
    assert jobs.read_done(private, "bad-inputs-2023", second_job)["manifest_version"] == 1


def test_a_run_keeps_the_jobs_records_in_the_private_area(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    photo((1600, 1067), 1).save(media / "a.jpg", quality=90)
    (media / "notes.jpg").write_text("Biên bản họp\n" * 30, encoding="utf-8")
    story = tmp_path / "story.toml"
    story.write_text(HEAD + asset("media/a.jpg", "Một") + asset("media/notes.jpg", "Hai"), encoding="utf-8")
    out = tmp_path / "out"
    result = run_cli("run", str(story), "--out", str(out))
    assert result.returncode == 2, result.stdout + result.stderr
    doc = manifest_of(out, "bad-inputs-2023")
    private = LocalStorage(out / "private")
    (job_id,) = jobs.story_jobs(private, "bad-inputs-2023")
    assert job_id == doc["job"]
    job = jobs.read_job(private, "bad-inputs-2023", job_id)
    assert [a.file for a in job.assets] == ["media/a.jpg", "media/notes.jpg"]
    results = jobs.read_asset_results(private, "bad-inputs-2023", job_id)
    assert [results[order].entry for order in (1, 2)] == doc["assets"], "the manifest is built from them"
    assert results[2].entry["error"]["reason"] and results[1].rendered == len(doc["assets"][0]["renditions"]) > 0
    done = jobs.read_done(private, "bad-inputs-2023", job_id)
    assert done is not None and (done["status"], done["manifest_version"]) == ("partial", 1)
    assert list(jobs.unfinished_jobs(private)) == []
    assert not (out / "public" / "stories" / "bad-inputs-2023" / "jobs").exists(), "records stay private"


def test_deleted_rendition_is_made_again(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    photo((2400, 1600), 1).save(media / "a.jpg", quality=90)
    story = tmp_path / "story.toml"
    story.write_text(HEAD + asset("media/a.jpg"), encoding="utf-8")
    out = tmp_path / "out"
    assert run_cli("run", str(story), "--out", str(out)).returncode == 0
    victim = manifest_of(out, "bad-inputs-2023")["assets"][0]["renditions"][0]
    (out / "public" / victim["key"]).write_bytes(b"damaged")
    again = run_cli("run", str(story), "--out", str(out))
    assert again.returncode == 0
    assert "1 renditions made, 12 reused" in again.stdout
    assert (out / "public" / victim["key"]).stat().st_size == victim["bytes"]


def test_presets_command_lists_every_preset() -> None:
    result = run_cli("presets")
    assert result.returncode == 0
    for label in ("web@1", "broadcast@1", "social@1"):
        assert label in result.stdout


def test_help_describes_every_command() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("run", "presets"):
        assert command in result.stdout
    run_help = run_cli("run", "--help").stdout
    for option in ("--out", "--workers", "--presets", "--public-url", "--quiet"):
        assert option in run_help





def test_the_stations_limits_file_applies_to_run(tmp_path: Path) -> None:
    import shutil

    from tests.conftest import PRESETS

    presets = tmp_path / "presets"
    shutil.copytree(PRESETS, presets)
    (presets / "limits.toml").write_text("[image]\nmax_image_pixels = 1000000\n", encoding="utf-8")
    media = tmp_path / "media"
    media.mkdir()
    photo((1600, 1000), 1).save(media / "a.jpg", quality=90)
    story = tmp_path / "story.toml"
    story.write_text(HEAD + asset("media/a.jpg"), encoding="utf-8")
    result = run_cli("run", str(story), "--out", str(tmp_path / "out"), "--presets", str(presets))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "too many pixels" in result.stdout and "the limit is 1 MP" in result.stdout
