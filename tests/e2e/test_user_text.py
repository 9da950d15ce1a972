"""User text on the screen: titles and file names with square brackets are shown as written.

rich reads ``[...]`` as markup: ``[/]`` in a title crashed the command with a traceback and
``[x]`` vanished from file names in the tables.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fixtures import photo

pytestmark = pytest.mark.e2e

TITLE = "Lũ lụt [VIDEO] ở miền Trung [/]"
PHOTO = "ảnh [x].jpg"


def test_markup_in_a_title_and_a_file_name_is_shown_verbatim(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    photo((900, 600), 3).save(media / PHOTO, quality=90)
    story = tmp_path / "story.toml"
    story.write_text(
        f'[story]\nid = "lu-lut-mien-trung"\ntitle = "{TITLE}"\nbyline = "Đình Hà"\n'
        'published = 2023-10-02T08:00:00+07:00\nsource = "Thời sự [cập nhật]"\npresets = ["web"]\n\n'
        f'[[assets]]\nfile = "media/{PHOTO}"\ncaption = "Nước lên [bold]nhanh[/bold]"\ncredit = "Đức Anh"\n',
        encoding="utf-8")
    result = run_cli("run", str(story), "--out", str(tmp_path / "out [2]"), "--quiet")
    text = result.stdout + result.stderr
    assert result.returncode == 0, text
    assert "Traceback" not in text and "internal error" not in text
    assert TITLE in result.stdout
    assert PHOTO in result.stdout, "the file name keeps its [x] in the summary table"
    assert "out [2]" in result.stdout, "the manifest path is shown as it is"
