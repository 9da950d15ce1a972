"""The embedded run keeps originals private and never loses or replaces a manifest version.

Issue 9, items 1, 2, 3, 6 and 10: each test here failed on the code before the fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.model.manifest import validate
from tests import clips
from tests.conftest import run_cli
from tests.fixtures import photo, truncated_jpeg, with_gps_and_serial

pytestmark = pytest.mark.e2e

HEAD = """[story]
id = "rieng-tu-2023"
title = "Thành phố Thanh Hóa tăng cường kỷ cương"
byline = "Đình Hà – Đức Anh"
published = 2023-09-12T21:15:00+07:00
source = "Phòng chống tham nhũng"
copyright = "Thanh Hoa Radio and Television"
presets = ["web"]
"""


def story_text(*assets: tuple[str, str]) -> str:
    return HEAD + "".join(f'\n[[assets]]\nfile = "{file}"\ncaption = "{caption}"\ncredit = "Đình Hà"\n'
                          for file, caption in assets)


def public(out: Path) -> Path:
    return out / "public" / "stories" / "rieng-tu-2023"


def current(out: Path) -> dict:
    return json.loads((public(out) / "manifest.json").read_text("utf-8"))


@pytest.fixture
def story(tmp_path: Path) -> Path:
    media = tmp_path / "media"
    media.mkdir()
    photo((1600, 1067), 1).save(media / "a.jpg", quality=90)
    photo((1200, 800), 2).save(media / "b.jpg", quality=90)
    path = tmp_path / "story.toml"
    path.write_text(story_text(("media/a.jpg", "Một"), ("media/b.jpg", "Hai")), encoding="utf-8")
    return path


def exiftool_tree(folder: Path) -> list[dict]:
    result = subprocess.run(["exiftool", "-r", "-ext", "*", "-j", "-G1", "-a", "-ee", str(folder)], capture_output=True,
                            text=True, check=False, timeout=120)
    assert result.returncode in (0, 1), result.stderr   # 1: some files (JSON, playlists) have no tags
    return json.loads(result.stdout or "[]")


def test_originals_with_gps_stay_private_and_nothing_public_holds_gps(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    with_gps_and_serial(media / "gps.jpg")
    clips.no_audio(media / "clip.mp4", seconds=1.0)
    tagged = media / "clip-gps.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(media / "clip.mp4"), "-c", "copy",
                    "-metadata", "location=+19.8069+105.7760/", "-metadata", "location-eng=+19.8069+105.7760/",
                    str(tagged)], check=True, timeout=60)
    assert any("GPS" in key for tags in exiftool_tree(media) for key in tags), "the sources carry GPS"
    story = tmp_path / "story.toml"
    story.write_text(story_text(("media/gps.jpg", "Ảnh có GPS"), ("media/clip-gps.mp4", "Clip có GPS")),
                     encoding="utf-8")
    out = tmp_path / "out"
    result = run_cli("run", str(story), "--out", str(out), "--public-url", "https://cdn.example/media")
    assert result.returncode == 0, result.stdout + result.stderr

    leaked = [(tags["SourceFile"], key) for tags in exiftool_tree(out / "public") for key in tags
              if "GPS" in key or key.endswith(":SerialNumber") or key.endswith("BodySerialNumber")]
    assert leaked == [], "nothing under the public area holds GPS or a serial number"
    text = (public(out) / "manifest.json").read_text("utf-8")
    assert "raw/" not in text and "private" not in text, "the manifest names no private key"
    assert not any((out / "public").rglob("raw")), "no raw original in the public area"
    raws = [p for p in (out / "private" / "raw").rglob("*") if p.is_file()]
    assert len(raws) == 2, "the originals are kept, privately"
    assert any("GPS" in key for tags in exiftool_tree(out / "private" / "raw") for key in tags)


def test_versions_go_on_from_the_highest_file_after_manifest_json_is_lost(story: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli("run", str(story), "--out", str(out)).returncode == 0
    story.write_text(story_text(("media/a.jpg", "Một, sửa"), ("media/b.jpg", "Hai")), encoding="utf-8")
    assert run_cli("run", str(story), "--out", str(out)).returncode == 0
    v1 = (public(out) / "manifest.v1.json").read_bytes()
    (public(out) / "manifest.json").unlink()
    story.write_text(story_text(("media/a.jpg", "Một, sửa lần hai"), ("media/b.jpg", "Hai")), encoding="utf-8")
    third = run_cli("run", str(story), "--out", str(out))
    assert third.returncode == 0, third.stdout + third.stderr
    assert current(out)["version"] == 3
    assert (public(out) / "manifest.v1.json").read_bytes() == v1, "a version file is never replaced"
    assert json.loads((public(out) / "manifest.v2.json").read_text("utf-8"))["assets"][0]["caption"] == "Một, sửa"


def test_two_runs_into_one_folder_at_once_write_two_versions(story: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text(story_text(("media/a.jpg", "Một, bản khác"), ("media/b.jpg", "Hai")), encoding="utf-8")
    out = tmp_path / "out"
    exe = str(Path(sys.executable).with_name("storymedia"))
    env = {**os.environ, "NO_COLOR": "1"}
    runs = [subprocess.Popen([exe, "run", str(path), "--out", str(out), "--quiet", "--workers", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
            for path in (story, other)]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    versions = sorted(p.name for p in public(out).glob("manifest.v*.json"))
    assert versions == ["manifest.v1.json", "manifest.v2.json"], outputs
    captions = {json.loads((public(out) / name).read_text("utf-8"))["assets"][0]["caption"] for name in versions}
    assert captions == {"Một", "Một, bản khác"}, "neither run's version was lost"
    assert current(out)["version"] == 2
    for name in versions:
        validate(json.loads((public(out) / name).read_text("utf-8")))


def test_a_failed_rerun_keeps_the_published_renditions(story: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli("run", str(story), "--out", str(out)).returncode == 0
    published = current(out)["assets"][1]
    truncated_jpeg(tmp_path / "media" / "b.jpg")        # the producer re-exports b.jpg, and it is cut
    story.write_text(story_text(("media/a.jpg", "Một"), ("media/b.jpg", "Hai, sửa")), encoding="utf-8")
    again = run_cli("run", str(story), "--out", str(out))
    assert again.returncode == 2, again.stdout + again.stderr
    assert "truncated" in again.stdout
    doc = current(out)
    validate(doc)
    kept = doc["assets"][1]
    assert kept["status"] == "done" and kept["renditions"] == published["renditions"]
    assert kept["caption"] == "Hai", "the caption the published renditions carry"
    assert kept["update_failed"]["code"] == "truncated"
    assert doc["status"] == "partial" and doc["version"] == 2
    for rendition in kept["renditions"]:
        assert (out / "public" / rendition["key"]).stat().st_size == rendition["bytes"]


def test_a_file_swapped_for_a_symlink_after_validation_is_not_followed(story: Path, tmp_path: Path) -> None:
    from pipeline.errors import InvalidStory
    from pipeline.run.embedded import prepare, run_story

    secret = tmp_path / "elsewhere" / "secret.jpg"
    secret.parent.mkdir()
    photo((800, 600), 9).save(secret, quality=90)
    loaded, presets = prepare(story)                       # validated: a.jpg is a plain file
    (tmp_path / "media" / "a.jpg").unlink()
    (tmp_path / "media" / "a.jpg").symlink_to(secret)      # ... then swapped for a link
    out = tmp_path / "out"
    with pytest.raises(InvalidStory, match=r"a\.jpg is \(or passes through\) a symbolic link"):
        run_story(story, out, story=loaded, presets=presets, workers=1)
    assert not (out / "public" / "stories").exists(), "nothing was published"


def test_a_symlinked_folder_in_the_story_is_refused_with_a_reason(story: Path, tmp_path: Path) -> None:
    (tmp_path / "linked").symlink_to(tmp_path / "media", target_is_directory=True)
    story.write_text(story_text(("linked/a.jpg", "Một")), encoding="utf-8")
    result = run_cli("run", str(story), "--out", str(tmp_path / "out"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "linked/a.jpg is (or passes through) a symbolic link" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_file_name_written_in_nfd_on_disk_is_found_and_processed(tmp_path: Path) -> None:
    import unicodedata

    name = "Ảnh 5 – Bà Tâm.jpg"
    media = tmp_path / "media"
    media.mkdir()
    photo((1200, 800), 5).save(media / unicodedata.normalize("NFD", name), quality=90)
    assert not (media / unicodedata.normalize("NFC", name)).exists(), "the disk holds the NFD spelling only"
    story = tmp_path / "story.toml"
    story.write_text(story_text((f"media/{unicodedata.normalize('NFC', name)}", "Bà Lê Thị Minh Tâm")),
                     encoding="utf-8")
    out = tmp_path / "out"
    result = run_cli("run", str(story), "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    entry = current(out)["assets"][0]
    assert entry["status"] == "done" and entry["filename"] == unicodedata.normalize("NFC", name)
    assert entry["caption"] == unicodedata.normalize("NFC", "Bà Lê Thị Minh Tâm")


def test_a_job_canceled_before_it_starts_keeps_the_previous_manifest(story: Path, tmp_path: Path) -> None:
    from pipeline.run import jobs, orchestration
    from pipeline.run.embedded import areas, prepare, run_story

    out = tmp_path / "out"
    assert run_cli("run", str(story), "--out", str(out)).returncode == 0
    before = (public(out) / "manifest.json").read_bytes()
    story.write_text(story_text(("media/a.jpg", "Một, sửa"), ("media/b.jpg", "Hai")), encoding="utf-8")
    loaded, presets = prepare(story)
    _, private = areas(out)
    events: list[orchestration.JobEvent] = []

    def on_event(event: orchestration.JobEvent) -> None:
        events.append(event)
        if event.about_job and event.state == "queued":   # recorded, nothing started yet
            assert orchestration.cancel(private, event.story_id, event.job_id, "the editor pulled it")

    report = run_story(story, out, story=loaded, presets=presets, workers=1, on_event=on_event)
    assert report.status == "canceled" and report.outcomes == []
    assert (public(out) / "manifest.json").read_bytes() == before, "the manifest is not replaced"
    assert sorted(p.name for p in public(out).glob("manifest.v*.json")) == ["manifest.v1.json"]
    done = jobs.read_done(private, "rieng-tu-2023", report.job.id)
    assert done is not None and (done["status"], done["manifest_version"]) == ("canceled", 1)
    assert jobs.read_asset_results(private, "rieng-tu-2023", report.job.id) == {}, "nothing ran"
    assert [(e.order, e.state) for e in events] == [(0, "queued"), (1, "canceled"), (2, "canceled"),
                                                    (0, "canceled")]
    assert not orchestration.cancel(private, "rieng-tu-2023", report.job.id), "a finished job stays finished"


def test_a_cancel_while_running_starts_no_further_asset(story: Path, tmp_path: Path) -> None:
    from pipeline.run import jobs, orchestration
    from pipeline.run.embedded import areas, prepare, run_story

    out = tmp_path / "out"
    # A photo that takes seconds to render, so the cancel (asked every 0.5 s) reaches it while it
    # runs, however busy the machine (1.6 MP took 0.5 s: it could finish first).
    photo((6000, 4000), 1).save(story.parent / "media" / "a.jpg", quality=90)
    loaded, presets = prepare(story)
    _, private = areas(out)

    seen: list[tuple[int, str]] = []

    def on_event(event: orchestration.JobEvent) -> None:
        seen.append((event.order, event.state))
        if event.order == 1 and event.state == "probing":   # the biggest photo has started
            orchestration.cancel(private, event.story_id, event.job_id)

    report = run_story(story, out, story=loaded, presets=presets, workers=1, on_event=on_event)
    assert report.status == "canceled"
    results = jobs.read_asset_results(private, "rieng-tu-2023", report.job.id)
    assert results == {}, "the asset that had started was stopped where it ran, nothing recorded"
    assert [state for order, state in seen if order == 2] == ["canceled"], "b.jpg never started"
    assert not (public(out) / "manifest.json").exists(), "a canceled job writes no manifest"


def test_the_run_command_reports_a_canceled_job(story: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A cancel from elsewhere (the service) while `storymedia run` works: the command says the job
    was canceled and that the manifest was not replaced, exit 2, no internal error."""
    from click.testing import CliRunner

    from pipeline.run import embedded, orchestration
    from storymedia.cli import cli

    out = tmp_path / "out"
    real_run_story = embedded.run_story

    def run_and_cancel(*args: object, on_event: object = None, **kwargs: object) -> object:
        def cancelling(event: orchestration.JobEvent) -> None:
            if event.about_job and event.state == "queued":
                _, private = embedded.areas(out)
                orchestration.cancel(private, event.story_id, event.job_id, "the editor pulled it")
            on_event(event)  # type: ignore[operator]
        return real_run_story(*args, on_event=cancelling, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(embedded, "run_story", run_and_cancel)
    result = CliRunner().invoke(cli, ["run", str(story), "--out", str(out), "--workers", "1"])
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())   # rich wraps long lines at the terminal's width
    assert "Status: canceled" in said and "the story's manifest was not replaced" in said
    assert "internal error" not in said
    assert not (public(out) / "manifest.json").exists()
