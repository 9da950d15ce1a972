// The web editor's page: plays each clip (HLS through hls.js where Media Source Extensions exist,
// the browser's own HLS where it has it, the MP4 otherwise) and copies links and HTML snippets.
// No inline script: the page's words come from data- attributes, the HLS objects' URLs from a
// JSON data block per clip.
(function () {
  'use strict';

  var root = document.getElementById('editor');
  if (!root) return;
  var announce = document.getElementById('announce');

  function say(text) {
    if (!announce) return;
    announce.textContent = '';
    window.setTimeout(function () { announce.textContent = text; }, 50);
  }

  // --- copying ---------------------------------------------------------------------------------

  function selectText(element) {
    if (element.select) {            // an <input>
      element.focus();
      element.select();
      return;
    }
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    element.focus();
  }

  function copied(button) {
    var label = button.textContent;
    button.textContent = root.dataset.copied;
    button.classList.add('done');
    say(root.dataset.copied);
    window.setTimeout(function () {
      button.textContent = label;
      button.classList.remove('done');
    }, 2000);
  }

  function fallback(button, source) {
    // No clipboard API (an insecure origin, a refused permission): select the text so that
    // Ctrl+C (or the phone's copy menu) takes it, and say so.
    selectText(source);
    var copiedByCommand = false;
    try {
      copiedByCommand = document.execCommand && document.execCommand('copy');
    } catch (error) {
      copiedByCommand = false;
    }
    if (copiedByCommand) {
      copied(button);
    } else {
      say(root.dataset.copyFailed);
      button.setAttribute('title', root.dataset.copyFailed);
    }
  }

  function copy(button) {
    var source = button.dataset.copy === 'url'
      ? button.parentNode.querySelector('input.url')
      : button.closest('.snippet').querySelector('pre code');
    if (!source) return;
    var text = source.value !== undefined ? source.value : source.textContent;
    root.dataset.lastCopy = text;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { copied(button); },
        function () { fallback(button, source); });
    } else {
      fallback(button, source);
    }
  }

  root.addEventListener('click', function (event) {
    var button = event.target.closest('button.copy');
    if (button) copy(button);
  });

  // --- playing ---------------------------------------------------------------------------------

  function urlsOf(video) {
    var block = document.getElementById(video.dataset.urls || '');
    if (!block) return {};
    try {
      return JSON.parse(block.textContent) || {};
    } catch (error) {
      return {};
    }
  }

  function pathOf(url) {
    try {
      return decodeURIComponent(new URL(url, window.location.href).pathname);
    } catch (error) {
      return '';
    }
  }

  function note(video, text) {
    var place = video.parentNode.querySelector('.player-note');
    if (place) place.textContent = text;
  }

  function playMp4(video, why) {
    if (!video.dataset.mp4) {
      video.dataset.player = 'none';
      note(video, root.dataset.unsupported);
      return;
    }
    if (why) note(video, root.dataset.fallback);
    video.dataset.player = 'mp4';
    video.src = video.dataset.mp4;
    video.load();
  }

  function playHlsJs(video) {
    // A presigned playlist names its parts relatively, and a relative URL loses the signature:
    // every request hls.js makes is sent to the signed URL of the same object instead.
    var signed = urlsOf(video);
    var hls = new window.Hls({
      xhrSetup: function (xhr, url) {
        var found = signed[pathOf(url)];
        if (found && found !== url) xhr.open('GET', found, true);
      }
    });
    var recovered = false;
    hls.on(window.Hls.Events.ERROR, function (event, data) {
      if (!data || !data.fatal) return;
      if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR && !recovered) {
        recovered = true;
        hls.recoverMediaError();
        return;
      }
      hls.destroy();
      video.removeAttribute('src');
      playMp4(video, true);
    });
    video.dataset.player = 'hls.js';
    hls.loadSource(video.dataset.hls);
    hls.attachMedia(video);
  }

  function playNative(video) {
    video.dataset.player = 'native-hls';
    video.addEventListener('error', function once() {
      video.removeEventListener('error', once);
      if (video.dataset.player === 'native-hls') playMp4(video, true);
    });
    video.src = video.dataset.hls;
  }

  Array.prototype.forEach.call(root.querySelectorAll('video.clip'), function (video) {
    if (video.dataset.hls && window.Hls && window.Hls.isSupported()) {
      playHlsJs(video);
    } else if (video.dataset.hls && video.canPlayType('application/vnd.apple.mpegurl')) {
      playNative(video);
    } else {
      playMp4(video, false);
    }
  });
})();
