"""The pages' words in Vietnamese (the default) and English.

Every label, state and refusal reason a page shows comes from here, written for the newsroom (a
producer, an editor, an operator), not for a programmer. ``MESSAGES`` maps a key to its
(Vietnamese, English) text; ``STATES`` the job and asset states (the API's words); ``REASONS`` the
refusal and failure codes of ``pipeline.errors`` to what a producer should do about them. The
pages' JavaScript gets the same words as JSON (``catalog()``), so nothing is translated twice.
"""

from __future__ import annotations

from collections.abc import Callable

LANGS = ("vi", "en")
DEFAULT_LANG = "vi"
COOKIE = "storymedia_lang"

MESSAGES: dict[str, tuple[str, str]] = {
    # -- every page --------------------------------------------------------------------------------
    "app.name": ("storymedia", "storymedia"),
    "app.tagline": ("Ảnh, video và âm thanh cho bài viết", "Photos, video and audio for the story"),
    "nav.stories": ("Bài viết", "Stories"),
    "nav.new_story": ("Bài mới", "New story"),
    "nav.ops": ("Vận hành", "Operations"),
    "nav.signout": ("Đăng xuất", "Sign out"),
    "nav.language": ("Ngôn ngữ", "Language"),
    "nav.skip": ("Bỏ qua, đến nội dung chính", "Skip to the main content"),
    "nav.signed_in_as": ("Đăng nhập: {role}, ban {desk}", "Signed in: {role}, desk {desk}"),
    "role.producer": ("biên tập viên sản xuất", "producer"),
    "role.editor": ("biên tập web", "web editor"),
    "role.operator": ("vận hành", "operator"),
    "lang.vi": ("Tiếng Việt", "Tiếng Việt"),
    "lang.en": ("English", "English"),
    "common.loading": ("Đang tải…", "Loading…"),
    "common.error": ("Có lỗi xảy ra", "Something went wrong"),
    "common.retry": ("Thử lại", "Try again"),
    "common.close": ("Đóng", "Close"),
    "common.save": ("Lưu", "Save"),
    "common.cancel": ("Huỷ", "Cancel"),
    "common.none": ("Không có", "None"),
    "common.copy": ("Sao chép", "Copy"),
    "common.copied": ("Đã sao chép", "Copied"),
    "common.bytes": ("{size}", "{size}"),
    "common.seconds_left": ("còn {time}", "{time} left"),
    "common.offline": ("Mất kết nối, đang thử lại…", "Connection lost, trying again…"),
    # -- signing in --------------------------------------------------------------------------------
    "signin.title": ("Đăng nhập", "Sign in"),
    "signin.intro": ("Dán mã truy cập mà bộ phận vận hành đã cấp cho bạn.",
                     "Paste the access token the operators gave you."),
    "signin.token": ("Mã truy cập", "Access token"),
    "signin.submit": ("Đăng nhập", "Sign in"),
    "signin.wrong": ("Mã truy cập không đúng hoặc đã bị thu hồi.",
                     "The access token is wrong or was revoked."),
    "signin.expired": ("Phiên làm việc đã hết hạn, hãy đăng nhập lại.",
                       "Your session ended: sign in again."),
    "signin.other_site": ("Yêu cầu không đến từ trang này.", "The request did not come from this site."),
    "signin.signed_out": ("Bạn đã đăng xuất.", "You are signed out."),
    # -- errors shown as pages ---------------------------------------------------------------------
    "error.not_found": ("Không tìm thấy trang hoặc bài viết này.", "No such page or story."),
    "error.forbidden": ("Bạn không có quyền xem trang này.", "You may not open this page."),
    "error.back": ("Về trang đầu", "Back to the start"),
    # -- the list of stories -----------------------------------------------------------------------
    "stories.title": ("Bài viết", "Stories"),
    "stories.empty": ("Chưa có bài viết nào.", "No stories yet."),
    "stories.col.title": ("Tiêu đề", "Title"),
    "stories.col.desk": ("Ban", "Desk"),
    "stories.col.state": ("Trạng thái", "State"),
    "stories.col.published": ("Ngày đăng", "Published"),
    "stories.more": ("Xem thêm", "More"),
    "stories.breaking": ("Tin nóng", "Breaking"),
    # -- producer page -----------------------------------------------------------------------------
    # -- editor page -------------------------------------------------------------------------------
    # -- operator console --------------------------------------------------------------------------
}

STATES: dict[str, tuple[str, str]] = {
    # a job (and a story's latest job)
    "draft": ("bản nháp", "draft"),
    "queued": ("đang chờ", "waiting"),
    "running": ("đang xử lý", "in progress"),
    "complete": ("hoàn tất", "complete"),
    "partial": ("xong một phần", "partly done"),
    "failed": ("thất bại", "failed"),
    "canceled": ("đã huỷ", "canceled"),
    # an asset
    "pending": ("đang chờ", "waiting"),
    "probing": ("đang kiểm tra", "checking"),
    "rendering": ("đang dựng", "rendering"),
    "storing": ("đang lưu", "storing"),
    "done": ("xong", "done"),
    "refused": ("bị từ chối", "refused"),
    # an upload (the producer's page)
    "uploading": ("đang tải lên", "uploading"),
    "paused": ("tạm dừng", "paused"),
    "uploaded": ("đã tải lên", "uploaded"),
}

REASONS: dict[str, tuple[str, str]] = {
    "truncated": ("Tệp bị cắt cụt, hãy xuất lại từ máy ảnh",
                  "The file is cut short: export it again from the camera"),
    "corrupt": ("Tệp bị hỏng, không đọc được: hãy xuất lại tệp rồi tải lên lại",
                "The file is damaged and cannot be read: export it again and upload it again"),
    "empty": ("Tệp rỗng (0 byte): hãy tải lên lại", "The file is empty: upload it again"),
    "not-media": ("Đây không phải ảnh, video hay âm thanh (có thể là tệp văn bản bị đặt tên .jpg)",
                  "This is not a photo, video or audio file (perhaps a text file named .jpg)"),
    "unknown-type": ("Không nhận ra loại tệp: hãy tải lên ảnh JPEG/PNG/HEIC, video MP4/MOV/MXF"
                     " hoặc âm thanh WAV/MP3",
                     "Unknown kind of file: upload a JPEG/PNG/HEIC photo, an MP4/MOV/MXF video"
                     " or WAV/MP3 audio"),
    "unsupported": ("Định dạng này chưa được hỗ trợ: hãy xuất sang MP4 (H.264) hoặc JPEG",
                    "This format is not supported: export it as MP4 (H.264) or JPEG"),
    "container": ("Định dạng tệp video này chưa được hỗ trợ: hãy xuất sang MP4 hoặc MOV",
                  "This video container is not supported: export it as MP4 or MOV"),
    "codec": ("Mã hoá hình hoặc tiếng của tệp chưa được hỗ trợ: hãy xuất sang H.264 và AAC",
              "The file's video or audio coding is not supported: export it as H.264 and AAC"),
    "no-streams": ("Tệp không có hình cũng không có tiếng", "The file has neither picture nor sound"),
    "unreadable": ("Không đọc được tệp: hãy xuất lại rồi tải lên lại",
                   "The file cannot be read: export it again and upload it again"),
    "too-large": ("Tệp lớn hơn giới hạn cho phép", "The file is larger than allowed"),
    "too-many-pixels": ("Ảnh quá lớn (quá nhiều điểm ảnh): hãy giảm kích thước rồi xuất lại",
                        "The photo is too big (too many pixels): make it smaller and export it again"),
    "too-long": ("Video hoặc âm thanh dài hơn giới hạn cho phép",
                 "The video or audio is longer than allowed"),
    "too-many-scans": ("Tệp có cấu trúc bất thường và đã bị từ chối để bảo vệ hệ thống",
                       "The file is built in an unusual way and was refused to protect the system"),
    "too-many-boxes": ("Tệp có cấu trúc bất thường và đã bị từ chối để bảo vệ hệ thống",
                       "The file is built in an unusual way and was refused to protect the system"),
    "too-many-segments": ("Tệp có cấu trúc bất thường và đã bị từ chối để bảo vệ hệ thống",
                          "The file is built in an unusual way and was refused to protect the system"),
    "too-much-memory": ("Tệp cần quá nhiều bộ nhớ để xử lý: hãy giảm kích thước rồi xuất lại",
                        "The file needs too much memory: make it smaller and export it again"),
    "out-of-memory": ("Tệp cần quá nhiều bộ nhớ để xử lý: hãy giảm kích thước rồi xuất lại",
                      "The file needs too much memory: make it smaller and export it again"),
    "probe-timeout": ("Kiểm tra tệp mất quá nhiều thời gian: hãy xuất lại tệp",
                      "Checking the file took too long: export it again"),
    "timeout": ("Xử lý tệp mất quá nhiều thời gian và đã bị dừng; bộ phận vận hành đã được báo",
                "Processing took too long and was stopped; the operators were told"),
    "time-limit": ("Xử lý tệp mất quá nhiều thời gian và đã bị dừng; bộ phận vận hành đã được báo",
                   "Processing took too long and was stopped; the operators were told"),
    "not-found": ("Chưa có tệp này: hãy tải tệp lên", "This file is missing: upload it"),
    "canceled": ("Đã huỷ theo yêu cầu", "Canceled on request"),
}
RENDER_FAILED = ("Lỗi khi dựng bản xuất; bộ phận vận hành đã được báo và sẽ chạy lại",
                 "A rendition failed; the operators were told and will run it again")
"""Every other code (encode-failed, render-crashed, hls, loudness, ...): not the producer's to fix."""


def pick(lang: str) -> int:
    return 1 if lang == "en" else 0


def message(lang: str, key: str, **values: object) -> str:
    """The text of ``key`` in ``lang`` with ``values`` filled in (the key itself if unknown, so a
    missing word shows, and a test finds it)."""
    found = MESSAGES.get(key)
    text = found[pick(lang)] if found else key
    return text.format(**values) if values else text


def state(lang: str, name: str) -> str:
    found = STATES.get(name)
    return found[pick(lang)] if found else name


def reason(lang: str, code: str) -> str:
    """What a producer reads for a refusal or failure ``code``."""
    return REASONS.get(code, RENDER_FAILED)[pick(lang)]


def translator(lang: str) -> Callable[..., str]:
    def translate(key: str, **values: object) -> str:
        return message(lang, key, **values)
    return translate


def catalog(lang: str) -> dict[str, dict[str, str]]:
    """Everything, in ``lang``, for the pages' scripts."""
    index = pick(lang)
    return {"messages": {key: texts[index] for key, texts in MESSAGES.items()},
            "states": {key: texts[index] for key, texts in STATES.items()},
            "reasons": {key: texts[index] for key, texts in REASONS.items()},
            "render_failed": {"text": RENDER_FAILED[index]}}


def choose(requested: str | None, cookie: str | None) -> str:
    """The language: ``?lang=`` first, then the cookie, then Vietnamese."""
    for candidate in (requested, cookie):
        if candidate in LANGS:
            return str(candidate)
    return DEFAULT_LANG
