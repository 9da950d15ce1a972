/* The producer's page (/): a story's form over the API.
 *
 * Save: POST /v1/stories with the story as the API's model (pipeline/model/story.py); a 422's
 * errors[].path are shown next to their fields. Upload: tus (tus-js-client) with the file's
 * SHA-256 computed here by hash-wasm from slices of the file, resumable after a dropped
 * connection and after a reload (fingerprints in localStorage). Submit: POST .../jobs with an
 * Idempotency-Key, then each asset's state follows the job's Server-Sent Events.
 * Every state-changing request carries the page's CSRF token (X-CSRF-Token).
 */
(function () {
  'use strict';

  const setup = JSON.parse(document.getElementById('producer-setup').textContent);
  const words = setup.words;
  const lang = setup.lang;
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : '';
  const locale = lang === 'en' ? 'en-GB' : 'vi-VN';
  const numbers = new Intl.NumberFormat(locale, {maximumFractionDigits: 1});

  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));

  function t(key, values) {
    let text = Object.prototype.hasOwnProperty.call(words.messages, key) ? words.messages[key] : key;
    for (const [name, value] of Object.entries(values || {})) {
      text = text.split('{' + name + '}').join(String(value));
    }
    return text;
  }
  const stateWord = (name) => words.states[name] || name;
  const reasonText = (code) => words.reasons[code] || words.render_failed.text;

  // -- kinds of files ------------------------------------------------------------------------------
  const EXTENSIONS = {
    image: ['jpg', 'jpeg', 'png', 'heic', 'heif', 'tif', 'tiff', 'webp', 'gif', 'avif', 'dng'],
    video: ['mp4', 'mov', 'mxf', 'm4v', 'mkv', 'webm', 'avi', 'mts', 'mpg', 'mpeg', '3gp'],
    audio: ['wav', 'mp3', 'm4a', 'aac', 'flac', 'ogg', 'opus', 'aif', 'aiff'],
    subtitles: ['srt', 'vtt'],
  };

  function kindOf(name, type) {
    const extension = (name.split('.').pop() || '').toLowerCase();
    for (const [kind, list] of Object.entries(EXTENSIONS)) {
      if (list.includes(extension)) return kind;
    }
    for (const kind of ['image', 'video', 'audio']) {
      if ((type || '').startsWith(kind + '/')) return kind;
    }
    return 'other';
  }

  // -- formatting ----------------------------------------------------------------------------------
  function formatBytes(bytes) {
    const units = ['B', 'KB', 'MB', 'GB', 'TB'];
    let value = bytes;
    let unit = 0;
    while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
    return numbers.format(value) + ' ' + units[unit];
  }

  function formatDuration(seconds) {
    const total = Math.max(0, Math.round(seconds));
    if (total < 60) return t('producer.time.seconds', {s: total});
    if (total < 3600) return t('producer.time.minutes', {m: Math.floor(total / 60), s: total % 60});
    return t('producer.time.hours', {h: Math.floor(total / 3600), m: Math.floor((total % 3600) / 60)});
  }

  function randomKey() {
    if (window.crypto && typeof window.crypto.randomUUID === 'function') return window.crypto.randomUUID();
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  // -- the story id from the title ------------------------------------------------------------------
  function slugify(text) {
    return text.normalize('NFD').replace(/[\u0300-\u036f]/g, '').replace(/[đĐ]/g, 'd').toLowerCase()
      .replace(/[^a-z0-9]+/g, '-').replace(/^-+/, '').slice(0, 100).replace(/-+$/, '');
  }

  // -- time zones -----------------------------------------------------------------------------------
  /** Minutes east of UTC that `zone` is at the instant `millis`. */
  function offsetAt(zone, millis) {
    const parts = new Intl.DateTimeFormat('en-US', {
      timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit'}).formatToParts(new Date(millis));
    const get = (type) => Number(parts.find((part) => part.type === type).value);
    const wall = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour') % 24, get('minute'), get('second'));
    return Math.round((wall - Math.floor(millis / 1000) * 1000) / 60000);
  }

  function offsetText(minutes) {
    const sign = minutes < 0 ? '-' : '+';
    const absolute = Math.abs(minutes);
    return sign + String(Math.floor(absolute / 60)).padStart(2, '0') + ':' + String(absolute % 60).padStart(2, '0');
  }

  /** "2023-09-12T21:15" in `zone` as ISO 8601 with its offset. */
  function zonedIso(local, zone) {
    const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(local);
    if (!match) return local;
    const seconds = match[6] || '00';
    const text = `${match[1]}-${match[2]}-${match[3]}T${match[4]}:${match[5]}:${seconds}`;
    if (zone.startsWith('offset:')) return text + zone.slice(7);
    const asUtc = Date.UTC(+match[1], +match[2] - 1, +match[3], +match[4], +match[5], +seconds);
    let instant = asUtc;
    for (let round = 0; round < 3; round += 1) instant = asUtc - offsetAt(zone, instant) * 60000;
    return text + offsetText(offsetAt(zone, instant));
  }

  function nowIn(zone) {
    const shifted = new Date(Date.now() + offsetAt(zone, Date.now()) * 60000);
    return shifted.toISOString().slice(0, 16);
  }

  // -- the page's parts -----------------------------------------------------------------------------
  const form = $('#story-form');
  const fields = {
    title: $('#f-title'), id: $('#f-id'), byline: $('#f-byline'), source: $('#f-source'),
    published: $('#f-published'), zone: $('#f-zone'), copyright: $('#f-copyright'), breaking: $('#f-breaking'),
  };
  const assetList = $('#assets');
  const subtitleList = $('#subtitle-files');
  const alertBox = $('#form-alert');
  const liveRegion = $('#announce');
  const submitButton = $('#submit');
  const saveButton = $('#save');

  const entries = [];      // the story's assets, in order
  const subtitles = [];    // its subtitle files
  let story = setup.story; // the story as the service has it (null: not saved yet)
  let idEdited = false;
  let busy = false;
  let events = null;
  let serial = 0;
  let lastJobStates = new Map();

  function announce(text) {
    liveRegion.textContent = '';
    window.setTimeout(() => { liveRegion.textContent = text; }, 50);
  }

  function showAlert(text, kind) {
    alertBox.className = kind === 'notice' ? 'notice' : 'alert';
    alertBox.setAttribute('role', kind === 'notice' ? 'status' : 'alert');
    alertBox.textContent = text;
    alertBox.hidden = !text;
  }

  function setBusy(on, text) {
    busy = on;
    submitButton.disabled = on;
    saveButton.disabled = on;
    $('#busy').textContent = on ? (text || t('common.loading')) : '';
    form.setAttribute('aria-busy', on ? 'true' : 'false');
  }

  // -- API -----------------------------------------------------------------------------------------
  function api(method, url, body, headers) {
    const sent = Object.assign({Accept: 'application/json'}, headers || {});
    if (method !== 'GET') sent['X-CSRF-Token'] = csrf;
    if (body !== undefined) sent['Content-Type'] = 'application/json';
    return fetch(url, {method, headers: sent, credentials: 'same-origin',
                       body: body === undefined ? undefined : JSON.stringify(body)});
  }

  async function problemOf(answer) {
    try { return await answer.json(); } catch (error) { return {}; }
  }

  /** What a producer reads for a problem document of the API. */
  function problemText(status, problem) {
    const code = (problem && problem.code) || '';
    const known = 'producer.problem.' + code;
    if (status === 401) return t('signin.expired');
    if (words.messages[known]) return t(known);
    const title = lang === 'en' ? problem.title : problem.title_vi;
    return title || t('producer.problem.other', {status});
  }

  const MESSAGES = [
    [/^Field required/i, 'producer.err.required'],
    [/at least 1 character/i, 'producer.err.empty'],
    [/at least 1 item/i, 'producer.err.no_files'],
    [/at most (\d+) characters?/i, 'producer.err.too_long', (m) => ({n: m[1]})],
    [/must be a slug/i, 'producer.err.slug'],
    [/needs a time zone|valid datetime|datetime/i, 'producer.err.datetime'],
    [/unknown preset '([^']+)'/i, 'producer.err.preset', (m) => ({name: m[1]})],
    [/end must be after start/i, 'producer.err.end_after_start'],
    [/greater than or equal to 0/i, 'producer.err.not_negative'],
    [/greater than 0/i, 'producer.err.positive'],
    [/between 0 and 1/i, 'producer.err.focus'],
    [/valid number|finite number/i, 'producer.err.number'],
    [/control characters|noncharacter|surrogate/i, 'producer.err.characters'],
    [/relative to the story file/i, 'producer.err.file_name'],
  ];

  function humanMessage(message) {
    for (const [pattern, key, values] of MESSAGES) {
      const match = pattern.exec(message || '');
      if (match) return t(key, values ? values(match) : undefined);
    }
    return t('producer.err.invalid');
  }

  // -- field errors ----------------------------------------------------------------------------------
  function clearErrors() {
    $$('.field-error').forEach((slot) => { slot.hidden = true; slot.textContent = ''; });
    $$('[aria-invalid="true"]').forEach((input) => input.removeAttribute('aria-invalid'));
    showAlert('');
  }

  function inputFor(slot) {
    const id = slot.id;
    return id ? $(`[aria-describedby~="${CSS.escape(id)}"]`) : null;
  }

  function showFieldError(slot, text) {
    slot.textContent = slot.hidden ? text : slot.textContent + ' ' + text;
    slot.hidden = false;
    const input = inputFor(slot);
    if (input) input.setAttribute('aria-invalid', 'true');
    return input;
  }

  function slotFor(path) {
    const parts = path.split('.');
    if (parts[0] === 'story') return $(`#err-story-${CSS.escape(parts[1] || '')}`);
    if (parts[0] === 'assets' && parts.length === 1) return $('#err-assets');
    if (parts[0] === 'assets' && /^\d+$/.test(parts[1])) {
      const entry = entries[Number(parts[1])];
      if (!entry) return null;
      const rest = parts.slice(2);
      while (rest.length) {
        const slot = $(`[data-error="${CSS.escape(rest.join('.'))}"]`, entry.node);
        if (slot) return slot;
        rest.pop();
      }
      return $('[data-error="caption"]', entry.node);
    }
    return null;
  }

  function showErrors(problem) {
    const loose = [];
    let first = null;
    for (const error of problem.errors || []) {
      const slot = slotFor(error.path || '');
      const text = humanMessage(error.message);
      if (!slot) { loose.push(text); continue; }
      const input = showFieldError(slot, text);
      first = first || input || slot;
    }
    showAlert(t('producer.fix_fields') + (loose.length ? ' ' + loose.join(' ') : ''));
    if (first && typeof first.focus === 'function') first.focus();
  }

  // -- the story as the API's model -----------------------------------------------------------------
  function storyPresets() {
    return $$('input[name="story-preset"]:checked').map((box) => box.value);
  }

  function numberOf(input) {
    const value = input.valueAsNumber;
    return Number.isFinite(value) ? value : (input.value.trim() === '' ? null : input.value);
  }

  function assetDocument(entry) {
    const node = entry.node;
    const value = (name) => $(`[data-field="${name}"]`, node).value;
    const doc = Object.assign({}, entry.original || {});
    doc.file = entry.name;
    doc.caption = value('caption');
    doc.credit = value('credit');
    if (value('copyright').trim()) doc.copyright = value('copyright'); else delete doc.copyright;
    if (entry.kind === 'image') {
      doc.focus = [numberOf($('[data-field="focus-x"]', node)), numberOf($('[data-field="focus-y"]', node))];
    }
    if (entry.kind === 'video') {
      if (value('lt-name').trim() || value('lt-title').trim()) {
        doc.lower_third = {name: value('lt-name'), title: value('lt-title'),
                           start: numberOf($('[data-field="lt-start"]', node)),
                           end: numberOf($('[data-field="lt-end"]', node))};
      } else {
        delete doc.lower_third;
      }
      if (value('subtitles')) doc.subtitles = value('subtitles'); else delete doc.subtitles;
    }
    if ($('[data-field="follow"]', node).checked) delete doc.presets;
    else doc.presets = $$('[data-preset]:checked', node).map((box) => box.dataset.preset);
    return doc;
  }

  function storyDocument() {
    const info = Object.assign({}, story ? story.story.story : {});
    info.id = fields.id.value.trim();
    info.title = fields.title.value;
    info.byline = fields.byline.value;
    info.source = fields.source.value;
    info.copyright = fields.copyright.value;
    info.published = fields.published.value ? zonedIso(fields.published.value, fields.zone.value) : '';
    info.language = info.language || 'vi';
    info.presets = storyPresets();
    info.breaking = fields.breaking.checked;
    return {story: info, assets: entries.map(assetDocument)};
  }

  function checkLocally() {
    let ok = true;
    const need = (slot, key) => { showFieldError(slot, t(key)); ok = false; };
    if (!fields.title.value.trim()) need($('#err-story-title'), 'producer.err.required');
    if (!fields.id.value.trim()) need($('#err-story-id'), 'producer.err.required');
    if (!fields.published.value) need($('#err-story-published'), 'producer.err.required');
    if (!entries.length) need($('#err-assets'), 'producer.err.no_files');
    if (!storyPresets().length) need($('#err-story-presets'), 'producer.err.no_presets');
    if (!ok) {
      showAlert(t('producer.fix_fields'));
      const invalid = $('[aria-invalid="true"]');
      if (invalid) invalid.focus();
    }
    return ok;
  }

  // -- cards -----------------------------------------------------------------------------------------
  const ERROR_OF = {caption: 'caption', credit: 'credit', copyright: 'copyright', 'focus-x': 'focus',
                    'focus-y': 'focus', 'lt-name': 'lower_third.name', 'lt-title': 'lower_third.title',
                    'lt-start': 'lower_third.start', 'lt-end': 'lower_third.end', subtitles: 'subtitles'};

  function makeAssetCard(entry) {
    const node = $('#asset-template').content.firstElementChild.cloneNode(true);
    serial += 1;
    const prefix = 'a' + serial;
    node.id = prefix;
    $$('[data-error]', node).forEach((slot) => { slot.id = `${prefix}-err-${slot.dataset.error.replace(/\./g, '-')}`; });
    $$('[data-field]', node).forEach((input) => {
      input.id = `${prefix}-${input.dataset.field}`;
      const error = ERROR_OF[input.dataset.field];
      if (error) input.setAttribute('aria-describedby', `${prefix}-err-${error.replace(/\./g, '-')}`);
    });
    $$('[data-for]', node).forEach((label) => { label.htmlFor = `${prefix}-${label.dataset.for}`; });
    $('[data-role="name"]', node).textContent = entry.name;
    $('[data-role="upload-progress"]', node).setAttribute('aria-label', t('producer.upload_of', {name: entry.name}));
    $('[data-role="render-progress"]', node).setAttribute('aria-label', t('producer.render_of', {name: entry.name}));
    $('[data-role="replace"]', node).setAttribute('aria-label', t('producer.replace_named', {name: entry.name}));
    $('[data-role="remove"]', node).setAttribute('aria-label', t('producer.remove_named', {name: entry.name}));
    $('[data-role="pause"]', node).setAttribute('aria-label', t('producer.pause_named', {name: entry.name}));
    $('[data-role="resume"]', node).setAttribute('aria-label', t('producer.resume_named', {name: entry.name}));
    $('[data-role="icon"]', node).textContent = t('producer.kind.' + entry.kind);
    $('[data-role="focus-box"]', node).hidden = entry.kind !== 'image';
    $('[data-role="clip-box"]', node).hidden = entry.kind !== 'video';
    for (const box of $$('[data-preset]', node)) box.checked = storyPresets().includes(box.dataset.preset);
    entry.node = node;
    fillSubtitleChoices(entry);
    wireCard(entry);
    return node;
  }

  function wireCard(entry) {
    const node = entry.node;
    const follow = $('[data-field="follow"]', node);
    follow.addEventListener('change', () => { $('[data-role="asset-presets"]', node).hidden = follow.checked; });
    $('[data-role="remove"]', node).addEventListener('click', () => removeEntry(entry));
    const replaceInput = $('[data-role="replace-input"]', node);
    $('[data-role="replace"]', node).addEventListener('click', () => replaceInput.click());
    replaceInput.addEventListener('change', () => {
      if (replaceInput.files && replaceInput.files[0]) replaceFile(entry, replaceInput.files[0]);
      replaceInput.value = '';
    });
    $('[data-role="pause"]', node).addEventListener('click', () => pause(entry));
    $('[data-role="resume"]', node).addEventListener('click', () => resume(entry));
    const preview = $('[data-role="preview"]', node);
    const image = $('[data-role="image"]', node);
    preview.addEventListener('click', (event) => {
      if (entry.kind !== 'image' || image.hidden) return;
      const box = image.getBoundingClientRect();
      if (!box.width || !box.height) return;
      const x = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
      const y = Math.min(1, Math.max(0, (event.clientY - box.top) / box.height));
      $('[data-field="focus-x"]', node).value = x.toFixed(2);
      $('[data-field="focus-y"]', node).value = y.toFixed(2);
      placeMarker(entry);
    });
    for (const name of ['focus-x', 'focus-y']) $(`[data-field="${name}"]`, node).addEventListener('input', () => placeMarker(entry));
    image.addEventListener('load', () => { image.hidden = false; $('[data-role="icon"]', node).hidden = true; placeMarker(entry); });
    image.addEventListener('error', () => { image.hidden = true; $('[data-role="marker"]', node).hidden = true; $('[data-role="icon"]', node).hidden = false; });
  }

  function placeMarker(entry) {
    const node = entry.node;
    const image = $('[data-role="image"]', node);
    const marker = $('[data-role="marker"]', node);
    const x = $('[data-field="focus-x"]', node).valueAsNumber;
    const y = $('[data-field="focus-y"]', node).valueAsNumber;
    if (entry.kind !== 'image' || image.hidden || !Number.isFinite(x) || !Number.isFinite(y)) { marker.hidden = true; return; }
    marker.style.left = (image.offsetLeft + Math.min(1, Math.max(0, x)) * image.offsetWidth) + 'px';
    marker.style.top = (image.offsetTop + Math.min(1, Math.max(0, y)) * image.offsetHeight) + 'px';
    marker.hidden = false;
  }

  function setPreview(entry, url) {
    const image = $('[data-role="image"]', entry.node);
    if (entry.previewUrl && entry.previewUrl.startsWith('blob:')) URL.revokeObjectURL(entry.previewUrl);
    entry.previewUrl = url;
    if (url) image.src = url;
  }

  function fillFacts(entry) {
    const facts = [t('producer.kind.' + entry.kind)];
    if (entry.file) facts.push(formatBytes(entry.file.size));
    else if (entry.bytes) facts.push(formatBytes(entry.bytes));
    const slot = $('[data-role="facts"]', entry.node);
    if (slot) slot.textContent = facts.join(' · ');
  }

  function fillSubtitleChoices(entry) {
    const select = $('[data-field="subtitles"]', entry.node);
    if (!select) return;
    const chosen = select.value || (entry.original && entry.original.subtitles) || '';
    while (select.options.length > 1) select.remove(1);
    for (const item of subtitles) {
      const option = document.createElement('option');
      option.value = item.name;
      option.textContent = item.name;
      select.append(option);
    }
    select.value = subtitles.some((item) => item.name === chosen) ? chosen : '';
  }

  function refreshLists() {
    $('#no-files').hidden = entries.length > 0 || subtitles.length > 0;
    $('#subtitles-box').hidden = subtitles.length === 0;
    entries.forEach(fillSubtitleChoices);
  }

  function makeSubtitleRow(entry) {
    const node = $('#subtitle-template').content.firstElementChild.cloneNode(true);
    $('[data-role="name"]', node).textContent = entry.name;
    $('[data-role="remove"]', node).setAttribute('aria-label', t('producer.remove_named', {name: entry.name}));
    $('[data-role="remove"]', node).addEventListener('click', () => removeEntry(entry));
    entry.node = node;
    return node;
  }

  // -- adding, replacing and removing files ----------------------------------------------------------
  function newEntry(name, kind, file, original, uploaded) {
    return {name, kind, file, original, uploaded: !!uploaded, state: uploaded ? 'uploaded' : 'waiting',
            tus: null, waiters: [], samples: [], previewUrl: '', bytes: 0};
  }

  function addFiles(files) {
    const added = [];
    for (const file of files) {
      const name = file.name.normalize('NFC');
      const existing = entries.concat(subtitles).find((entry) => entry.name === name);
      if (existing) { replaceFile(existing, file); continue; }
      const kind = kindOf(name, file.type);
      const entry = newEntry(name, kind, file, null, false);
      if (kind === 'subtitles') {
        subtitles.push(entry);
        subtitleList.append(makeSubtitleRow(entry));
      } else {
        entries.push(entry);
        assetList.append(makeAssetCard(entry));
        if (kind === 'image') setPreview(entry, URL.createObjectURL(file));
        fillFacts(entry);
      }
      showUpload(entry);
      added.push(name);
    }
    refreshLists();
    if (added.length) announce(t('producer.added', {names: added.join(', ')}));
    if (story && added.length) save().then((saved) => { if (saved) startUploads(); });
  }

  function replaceFile(entry, file) {
    stopUpload(entry);
    entry.file = file;
    entry.uploaded = false;
    entry.state = 'waiting';
    entry.error = '';
    if (entry.node && entry.kind === 'image') setPreview(entry, URL.createObjectURL(file));
    if (entry.kind !== 'subtitles') {
      fillFacts(entry);
      showJobAsset(entry, null);
    }
    showUpload(entry);
    announce(t('producer.replaced', {name: entry.name}));
    if (story && story.files.some((item) => item.file === entry.name)) upload(entry).catch(() => {});
  }

  function removeEntry(entry) {
    stopUpload(entry);
    const list = entry.kind === 'subtitles' ? subtitles : entries;
    const at = list.indexOf(entry);
    if (at >= 0) list.splice(at, 1);
    if (entry.previewUrl && entry.previewUrl.startsWith('blob:')) URL.revokeObjectURL(entry.previewUrl);
    entry.node.remove();
    refreshLists();
    announce(t('producer.removed', {name: entry.name}));
    const focusTarget = $('#f-files');
    if (focusTarget) focusTarget.focus();
  }

  // -- uploads ---------------------------------------------------------------------------------------
  const LANES = 3;
  let running = 0;
  const queue = [];
  const hashes = new WeakMap();

  function acquire() {
    if (running < LANES) { running += 1; return Promise.resolve(); }
    return new Promise((resolve) => queue.push(resolve));
  }

  function release() {
    const next = queue.shift();
    if (next) next(); else running = Math.max(0, running - 1);
  }

  async function sha256Of(entry, file) {
    if (hashes.has(file)) return hashes.get(file);
    const hasher = await hashwasm.createSHA256();
    hasher.init();
    const step = 4 << 20;
    for (let at = 0; at < file.size; at += step) {
      const chunk = new Uint8Array(await file.slice(at, at + step).arrayBuffer());
      hasher.update(chunk);
      entry.hashed = Math.min(file.size, at + step);
      showUpload(entry);
    }
    const digest = hasher.digest('hex');
    hashes.set(file, digest);
    return digest;
  }

  /** The entry uploaded: resolves when the service has the whole file, rejects on a refusal. */
  function upload(entry) {
    if (entry.uploaded) return Promise.resolve();
    if (!entry.file) {
      entry.state = 'missing';
      showUpload(entry);
      return Promise.reject(new Error('missing'));
    }
    const promise = new Promise((resolve, reject) => entry.waiters.push({resolve, reject}));
    if (!entry.tus && entry.state !== 'hashing' && entry.state !== 'queued') begin(entry);
    return promise;
  }

  function settle(entry, error) {
    const waiters = entry.waiters.splice(0);
    for (const waiter of waiters) {
      if (error) waiter.reject(error); else waiter.resolve();
    }
  }

  async function begin(entry) {
    const file = entry.file;
    entry.state = 'queued';
    entry.error = '';
    showUpload(entry);
    await acquire();
    if (entry.file !== file || entry.state !== 'queued') { release(); return; }
    entry.state = 'hashing';
    entry.hashed = 0;
    showUpload(entry);
    let sha;
    try {
      sha = await sha256Of(entry, file);
    } catch (error) {
      release();
      fail(entry, t('producer.upload.unreadable'));
      return;
    }
    if (entry.file !== file) { release(); return; }
    const storyId = fields.id.value.trim();
    const upload = new tus.Upload(file, {
      endpoint: window.location.origin + '/v1/uploads',
      chunkSize: setup.chunk_bytes,
      retryDelays: [0, 1000, 3000, 5000, 10000],
      headers: {'X-CSRF-Token': csrf},
      metadata: {story: storyId, file: entry.name, sha256: sha},
      fingerprint: (source) => Promise.resolve(
        ['storymedia', storyId, entry.name, source.size, source.lastModified, sha].join('|')),
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      onProgress: (sent, total) => progress(entry, sent, total),
      onSuccess: () => {
        if (entry.tus !== upload) return;
        entry.tus = null;
        entry.uploaded = true;
        entry.state = 'uploaded';
        entry.sha256 = sha;
        release();
        showUpload(entry);
        announce(t('producer.upload_done', {name: entry.name}));
        settle(entry, null);
      },
      onError: (error) => { if (entry.tus === upload) uploadError(entry, upload, error); },
    });
    entry.tus = upload;
    entry.samples = [];
    try {
      const previous = await upload.findPreviousUploads();
      if (previous.length) upload.resumeFromPreviousUpload(previous[0]);
    } catch (error) {
      // no storage (private window): a new upload
    }
    if (entry.tus !== upload) return;
    entry.state = 'uploading';
    showUpload(entry);
    upload.start();
  }

  function progress(entry, sent, total) {
    const now = performance.now();
    entry.samples.push([now, sent]);
    while (entry.samples.length > 2 && now - entry.samples[0][0] > 5000) entry.samples.shift();
    entry.sent = sent;
    entry.total = total;
    showUpload(entry);
  }

  function uploadError(entry, upload, error) {
    const response = error && error.originalResponse;
    const status = response ? response.getStatus() : 0;
    if (!status || status >= 500 || status === 409 || status === 423) {
      // The connection dropped (or the service is away) and the retries ran out: wait for it,
      // then go on from the service's offset.
      entry.state = 'offline';
      release();
      showUpload(entry);
      const again = () => {
        window.removeEventListener('online', again);
        window.clearTimeout(entry.retryTimer);
        if (entry.tus === upload && entry.state === 'offline') resume(entry);
      };
      window.addEventListener('online', again);
      entry.retryTimer = window.setTimeout(again, navigator.onLine ? 10000 : 60000);
      return;
    }
    let problem = {};
    try { problem = JSON.parse(response.getBody() || '{}'); } catch (ignored) { problem = {}; }
    release();
    entry.tus = null;
    fail(entry, problemText(status, problem), problem.detail || '');
  }

  function fail(entry, text, detail) {
    entry.state = 'error';
    entry.error = text;
    entry.detail = detail || '';
    showUpload(entry);
    announce(t('producer.upload_failed', {name: entry.name, reason: text}));
    settle(entry, new Error(text));
  }

  function pause(entry) {
    if (!entry.tus || entry.state !== 'uploading') return;
    entry.state = 'paused';
    entry.tus.abort();
    release();
    showUpload(entry);
    announce(t('producer.paused', {name: entry.name}));
  }

  async function resume(entry) {
    if (!entry.tus || !['paused', 'offline'].includes(entry.state)) return;
    const upload = entry.tus;
    entry.state = 'queued';
    showUpload(entry);
    await acquire();
    if (entry.tus !== upload) { release(); return; }
    entry.state = 'uploading';
    entry.samples = [];
    showUpload(entry);
    upload.start();
  }

  function stopUpload(entry) {
    if (entry.tus) {
      const upload = entry.tus;
      entry.tus = null;
      if (entry.state === 'uploading') release();
      upload.abort(true).catch(() => {});
    }
    window.clearTimeout(entry.retryTimer);
    settle(entry, new Error('replaced'));
  }

  const UPLOAD_CLASS = {waiting: '', unused: 'paused', queued: 'pending', hashing: 'probing', uploading: 'uploading', paused: 'paused',
                        offline: 'paused', uploaded: 'uploaded', error: 'failed', missing: 'failed'};

  function showUpload(entry) {
    const node = entry.node;
    if (!node) return;
    const badge = $('[data-role="upload-state"]', node);
    badge.className = 'state state-' + (UPLOAD_CLASS[entry.state] || 'pending');
    badge.textContent = t('producer.upload.' + entry.state);
    const text = $('[data-role="upload-text"]', node);
    const bar = $('[data-role="upload-progress"]', node);
    let line = '';
    let percent = 0;
    if (entry.state === 'hashing' && entry.file) {
      percent = entry.file.size ? Math.floor(100 * (entry.hashed || 0) / entry.file.size) : 100;
      line = t('producer.hashing', {percent});
      percent = 0;
    } else if (['uploading', 'paused', 'offline', 'queued'].includes(entry.state) && entry.total) {
      percent = Math.floor(100 * entry.sent / entry.total);
      line = `${formatBytes(entry.sent)} / ${formatBytes(entry.total)} (${percent}%)`;
      const samples = entry.samples;
      if (entry.state === 'uploading' && samples.length > 1) {
        const [t0, b0] = samples[0];
        const [t1, b1] = samples[samples.length - 1];
        const speed = t1 > t0 ? (b1 - b0) / ((t1 - t0) / 1000) : 0;
        if (speed > 0) {
          line += ' · ' + t('producer.speed', {speed: formatBytes(speed)});
          line += ' · ' + t('common.seconds_left', {time: formatDuration((entry.total - entry.sent) / speed)});
        }
      }
      if (entry.state === 'offline') line += ' · ' + t('common.offline');
    } else if (entry.state === 'uploaded') {
      percent = 100;
      line = entry.file ? formatBytes(entry.file.size) : '';
    } else if (entry.state === 'missing') {
      line = t('producer.pick_again');
    }
    if (bar) {
      bar.value = percent;
      bar.closest('[data-role="upload"]').hidden = entry.state === 'uploaded';
    }
    text.textContent = line;
    const pauseButton = $('[data-role="pause"]', node);
    const resumeButton = $('[data-role="resume"]', node);
    if (pauseButton) pauseButton.hidden = entry.state !== 'uploading';
    if (resumeButton) resumeButton.hidden = !['paused', 'offline'].includes(entry.state);
    const errorBox = $('[data-role="upload-error"]', node);
    errorBox.hidden = entry.state !== 'error';
    errorBox.textContent = entry.state === 'error' ? entry.error : '';
    if (entry.state === 'error' && entry.detail) {
      const more = document.createElement('span');
      more.className = 'muted small detail';
      more.lang = 'en';
      more.textContent = ' (' + entry.detail + ')';
      errorBox.append(more);
    }
  }

  /** Subtitle files a clip of the story uses (the service takes no other file). */
  function usedSubtitles() {
    const chosen = new Set(entries.filter((entry) => entry.kind === 'video')
      .map((entry) => $('[data-field="subtitles"]', entry.node).value).filter(Boolean));
    for (const entry of subtitles) {
      if (!chosen.has(entry.name) && !entry.uploaded && !['uploading', 'hashing', 'queued'].includes(entry.state)) {
        entry.state = 'unused';
        showUpload(entry);
      } else if (entry.state === 'unused') {
        entry.state = 'waiting';
        showUpload(entry);
      }
    }
    return subtitles.filter((entry) => chosen.has(entry.name));
  }

  function startUploads() {
    return Promise.allSettled(entries.concat(usedSubtitles()).map(upload));
  }

  function uploading() {
    return entries.concat(subtitles).some((entry) => ['uploading', 'hashing', 'queued', 'offline'].includes(entry.state));
  }

  // -- saving ------------------------------------------------------------------------------------------
  async function save() {
    clearErrors();
    if (!checkLocally()) return false;
    const doc = storyDocument();
    let answer;
    try {
      if (!story) {
        const existing = await api('GET', `/v1/stories/${encodeURIComponent(doc.story.id)}`);
        if (existing.status !== 404) {
          showFieldError($('#err-story-id'), t('producer.err.id_taken'));
          showAlert(t('producer.fix_fields'));
          fields.id.focus();
          return false;
        }
      }
      answer = await api('POST', '/v1/stories', doc);
    } catch (error) {
      showAlert(t('producer.err.network'));
      return false;
    }
    if (answer.status === 200 || answer.status === 201) {
      story = await answer.json();
      fields.id.readOnly = true;
      $('#hint-id').textContent = t('producer.hint.id_fixed');
      const here = '/?story=' + encodeURIComponent(story.id);
      if (window.location.pathname + window.location.search !== here) window.history.replaceState(null, '', here);
      $('#page-heading').textContent = story.title;
      listOnDesk(story);
      document.title = document.title.replace(/^[^·]*·/, story.title + ' ·');
      announce(t('producer.saved'));
      return true;
    }
    const problem = await problemOf(answer);
    if (answer.status === 422 && (problem.errors || []).length) showErrors(problem);
    else showAlert(problemText(answer.status, problem));
    return false;
  }

  /** The saved story in the desk's list beside the form (first, as the newest). */
  function listOnDesk(saved) {
    const list = $('#desk-list');
    const href = '/?story=' + encodeURIComponent(saved.id);
    let item = $$('a', list).find((link) => link.getAttribute('href') === href);
    if (!item) {
      const row = document.createElement('li');
      item = document.createElement('a');
      item.href = href;
      row.append(item);
      list.prepend(row);
    }
    item.textContent = saved.title;
    item.setAttribute('aria-current', 'page');
    list.hidden = false;
    $('#desk-empty').hidden = true;
  }

  // -- submitting and following the job -----------------------------------------------------------------
  async function submitJob() {
    const key = randomKey();
    let answer = null;
    for (let attempt = 0; attempt < 4 && !answer; attempt += 1) {
      try {
        answer = await api('POST', `/v1/stories/${encodeURIComponent(story.id)}/jobs`, undefined,
                           {'Idempotency-Key': key});
      } catch (error) {   // the same key again: the service answers the job it made, never a second one
        await new Promise((resolve) => window.setTimeout(resolve, 1000 * (attempt + 1)));
      }
    }
    if (!answer) { showAlert(t('producer.err.network')); return; }
    const problem = answer.ok ? null : await problemOf(answer);
    if (problem) {
      if (problem.code === 'missing-files') {
        for (const error of problem.errors || []) {
          const entry = entries.concat(subtitles).find((item) => item.name === error.message);
          if (entry) { entry.uploaded = false; entry.state = entry.file ? 'waiting' : 'missing'; showUpload(entry); }
        }
      }
      showAlert(problemText(answer.status, problem));
      return;
    }
    const job = await answer.json();
    announce(t('producer.submitted'));
    follow(job.id);
  }

  function follow(jobId) {
    if (events) events.close();
    $('#job').hidden = false;
    events = new EventSource(`/v1/jobs/${encodeURIComponent(jobId)}/events`);
    events.addEventListener('job', (event) => {
      let status;
      try { status = JSON.parse(event.data); } catch (error) { return; }
      showStatus(status);
      if (status.final) {
        events.close();
        events = null;
        finished(status);
      }
    });
    events.addEventListener('error', () => {
      if (events && events.readyState === EventSource.CLOSED) {   // refused: ask now and then instead
        events = null;
        poll(jobId);
      }
    });
  }

  async function poll(jobId) {
    try {
      const answer = await api('GET', `/v1/jobs/${encodeURIComponent(jobId)}`);
      if (answer.ok) {
        const status = await answer.json();
        showStatus(status);
        if (status.final) { finished(status); return; }
      }
    } catch (error) {
      // offline: ask again below
    }
    window.setTimeout(() => poll(jobId), 3000);
  }

  function shownState(asset) {
    if (asset.state === 'failed' && asset.code && words.reasons[asset.code]) return 'refused';
    return asset.state;
  }

  function showJobAsset(entry, asset) {
    const node = entry.node;
    if (!node || entry.kind === 'subtitles') return;
    const badge = $('[data-role="job-state"]', node);
    const render = $('[data-role="render"]', node);
    const reason = $('[data-role="reason"]', node);
    node.classList.remove('is-done', 'is-refused');
    if (!asset) {
      badge.hidden = true;
      render.hidden = true;
      $('[data-role="replace"]', node).classList.remove('primary');
      return;
    }
    const state = shownState(asset);
    badge.hidden = false;
    badge.className = 'state state-' + state;
    badge.textContent = stateWord(state);
    const final = ['done', 'failed', 'canceled'].includes(asset.state);
    const failed = asset.state === 'failed';
    render.hidden = final && !failed;
    const bar = $('[data-role="render-progress"]', node);
    bar.hidden = final;
    bar.value = Math.round(asset.progress || 0);
    let line = final ? '' : `${stateWord(state)} · ${Math.round(asset.progress || 0)}%`;
    if (asset.state === 'rendering' && asset.eta_seconds) line += ' · ' + t('common.seconds_left', {time: formatDuration(asset.eta_seconds)});
    const text = $('[data-role="render-text"]', node);
    text.textContent = line;
    text.hidden = !line;
    reason.hidden = !failed;
    reason.textContent = failed ? reasonText(asset.code) : '';
    $('[data-role="replace"]', node).classList.toggle('primary', failed);
    if (state === 'done') node.classList.add('is-done');
    if (failed) node.classList.add('is-refused');
  }

  function showStatus(status) {
    const changes = [];
    for (const asset of status.assets) {
      const entry = entries.find((item) => item.name === asset.file);
      if (!entry) continue;
      if (entry.file && !entry.uploaded) continue;   // replaced since: the old result is not this file's
      showJobAsset(entry, asset);
      const state = shownState(asset);
      if (lastJobStates.get(asset.file) !== state) {
        lastJobStates.set(asset.file, state);
        changes.push(`${asset.file}: ${stateWord(state)}` + (asset.state === 'failed' ? ` (${reasonText(asset.code)})` : ''));
      }
    }
    const badge = $('#job-state');
    badge.className = 'state state-' + status.state;
    badge.textContent = stateWord(status.state);
    $('#job-progress').value = Math.round(status.progress || 0);
    $('#job-progress-text').textContent = `${Math.round(status.progress || 0)}%`;
    $('#job-version').textContent = status.manifest_version ? t('producer.version', {n: status.manifest_version}) : '';
    $('#job').dataset.state = status.state;
    $('#job').dataset.version = status.manifest_version || '';
    if (changes.length) announce(changes.join('; '));
  }

  function finished(status) {
    submitButton.textContent = t('producer.resubmit');
    const note = $('#job-note');
    if (status.state === 'complete') note.textContent = t('producer.job_complete');
    else if (status.state === 'partial') note.textContent = t('producer.job_partial');
    else if (status.state === 'failed') note.textContent = t('producer.job_failed');
    else note.textContent = '';
    announce(stateWord(status.state) + '. ' + note.textContent);
    showManifestPreviews();
  }

  async function showManifestPreviews() {
    if (!story) return;
    let manifest;
    try {
      const answer = await api('GET', `/v1/stories/${encodeURIComponent(story.id)}/manifest?presign=1`);
      if (!answer.ok) return;
      manifest = await answer.json();
    } catch (error) {
      return;
    }
    for (const asset of manifest.assets || []) {
      const entry = entries[(asset.order || 0) - 1];
      if (!entry || entry.kind === 'subtitles' || (entry.kind === 'image' && entry.file)) continue;
      const pictures = (asset.renditions || []).filter((item) => item.mime === 'image/jpeg' && item.width);
      pictures.sort((a, b) => a.width - b.width);
      const picked = pictures.find((item) => item.width >= 320) || pictures[0];
      if (picked && picked.url) setPreview(entry, picked.url);
    }
  }

  async function onSubmit(event) {
    event.preventDefault();
    if (busy) return;
    setBusy(true, t('producer.busy.saving'));
    try {
      if (!await save()) return;
      setBusy(true, t('producer.busy.uploading'));
      const results = await startUploads();
      if (results.some((result) => result.status === 'rejected')) {
        showAlert(t('producer.fix_uploads'));
        return;
      }
      setBusy(true, t('producer.busy.submitting'));
      lastJobStates = new Map();
      await submitJob();
    } finally {
      setBusy(false);
    }
  }

  async function onSave() {
    if (busy) return;
    setBusy(true, t('producer.busy.saving'));
    try {
      if (await save()) {
        const results = startUploads();
        setBusy(false);
        const settled = await results;
        if (settled.every((result) => result.status === 'fulfilled')) announce(t('producer.all_uploaded'));
      }
    } finally {
      setBusy(false);
    }
  }

  // -- an opened story ------------------------------------------------------------------------------------
  function parsePublished(text) {
    const match = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$/.exec(text || '');
    if (!match) return {local: '', offset: ''};
    return {local: match[1], offset: match[2] === 'Z' ? '+00:00' : (match[2] || '')};
  }

  function chooseZone(local, offset) {
    const zones = Array.from(fields.zone.options, (option) => option.value);
    for (const zone of zones) {
      if (!zone.startsWith('offset:') && zonedIso(local, zone).endsWith(offset)) return zone;
    }
    const option = document.createElement('option');
    option.value = 'offset:' + offset;
    option.textContent = 'UTC' + offset;
    fields.zone.append(option);
    return option.value;
  }

  function fillAsset(entry, asset) {
    const node = entry.node;
    const set = (name, value) => { const input = $(`[data-field="${name}"]`, node); if (input && value !== undefined && value !== null) input.value = value; };
    set('caption', asset.caption);
    set('credit', asset.credit);
    set('copyright', asset.copyright);
    if (asset.focus) { set('focus-x', asset.focus[0]); set('focus-y', asset.focus[1]); }
    if (asset.lower_third) {
      set('lt-name', asset.lower_third.name);
      set('lt-title', asset.lower_third.title);
      set('lt-start', asset.lower_third.start);
      set('lt-end', asset.lower_third.end);
    }
    if (asset.presets) {
      $('[data-field="follow"]', node).checked = false;
      $('[data-role="asset-presets"]', node).hidden = false;
      for (const box of $$('[data-preset]', node)) box.checked = asset.presets.includes(box.dataset.preset);
    }
  }

  async function hydrate(opened) {
    const info = opened.story.story;
    fields.title.value = info.title || '';
    fields.id.value = info.id;
    fields.id.readOnly = true;
    $('#hint-id').textContent = t('producer.hint.id_fixed');
    idEdited = true;
    fields.byline.value = info.byline || '';
    fields.source.value = info.source || '';
    fields.copyright.value = info.copyright || '';
    fields.breaking.checked = !!info.breaking;
    const published = parsePublished(info.published);
    fields.published.value = published.local;
    if (published.offset) fields.zone.value = chooseZone(published.local, published.offset);
    for (const box of $$('input[name="story-preset"]')) box.checked = (info.presets || []).includes(box.value);
    const files = new Map((opened.files || []).map((item) => [item.file, item]));
    const subtitleNames = [];
    for (const asset of opened.story.assets) {
      if (asset.subtitles && !subtitleNames.includes(asset.subtitles)) subtitleNames.push(asset.subtitles);
    }
    for (const name of subtitleNames) {
      const known = files.get(name);
      const entry = newEntry(name, 'subtitles', null, null, known && known.uploaded);
      if (!entry.uploaded) entry.state = 'missing';
      subtitles.push(entry);
      subtitleList.append(makeSubtitleRow(entry));
      showUpload(entry);
    }
    for (const asset of opened.story.assets) {
      const known = files.get(asset.file);
      const entry = newEntry(asset.file, kindOf(asset.file, ''), null, asset, known && known.uploaded);
      if (!entry.uploaded) entry.state = 'missing';
      entry.bytes = known && known.bytes;
      entries.push(entry);
      assetList.append(makeAssetCard(entry));
      fillAsset(entry, asset);
      fillFacts(entry);
      showUpload(entry);
    }
    refreshLists();
    if (opened.latest_job) {
      submitButton.textContent = t('producer.resubmit');
      try {
        const answer = await api('GET', `/v1/jobs/${encodeURIComponent(opened.latest_job)}`);
        if (answer.ok) {
          const status = await answer.json();
          $('#job').hidden = false;
          showStatus(status);
          if (status.final) showManifestPreviews(); else follow(status.id);
        }
      } catch (error) {
        // the list of files still works; the state shows on the next submit
      }
    }
  }

  // -- start ------------------------------------------------------------------------------------------------
  function start() {
    fields.title.addEventListener('input', () => {
      if (!idEdited && !fields.id.readOnly) fields.id.value = slugify(fields.title.value);
    });
    fields.id.addEventListener('input', () => { idEdited = fields.id.value.trim() !== ''; });
    for (const box of $$('input[name="story-preset"]')) {
      box.addEventListener('change', () => {
        for (const entry of entries) {
          if ($('[data-field="follow"]', entry.node).checked) {
            for (const own of $$('[data-preset]', entry.node)) own.checked = storyPresets().includes(own.dataset.preset);
          }
        }
      });
    }
    const picker = $('#f-files');
    picker.addEventListener('change', () => { addFiles(Array.from(picker.files || [])); picker.value = ''; });
    const drop = $('#drop');
    drop.addEventListener('dragover', (event) => { event.preventDefault(); drop.classList.add('over'); });
    drop.addEventListener('dragleave', () => drop.classList.remove('over'));
    drop.addEventListener('drop', (event) => {
      event.preventDefault();
      drop.classList.remove('over');
      if (event.dataTransfer && event.dataTransfer.files) addFiles(Array.from(event.dataTransfer.files));
    });
    form.addEventListener('submit', onSubmit);
    saveButton.addEventListener('click', onSave);
    window.addEventListener('beforeunload', (event) => {
      if (uploading()) { event.preventDefault(); event.returnValue = ''; }
    });
    window.addEventListener('resize', () => entries.forEach(placeMarker));
    if (story) {
      hydrate(story);
    } else {
      fields.published.value = nowIn(fields.zone.value);
      for (const box of $$('input[name="story-preset"]')) box.checked = ['web', 'broadcast', 'social'].includes(box.value);
    }
    refreshLists();
    form.dataset.ready = 'true';
  }

  start();
}());
