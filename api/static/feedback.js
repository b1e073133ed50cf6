// Search feedback for the learned ranking (docs/learning.md): what the user does with
// the results goes to POST /v1/search/feedback, naming the search by the search_id of
// its response. The service logged the impression (the list it returned) itself; this
// file reports clicks, plays, dwell (seconds watched), skips (a moment left within
// SKIP_S), "not relevant" (a button on each card) and reformulations (a new search
// within REFORM_S of the last, with no click in between). It watches the page that
// app.js draws and changes nothing in it but the added buttons.
(function () {
  "use strict";
  const SKIP_S = 5, REFORM_S = 120;
  const state = { search: null, clicked: false, at: 0, playing: null };

  function headers() {
    const h = { "Content-Type": "application/json" };
    const key = (document.getElementById("api-key") || {}).value || localStorage.getItem("vidseek-key") || "";
    if (key.trim()) h["Authorization"] = "Bearer " + key.trim();
    return h;
  }

  function newId() {
    return (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()).replace(/-/g, "");
  }

  // One event, sent once; a network failure is retried once with the same event_id,
  // which the server stores only once.
  function send(ev) {
    if (!ev.search_id) return;
    const body = JSON.stringify({ event_id: newId(), ...ev });
    const post = () => fetch("/v1/search/feedback", { method: "POST", headers: headers(), body, keepalive: true });
    post().catch(() => setTimeout(() => post().catch(() => {}), 2000));
  }

  function onResult(kind, position, extra) {
    const s = state.search;
    if (!s || position < 0 || position >= s.hits.length) return;
    send({ kind, search_id: s.search_id, position, video_id: s.hits[position].video_id, ...(extra || {}) });
  }

  // Searches: read each /v1/search response as app.js gets it.
  const realFetch = window.fetch.bind(window);
  window.fetch = async function (input, init) {
    const resp = await realFetch(input, init);
    const url = typeof input === "string" ? input : (input && input.url) || "";
    if (/^\/v1\/search(\?|$)/.test(url) && resp.ok) {
      resp.clone().json().then(seen).catch(() => {});
    }
    return resp;
  };

  function seen(body) {
    if (!body || !body.search_id) return;
    const prev = state.search, now = Date.now() / 1000;
    if (prev && !state.clicked && now - state.at < REFORM_S) {
      send({ kind: "reformulation", search_id: prev.search_id, query: body.query,
             next_search_id: body.search_id });
    }
    finishPlay();
    state.search = { search_id: body.search_id, hits: body.hits || [], query: body.query };
    state.clicked = false;
    state.at = now;
  }

  function position(li) {
    return Array.prototype.indexOf.call(li.parentElement.children, li);
  }

  // Clicks on a card (app.js plays it) and the "not relevant" buttons added to cards.
  const results = document.getElementById("results");
  results.addEventListener("click", (e) => {
    const li = e.target.closest("li.card");
    if (!li) return;
    const pos = position(li);
    if (e.target.closest("button.not-relevant")) {
      onResult("not_relevant", pos);
      li.classList.add("rejected");
      e.target.closest("button.not-relevant").disabled = true;
      return;
    }
    if (!e.target.closest("button")) return;
    finishPlay();
    state.clicked = true;
    onResult("click", pos);
    state.playing = { search_id: state.search && state.search.search_id, position: pos, watched: 0,
                      last: null, started: false };
  });
  new MutationObserver(() => {
    for (const li of results.querySelectorAll("li.card:not([data-feedback])")) {
      li.dataset.feedback = "1";
      const b = document.createElement("button");
      b.type = "button"; b.className = "not-relevant"; b.textContent = "Not relevant";
      b.setAttribute("aria-label", "Mark this result as not relevant");
      li.append(b);
    }
  }).observe(results, { childList: true });

  // Plays and dwell: seconds actually watched, counted from the player's clock.
  const v = document.getElementById("player");
  if (v) {
    v.addEventListener("play", () => {
      const p = state.playing;
      if (p && !p.started && state.search && p.search_id === state.search.search_id) {
        p.started = true;
        onResult("play", p.position);
      }
      if (p) p.last = v.currentTime;
    });
    v.addEventListener("timeupdate", () => {
      const p = state.playing;
      if (!p || p.last === null || v.paused) return;
      const d = v.currentTime - p.last;
      if (d > 0 && d < 2) p.watched += d;  // a seek is not watching
      p.last = v.currentTime;
    });
  }
  function finishPlay() {
    const p = state.playing;
    state.playing = null;
    if (!p || !p.started || !state.search || p.search_id !== state.search.search_id) return;
    onResult("dwell", p.position, { value: Math.round(p.watched * 10) / 10 });
    if (p.watched < SKIP_S) onResult("skip", p.position);
  }
  const close = document.getElementById("close-player");
  if (close) close.addEventListener("click", finishPlay);
  window.addEventListener("pagehide", finishPlay);
})();
