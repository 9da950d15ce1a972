// The operator's console (/ops). The server renders every panel; this script asks for the page
// again every few seconds (never while the tab is hidden), swaps in the panels that changed
// (keeping focus, open <details> and scroll positions), says what matters in a polite live region
// (a new job in trouble, an action's result; never the refresh itself), and makes the operators'
// changes through the API with the CSRF token, each after a confirmation.
(function () {
  "use strict";

  const panels = document.getElementById("ops-panels");
  if (!panels) return;
  const words = JSON.parse(document.getElementById("ops-words").textContent || "{}");
  const lang = (document.querySelector("meta[name=storymedia-lang]") || {}).content || "vi";
  const csrf = (document.querySelector("meta[name=csrf-token]") || {}).content || "";
  const every = Math.max(2, Number(panels.dataset.refreshSeconds) || 5) * 1000;
  const connection = document.getElementById("ops-connection");
  const result = document.getElementById("ops-result");
  const announcer = document.getElementById("ops-announce");
  const refreshed = document.getElementById("ops-refreshed");
  const dialog = document.getElementById("ops-confirm");
  const locale = lang === "en" ? "en-GB" : "vi-VN";

  function say(key, values) {
    const text = words[key] || key;
    return text.replace(/\{(\w+)\}/g, (whole, name) => (values && name in values ? String(values[name]) : whole));
  }

  // times ---------------------------------------------------------------------------------------
  // The reader's own time: "18:36:26" today, "18:36:26 03/12" (day/month) on another day.
  const two = (n) => String(n).padStart(2, "0");

  function local(when, clockOnly) {
    const clock = `${two(when.getHours())}:${two(when.getMinutes())}:${two(when.getSeconds())}`;
    if (clockOnly || when.toDateString() === new Date().toDateString()) return clock;
    return `${clock} ${two(when.getDate())}/${two(when.getMonth() + 1)}`;
  }

  function localTimes(root) {
    root.querySelectorAll("time[data-local]").forEach((node) => {
      const when = new Date(node.getAttribute("datetime"));
      if (!Number.isNaN(when.getTime())) {
        node.textContent = local(when, node === refreshed);
        node.title = when.toLocaleString(locale);
      }
    });
  }

  // refreshing ----------------------------------------------------------------------------------
  const seen = {};          // panel name -> the server's HTML of it last time
  let troubled = null;      // ids of the jobs in trouble last time (null: not looked yet)
  let timer = 0;
  let busy = false;
  let delay = every;
  let stopped = false;

  function troubleIds(root) {
    const ids = new Map();
    root.querySelectorAll("[data-panel=trouble] article[id^='job-']").forEach((article) => {
      const title = article.querySelector("h3 a");
      ids.set(article.id, title ? title.textContent.trim() : article.id);
    });
    return ids;
  }

  function announce(text) {
    // Cleared first, so the same words said twice are said again.
    announcer.textContent = "";
    window.setTimeout(() => { announcer.textContent = text; }, 50);
  }

  function swap(current, fresh) {
    const focused = document.activeElement && current.contains(document.activeElement) ? document.activeElement.id : "";
    const open = new Set(Array.from(current.querySelectorAll("details[open][id]"), (node) => node.id));
    const scrolled = new Map(Array.from(current.querySelectorAll("pre[id], [id] > pre, li[id] pre"),
                                        (node, index) => [index, node.scrollTop]));
    const replacement = document.importNode(fresh, true);
    replacement.querySelectorAll("details[id]").forEach((node) => { if (open.has(node.id)) node.open = true; });
    current.replaceWith(replacement);
    Array.from(replacement.querySelectorAll("pre[id], [id] > pre, li[id] pre")).forEach((node, index) => {
      if (scrolled.get(index)) node.scrollTop = scrolled.get(index);
    });
    localTimes(replacement);
    if (focused) {
      const again = document.getElementById(focused);
      if (again) again.focus({preventScroll: true});
    }
  }

  function apply(doc) {
    doc.querySelectorAll("[data-panel]").forEach((fresh) => {
      const name = fresh.dataset.panel;
      const html = fresh.innerHTML;
      if (seen[name] === html) return;
      seen[name] = html;
      const current = panels.querySelector(`[data-panel="${name}"]`);
      if (current) swap(current, fresh);
    });
    const when = doc.getElementById("ops-refreshed");
    if (when) {
      refreshed.setAttribute("datetime", when.getAttribute("datetime"));
      localTimes(refreshed.parentNode);
    }
    const now = troubleIds(doc);
    if (troubled !== null) {
      const fresh = Array.from(now.keys()).filter((id) => !troubled.has(id)).map((id) => now.get(id));
      if (fresh.length) announce(say("ops.js.new_trouble", {stories: fresh.join(", ")}));
    }
    troubled = new Set(now.keys());
  }

  function offline(key) {
    connection.textContent = say(key);
    connection.hidden = false;
  }

  function expired() {
    stopped = true;
    window.clearTimeout(timer);
    connection.textContent = say("ops.js.expired") + " ";
    const link = document.createElement("a");
    link.href = "/signin?next=/ops";
    link.textContent = say("ops.js.signin");
    connection.appendChild(link);
    connection.hidden = false;
  }

  async function refresh() {
    if (busy || stopped) return;
    busy = true;
    window.clearTimeout(timer);
    try {
      const answer = await fetch("/ops", {cache: "no-store", credentials: "same-origin",
                                          headers: {"Accept": "text/html"}});
      const signin = answer.redirected && new URL(answer.url).pathname === "/signin";
      if (signin || answer.status === 401 || answer.status === 403) {
        expired();
        return;
      }
      if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
      const doc = new DOMParser().parseFromString(await answer.text(), "text/html");
      apply(doc);
      connection.hidden = true;
      delay = every;
    } catch (error) {
      offline("ops.js.offline");
      delay = Math.min(delay * 2, 60000);
    } finally {
      busy = false;
      schedule();
    }
  }

  function schedule() {
    window.clearTimeout(timer);
    if (!stopped && !document.hidden) timer = window.setTimeout(refresh, delay);
  }

  document.addEventListener("visibilitychange", () => {
    if (document.hidden) window.clearTimeout(timer);
    else refresh();
  });
  document.getElementById("ops-refresh-now").addEventListener("click", refresh);

  // actions -------------------------------------------------------------------------------------
  function confirmed(text, opener) {
    return new Promise((resolve) => {
      document.getElementById("ops-confirm-text").textContent = text;
      const ok = document.getElementById("ops-confirm-ok");
      const back = document.getElementById("ops-confirm-cancel");
      const finish = (answer) => {
        ok.onclick = back.onclick = dialog.oncancel = null;
        dialog.close();
        const again = document.getElementById(opener) || document.getElementById("main");
        if (again) again.focus();
        resolve(answer);
      };
      ok.onclick = () => finish(true);
      back.onclick = () => finish(false);
      dialog.oncancel = (event) => { event.preventDefault(); finish(false); };
      dialog.showModal();
      back.focus();
    });
  }

  function show(text, good) {
    result.className = good ? "notice" : "alert";
    result.textContent = text;
    result.hidden = false;
  }

  async function post(url) {
    return fetch(url, {method: "POST", credentials: "same-origin",
                       headers: {"X-CSRF-Token": csrf, "Accept": "application/json"}});
  }

  async function refusal(answer) {
    let problem = {};
    try { problem = await answer.json(); } catch (error) { problem = {}; }
    const title = (lang === "en" ? problem.title : problem.title_vi) || `HTTP ${answer.status}`;
    return say("ops.js.refused", {title: problem.detail ? `${title} (${problem.detail})` : title});
  }

  const actions = {
    rerun: {
      question: (data) => say("ops.js.confirm_rerun", {file: data.file, story: data.story}),
      url: (data) => `/v1/jobs/${encodeURIComponent(data.job)}/assets/${encodeURIComponent(data.order)}/rerun`,
      done: (data) => say("ops.js.rerun_done", {file: data.file}),
    },
    cancel: {
      question: (data) => say("ops.js.confirm_cancel", {story: data.story}),
      url: (data) => `/v1/jobs/${encodeURIComponent(data.job)}/cancel`,
      done: (data, body) => say(body.done === false ? "ops.js.cancel_finished" : "ops.js.cancel_done",
                                {story: data.story}),
    },
    replay: {
      question: (data) => say("ops.js.confirm_replay", {event: data.event}),
      url: (data) => `/v1/webhooks/${encodeURIComponent(data.endpoint)}/deliveries/`
                     + `${encodeURIComponent(data.delivery)}/replay`,
      done: (data, body) => say(`ops.js.replay_${body.outcome}`),
      good: (body) => body.outcome === "delivered",
    },
  };

  panels.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button || !(button.dataset.action in actions)) return;
    const action = actions[button.dataset.action];
    const data = Object.assign({}, button.dataset);
    if (!(await confirmed(action.question(data), button.id))) return;
    button.disabled = true;
    try {
      const answer = await post(action.url(data));
      if (answer.ok) {
        const body = await answer.json();
        show(action.done(data, body), action.good ? action.good(body) : true);
      } else {
        show(await refusal(answer), false);
      }
    } catch (error) {
      show(say("ops.js.network"), false);
    } finally {
      button.disabled = false;
    }
    refresh();
  });

  // start ---------------------------------------------------------------------------------------
  panels.querySelectorAll("[data-panel]").forEach((panel) => { seen[panel.dataset.panel] = panel.innerHTML; });
  troubled = new Set(troubleIds(document).keys());
  localTimes(document);
  schedule();
})();
