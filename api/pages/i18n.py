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
    "producer.title_new": ("Bài mới", "New story"),
    "producer.new_story": ("+ Tạo bài mới", "+ New story"),
    "producer.desk_stories": ("Bài của ban {desk}", "Desk {desk}'s stories"),
    "producer.all_stories": ("Xem tất cả bài viết", "All stories"),
    "producer.needs_script": ("Trang này cần JavaScript để tải tệp lên.",
                              "This page needs JavaScript to upload files."),
    "producer.story": ("Thông tin bài", "The story"),
    "producer.field.title": ("Tiêu đề", "Title"),
    "producer.field.id": ("Mã bài (đường dẫn)", "Story id (slug)"),
    "producer.hint.id": (
        "Tạo tự động từ tiêu đề (bỏ dấu); có thể sửa trước khi lưu lần đầu.",
        "Made from the title (without diacritics); you may change it before the first save."),
    "producer.hint.id_fixed": ("Mã bài đã được lưu, không đổi được nữa.",
                               "The story id is saved and cannot change."),
    "producer.field.byline": ("Tác giả", "Byline"),
    "producer.field.source": ("Chuyên mục / nguồn", "Section / source"),
    "producer.field.published": ("Ngày giờ đăng", "Published (date and time)"),
    "producer.field.zone": ("Múi giờ", "Time zone"),
    "producer.field.copyright": ("Bản quyền", "Copyright"),
    "producer.hint.copyright": ("Dùng cho mọi tệp, trừ khi tệp ghi bản quyền riêng.",
                                "Used for every file unless a file names its own."),
    "producer.field.presets": ("Bản xuất cần làm", "Renditions to make"),
    "producer.preset.web": ("Trang web: ảnh JPEG/WebP nhiều cỡ, video MP4 và HLS",
                            "Website: JPEG/WebP photos in several sizes, MP4 and HLS video"),
    "producer.preset.broadcast": ("Phát sóng: video MXF cho truyền hình, ảnh cỡ lớn",
                                  "Broadcast: MXF video for television, large photos"),
    "producer.preset.social": ("Mạng xã hội: ảnh và video vuông, dọc",
                               "Social media: square and vertical photos and video"),
    "producer.preset.radio": ("Phát thanh: âm thanh WAV và MP3 chuẩn độ lớn",
                              "Radio: WAV and MP3 audio at broadcast loudness"),
    "producer.field.breaking": ("Tin nóng (xử lý trước)", "Breaking news (processed first)"),
    "producer.files": ("Tệp ảnh, video, âm thanh", "Photos, clips and audio"),
    "producer.drop": ("Kéo và thả ảnh, video, âm thanh và phụ đề (.srt, .vtt) vào đây.",
                      "Drag and drop photos, clips, audio and subtitles (.srt, .vtt) here."),
    "producer.pick": ("Hoặc chọn tệp từ máy", "Or pick files"),
    "producer.hint.files": (
        "Có thể chọn nhiều tệp một lúc. Tệp trùng tên sẽ thay tệp cũ.",
        "You may pick several files at once. A file with the same name replaces the old one."),
    "producer.no_files": ("Chưa có tệp nào.", "No files yet."),
    "producer.subtitle_files": ("Tệp phụ đề", "Subtitle files"),
    "producer.kind.image": ("Ảnh", "Photo"),
    "producer.kind.video": ("Video", "Clip"),
    "producer.kind.audio": ("Âm thanh", "Audio"),
    "producer.kind.subtitles": ("Phụ đề", "Subtitles"),
    "producer.kind.other": ("Tệp", "File"),
    "producer.field.caption": ("Chú thích", "Caption"),
    "producer.field.credit": ("Tác giả ảnh / video", "Credit"),
    "producer.field.asset_copyright": ("Bản quyền riêng (nếu có)", "Own copyright (if any)"),
    "producer.field.focus": ("Điểm trọng tâm (khi cắt ảnh)", "Focal point (for crops)"),
    "producer.hint.focus": (
        "Bấm vào ảnh để chọn, hoặc nhập toạ độ từ 0 đến 1 (0 là trái/trên, 1 là phải/dưới).",
        "Click on the photo, or type numbers from 0 to 1 (0 is left/top, 1 is right/bottom)."),
    "producer.field.focus_x": ("Ngang (0–1)", "Across (0–1)"),
    "producer.field.focus_y": ("Dọc (0–1)", "Down (0–1)"),
    "producer.field.lower_third": ("Thông tin nhân vật trên hình", "Lower third"),
    "producer.field.lt_name": ("Họ tên", "Name"),
    "producer.field.lt_title": ("Chức danh", "Title"),
    "producer.field.lt_start": ("Hiện từ giây", "From second"),
    "producer.field.lt_end": ("Đến giây", "To second"),
    "producer.field.subtitles": ("Phụ đề", "Subtitles"),
    "producer.field.asset_presets": ("Bản xuất của tệp này", "This file's renditions"),
    "producer.field.follow_story": ("Như cả bài", "Same as the story"),
    "producer.replace": ("Thay tệp", "Replace"),
    "producer.replace_named": ("Thay tệp {name}", "Replace {name}"),
    "producer.remove": ("Bỏ", "Remove"),
    "producer.remove_named": ("Bỏ tệp {name}", "Remove {name}"),
    "producer.pause": ("Tạm dừng", "Pause"),
    "producer.pause_named": ("Tạm dừng tải {name}", "Pause uploading {name}"),
    "producer.resume": ("Tiếp tục", "Resume"),
    "producer.resume_named": ("Tiếp tục tải {name}", "Resume uploading {name}"),
    "producer.upload_of": ("Tải lên {name}", "Upload of {name}"),
    "producer.render_of": ("Xử lý {name}", "Processing of {name}"),
    "producer.upload.waiting": ("chưa tải lên", "not uploaded"),
    "producer.upload.queued": ("đang chờ tải", "waiting to upload"),
    "producer.upload.hashing": ("đang kiểm tra tệp", "checking the file"),
    "producer.upload.uploading": ("đang tải lên", "uploading"),
    "producer.upload.paused": ("tạm dừng", "paused"),
    "producer.upload.offline": ("mất kết nối", "connection lost"),
    "producer.upload.uploaded": ("đã tải lên", "uploaded"),
    "producer.upload.error": ("tải lên không được", "upload refused"),
    "producer.upload.missing": ("cần chọn lại tệp", "pick the file again"),
    "producer.upload.unused": ("chưa gắn với video nào", "not used by any clip"),
    "producer.upload.unreadable": ("Không đọc được tệp trên máy của bạn; hãy chọn lại tệp.",
                                   "The file cannot be read on your computer; pick it again."),
    "producer.pick_again": ("Tệp chưa lên máy chủ: bấm “Thay tệp” để chọn lại.",
                            "The file is not on the server: use “Replace” to pick it again."),
    "producer.hashing": ("đang tính mã kiểm tra {percent}%", "computing the checksum {percent}%"),
    "producer.speed": ("{speed}/giây", "{speed}/s"),
    "producer.time.seconds": ("{s} giây", "{s} s"),
    "producer.time.minutes": ("{m} phút {s} giây", "{m} min {s} s"),
    "producer.time.hours": ("{h} giờ {m} phút", "{h} h {m} min"),
    "producer.added": ("Đã thêm: {names}", "Added: {names}"),
    "producer.replaced": ("Đã chọn tệp mới cho {name}", "New file chosen for {name}"),
    "producer.removed": ("Đã bỏ {name}", "Removed {name}"),
    "producer.paused": ("Đã tạm dừng tải {name}", "Paused uploading {name}"),
    "producer.upload_done": ("Đã tải lên xong {name}", "Finished uploading {name}"),
    "producer.upload_failed": ("Không tải lên được {name}: {reason}", "Could not upload {name}: {reason}"),
    "producer.all_uploaded": ("Đã tải lên đủ các tệp", "Every file is uploaded"),
    "producer.job": ("Xử lý", "Processing"),
    "producer.version": ("Phiên bản {n}", "Version {n}"),
    "producer.job_complete": ("Mọi tệp đã xử lý xong.", "Every file is done."),
    "producer.job_partial": (
        "Một số tệp bị từ chối: hãy thay tệp rồi gửi lại; các tệp đã xong được giữ nguyên.",
        "Some files were refused: replace them and submit again; the files that are done are kept."),
    "producer.job_failed": ("Không tệp nào xử lý được: hãy xem lý do ở từng tệp.",
                            "No file could be processed: see each file's reason."),
    "producer.submit": ("Tải lên và gửi xử lý", "Upload and submit"),
    "producer.resubmit": ("Lưu và gửi xử lý lại", "Save and submit again"),
    "producer.save": ("Lưu bài và tải tệp lên", "Save and upload"),
    "producer.saved": ("Đã lưu bài", "Story saved"),
    "producer.submitted": ("Đã gửi xử lý", "Submitted"),
    "producer.busy.saving": ("Đang lưu…", "Saving…"),
    "producer.busy.uploading": ("Đang tải tệp lên…", "Uploading…"),
    "producer.busy.submitting": ("Đang gửi xử lý…", "Submitting…"),
    "producer.fix_fields": ("Chưa lưu được: hãy sửa các ô được đánh dấu.",
                            "Not saved: correct the marked fields."),
    "producer.fix_uploads": ("Chưa gửi xử lý: có tệp chưa tải lên được, xem ở từng tệp.",
                             "Not submitted: some files could not be uploaded; see each file."),
    "producer.err.required": ("Cần điền ô này.", "This is needed."),
    "producer.err.empty": ("Không được để trống.", "This cannot be empty."),
    "producer.err.no_files": ("Hãy thêm ít nhất một ảnh, video hoặc âm thanh.",
                              "Add at least one photo, clip or audio file."),
    "producer.err.no_presets": ("Hãy chọn ít nhất một bản xuất.", "Choose at least one rendition set."),
    "producer.err.too_long": ("Dài quá {n} ký tự.", "Longer than {n} characters."),
    "producer.err.slug": ("Chỉ dùng chữ thường không dấu, chữ số và dấu gạch ngang.",
                          "Use lower-case letters without diacritics, digits and dashes only."),
    "producer.err.datetime": ("Ngày giờ không hợp lệ.", "Not a valid date and time."),
    "producer.err.preset": ("Không có bản xuất “{name}”.", "There is no rendition set “{name}”."),
    "producer.err.end_after_start": ("Thời điểm kết thúc phải sau thời điểm bắt đầu.",
                                     "The end must come after the start."),
    "producer.err.not_negative": ("Không được nhỏ hơn 0.", "Cannot be below 0."),
    "producer.err.positive": ("Phải lớn hơn 0.", "Must be above 0."),
    "producer.err.focus": ("Hai toạ độ phải từ 0 đến 1.", "Both numbers must be from 0 to 1."),
    "producer.err.number": ("Hãy nhập một con số.", "Type a number."),
    "producer.err.characters": ("Có ký tự điều khiển hoặc ký tự lạ: hãy gõ lại đoạn chữ này.",
                                "Contains control or invalid characters: type the text again."),
    "producer.err.file_name": ("Tên tệp không hợp lệ.", "The file name is not valid."),
    "producer.err.id_taken": ("Mã bài này đã có: hãy đổi mã, ví dụ thêm ngày đăng vào cuối.",
                              "This story id is taken: change it, for instance add the date at the end."),
    "producer.err.invalid": ("Giá trị không hợp lệ.", "Not a valid value."),
    "producer.err.network": ("Không kết nối được máy chủ: hãy kiểm tra mạng rồi thử lại.",
                             "The server cannot be reached: check the network and try again."),
    "producer.problem.too-large": ("Tệp lớn hơn giới hạn cho phép.", "The file is larger than allowed."),
    "producer.problem.unsupported-media-type": (
        "Máy chủ không nhận kiểu dữ liệu này; hãy tải lại trang rồi thử lại.",
        "The server does not take this kind of data; reload the page and try again."),
    "producer.problem.checksum-mismatch": (
        "Tệp đã thay đổi trong lúc tải lên; hãy chọn lại tệp và tải lên lại.",
        "The file changed while it was uploading; pick it again and upload again."),
    "producer.problem.forbidden": ("Bạn không có quyền với bài này (bài của ban khác).",
                                   "You may not change this story (it belongs to another desk)."),
    "producer.problem.gone": ("Lượt tải lên đã hết hạn; hãy tải lên lại.",
                              "The upload expired; upload again."),
    "producer.problem.missing-files": ("Còn tệp chưa tải lên; hãy tải lên rồi gửi lại.",
                                       "Some files are not uploaded yet; upload them and submit again."),
    "producer.problem.unavailable": ("Hệ thống đang bận hoặc tạm dừng; hãy thử lại sau ít phút.",
                                     "The system is busy or paused; try again in a few minutes."),
    "producer.problem.other": ("Máy chủ từ chối yêu cầu (mã {status}).",
                               "The server refused the request ({status})."),
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
