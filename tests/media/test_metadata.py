"""Caption, byline, credit and copyright read back by exiftool, Vietnamese intact; no GPS."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.fixtures import with_gps_and_serial
from tests.media.render_helpers import TEXT, render

pytestmark = pytest.mark.media


def exiftool(*paths: Path) -> list[dict]:
    result = subprocess.run(["exiftool", "-j", "-G1", "-a", "-charset", "iptc=UTF8", *map(str, paths)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, presets) -> dict:
    tmp = tmp_path_factory.mktemp("meta")
    source = with_gps_and_serial(tmp / "gps.jpg")
    return render(source, [presets["web"], presets["broadcast"], presets["social"]], tmp / "out")


def test_source_really_has_gps_and_serial(tmp_path: Path) -> None:
    (tags,) = exiftool(with_gps_and_serial(tmp_path / "gps.jpg"))
    assert any(k.endswith(":GPSLatitude") for k in tags)
    assert any(k.endswith(":SerialNumber") for k in tags)


def test_xmp_and_iptc_round_trip_in_every_rendition(rendered: dict) -> None:
    for (preset, name, fmt), tags in zip(rendered, exiftool(*rendered.values()), strict=True):
        where = f"{preset} {name} {fmt}"
        assert tags["XMP-dc:Description"] == TEXT.caption, where
        assert tags["XMP-dc:Creator"] == TEXT.byline, where
        assert tags["XMP-photoshop:Credit"] == TEXT.credit, where
        assert tags["XMP-dc:Rights"] == TEXT.copyright, where
        assert tags["XMP-photoshop:Headline"] == TEXT.headline, where
        if fmt == "jpeg":
            assert tags["IPTC:CodedCharacterSet"] == "UTF8", where
            assert tags["IPTC:Caption-Abstract"] == TEXT.caption, where
            assert tags["IPTC:By-line"] == TEXT.byline, where
            assert tags["IPTC:Credit"] == TEXT.credit, where
            assert tags["IPTC:CopyrightNotice"] == TEXT.copyright, where


def test_gps_serials_and_orientation_are_stripped_camera_facts_kept(rendered: dict) -> None:
    for tags in exiftool(*rendered.values()):
        keys = set(tags)
        assert not [k for k in keys if "GPS" in k], tags["System:FileName"]
        assert not [k for k in keys if "Serial" in k], tags["System:FileName"]
        assert "IFD0:Orientation" not in keys
        assert tags.get("IFD0:Model") == "EOS R6"
        assert tags.get("ExifIFD:DateTimeOriginal") == "2023:09:12 08:30:00"
