// vidseek search page: plain JS, no build step. Talks to /v1/search; thumbnails and
// media use the signed links that each hit carries (an <img>/<video> cannot send headers).
//
// The URL holds the search (q, filters, page): a link to it repeats the search, and the
// back button returns to the previous one. Result cards carry data-video-id,
// data-start, data-end, data-position (1-based over all pages) and data-search-id (when
// the response has one) for scripts that record what people click (feedback.js).
"use strict";
const $ = (id) => document.getElementById(id);
const keyInput = $("api-key");
keyInput.value = localStorage.getItem("vidseek-key") || "";
keyInput.addEventListener("change", () => localStorage.setItem("vidseek-key", keyInput.value.trim()));

const MAX_K = 100;  // the service's default max_k: pages go as deep as one request can
const CONFIDENCE = { high: "High confidence", medium: "Medium confidence", low: "Low confidence" };
let page = 1;
let lastController = null;

function fmt(t) {
  const m = Math.floor(t / 60), s = (t - m * 60).toFixed(1).padStart(4, "0");
  return `${m}:${s}`;
}

function queryText() {
  let q = $("q").value.trim();
  const minDur = $("min-dur").value;
  if (minDur) q += ` dur:>=${Number(minDur)}s`;
  if ($("has-speech").checked) q += " has:speech";
  if ($("has-text").checked) q += " has:text";
  const lang = $("lang").value.trim();
  if (lang) q += ` lang:${lang}`;
  return q.trim();
}

// -- the URL carries the search ------------------------------------------------------
const FIELDS = { q: "q", k: "k", per_video: "per-video", min_confidence: "min-conf", min_dur: "min-dur", lang: "lang" };
const CHECKS = { speech: "has-speech", text: "has-text" };

function stateToUrl() {
  const p = new URLSearchParams();
  for (const [name, id] of Object.entries(FIELDS)) {
    const v = $(id).value.trim();
    if (v && !(name === "k" && v === "20") && !(name === "per_video" && v === "1") && !(name === "min_confidence" && v === "medium")) p.set(name, v);
  }
  for (const [name, id] of Object.entries(CHECKS)) if ($(id).checked) p.append("has", name);
  if (page > 1) p.set("page", String(page));
  return p.toString() ? "?" + p : location.pathname;
}

function urlToState() {
  const p = new URLSearchParams(location.search);
  for (const [name, id] of Object.entries(FIELDS)) {
    const el = $(id);
    const dflt = name === "k" ? "20" : name === "per_video" ? "1" : name === "min_confidence" ? "medium" : "";
    const want = p.get(name) ?? dflt;
    if (name === "k" && /^[0-9]{1,3}$/.test(want) && +want >= 1 && +want <= MAX_K &&
        !Array.from(el.options).some((o) => o.value === want)) {
      el.add(new Option(want, want));  // a page size a link asks for (e.g. ?k=5)
    }
    el.value = want;
    if (el.tagName === "SELECT" && el.selectedIndex < 0) el.value = dflt;
  }
  const has = p.getAll("has");
  for (const [name, id] of Object.entries(CHECKS)) $(id).checked = has.includes(name);
  page = Math.max(1, parseInt(p.get("page") || "1", 10) || 1);
  return Boolean($("q").value.trim() || has.length || p.get("min_dur") || p.get("lang"));
}

function setStatus(text, isError) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

function closePlayer() {
  const v = $("player");
  v.pause();
  v.removeAttribute("src");
  v.load();
  $("player-box").hidden = true;
  $("player-error").hidden = true;
}

function clearResults() {
  $("results").replaceChildren();
  $("pager").hidden = true;
  $("no-match").hidden = true;
  $("entity-box").hidden = true;
}

function setLoading(on) {
  $("results").setAttribute("aria-busy", on ? "true" : "false");
  document.body.classList.toggle("loading", on);
  $("go").disabled = on;
}

// push: a new search (a new history entry); false: the URL already says it (back, load)
async function search(push) {
  const q = queryText();
  const image = $("image").files[0];
  if (!q && !image) { setStatus("Type a query or choose an image."); return; }
  closePlayer();  // a new search never keeps playing the last one's video
  if (push && !image) history.pushState(null, "", stateToUrl());
  const size = Number($("k").value) || 20;
  const k = Math.min(MAX_K, page * size);
  const headers = {};
  const key = keyInput.value.trim();
  if (key) headers["Authorization"] = "Bearer " + key;
  if (lastController) lastController.abort();
  const controller = new AbortController();
  lastController = controller;
  setLoading(true);
  setStatus("Searching…");
  let resp, body;
  try {
    const minConf = $("min-conf").value;
    if (image) {
      const fd = new FormData();
      fd.append("q", q); fd.append("k", String(k)); fd.append("per_video", $("per-video").value);
      fd.append("min_confidence", minConf);
      fd.append("image", image);
      resp = await fetch("/v1/search", { method: "POST", body: fd, headers, signal: controller.signal });
    } else {
      const params = new URLSearchParams({ q, k: String(k), per_video: $("per-video").value, min_confidence: minConf });
      resp = await fetch("/v1/search?" + params, { headers, signal: controller.signal });
    }
    body = await resp.json();
  } catch (e) {
    if (e.name === "AbortError") return;  // a newer search replaced this one
    clearResults();
    setLoading(false);
    setStatus("The server cannot be reached: " + e, true);
    return;
  }
  if (controller !== lastController) return;
  setLoading(false);
  if (!resp.ok) {
    clearResults();  // stale results under an error would look like its answer
    const err = (body && body.error) || { code: resp.status, message: resp.statusText };
    setStatus(`${err.code}: ${err.message}`, true);
    return;
  }
  render(body, size);
}

function markSnippet(el, text, spans) {
  let at = 0;
  for (const [a, b] of spans || []) {
    if (a < at || b > text.length) continue;
    el.append(document.createTextNode(text.slice(at, a)));
    const m = document.createElement("mark"); m.textContent = text.slice(a, b);
    el.append(m);
    at = b;
  }
  el.append(document.createTextNode(text.slice(at)));
}

function render(body, size) {
  const list = $("results");
  clearResults();
  const all = body.hits;
  const first = (page - 1) * size;
  const hits = all.slice(first, first + size);
  const n = all.length;
  const hidden = body.hidden || 0;
  const more = hidden ? ` · ${hidden} weaker hidden` : "";
  setStatus(`${n} moment${n === 1 ? "" : "s"} in ${Math.round(body.took_ms)} ms (intent: ${body.intent.label || "?"})${more}`);
  showEntity(body.intent.entities || []);
  if (body.no_good_match || (!hits.length && page > 1)) {
    $("no-match").hidden = false;
    $("no-match-text").textContent = body.intent.phrase_missing
      ? "No good match: no video says or shows the quoted phrase."
      : page > 1 && !body.no_good_match ? "No more results." : "No good match for this search.";
    $("show-weaker").hidden = !(hidden > 0 && $("min-conf").value !== "low");
  }
  hits.forEach((h, i) => list.append(card(h, first + i + 1, body.search_id)));
  const full = n >= Math.min(MAX_K, page * size) && page * size < MAX_K;
  if (page > 1 || full) {
    $("pager").hidden = false;
    $("prev-page").disabled = page <= 1;
    $("next-page").disabled = !full;
    $("page-info").textContent = `Page ${page}`;
  }
}

function card(h, position, searchId) {
  const li = document.createElement("li");
  li.className = "card";
  li.dataset.videoId = h.video_id;
  li.dataset.start = String(h.start);
  li.dataset.end = String(h.end);
  li.dataset.position = String(position);
  if (searchId) li.dataset.searchId = searchId;
  const btn = document.createElement("button");
  btn.type = "button";
  btn.className = "hit";
  const name = h.title || h.source.split("/").pop();
  btn.setAttribute("aria-label", `Play ${name} from ${fmt(h.start)}`);
  const img = document.createElement("img");
  img.alt = `Frame of ${name} at ${fmt(h.start)}`;
  img.loading = "lazy";
  if (h.thumbnail_url) img.src = h.thumbnail_url;
  const div = document.createElement("div");
  div.className = "body";
  const title = document.createElement("div"); title.className = "title"; title.textContent = name;
  const time = document.createElement("div"); time.className = "time";
  time.textContent = `${fmt(h.start)} – ${fmt(h.end)}` + (RANGE_FROM[h.range_from] ? ` · ${RANGE_FROM[h.range_from]}` : "");
  const badges = document.createElement("div"); badges.className = "badges";
  if (h.confidence) {
    const c = document.createElement("span");
    c.className = `badge conf conf-${h.confidence}`;
    c.textContent = CONFIDENCE[h.confidence] || h.confidence;
    if (h.confidence_score != null) c.title = `calibrated probability ${h.confidence_score.toFixed(2)}`;
    badges.append(c);
  }
  for (const [m, s] of Object.entries(h.matched)) {
    const b = document.createElement("span"); b.className = "badge";
    b.textContent = m === "phrase" ? "phrase" : `${m} ${s.toFixed(2)}`;
    badges.append(b);
  }
  const snip = document.createElement("div"); snip.className = "snippet";
  markSnippet(snip, h.snippet || "", h.highlights);
  div.append(title, time, badges, snip);
  btn.append(img, div);
  btn.addEventListener("click", () => play(h, name));
  li.append(btn);
  return li;
}

// Knowledge graph: a query naming a known entity shows its aliases, its neighbours
// (click one to search for it) and a picture of its neighbourhood.
async function showEntity(entities) {
  const box = $("entity-box");
  box.hidden = true;
  if (!entities.length) return;
  const headers = {};
  const key = keyInput.value.trim();
  if (key) headers["Authorization"] = "Bearer " + key;
  let e;
  try {
    const r = await fetch(`/v1/entities/${entities[0].entity_id}?neighbours=12&videos=20`, { headers });
    if (!r.ok) return;
    e = await r.json();
  } catch (err) { return; }
  $("entity-name").textContent = `${e.name} (${e.type}) · ${e.num_videos} video${e.num_videos === 1 ? "" : "s"}`;
  $("entity-aliases").textContent = e.aliases.length > 1 ? "Also: " + e.aliases.filter((a) => a !== e.name).join(", ") : "";
  const chips = $("entity-neighbours");
  chips.replaceChildren();
  for (const nb of e.neighbours) {
    const b = document.createElement("button");
    b.type = "button"; b.className = "chip"; b.textContent = `${nb.name} · ${nb.type}`;
    b.addEventListener("click", () => { $("q").value = nb.name; page = 1; search(true); });
    chips.append(b);
  }
  const img = $("entity-graph");
  img.alt = `Neighbourhood of ${e.name}`;
  try {  // fetched, not linked: an <img> cannot send the API key
    const r = await fetch(e.graph_png_url, { headers });
    if (r.ok) { if (img.src) URL.revokeObjectURL(img.src); img.src = URL.createObjectURL(await r.blob()); }
  } catch (err) { img.removeAttribute("src"); }
  box.hidden = false;
}

// What set a moment's range (search hits' range_from), as the page says it.
const RANGE_FROM = { words: "cut at the spoken words", text: "while the text is on screen",
                     visual: "where the picture matches", shot: "the matching shot" };

function markMoment(hit, duration) {
  const bar = $("moment-range"), note = $("moment-note");
  if (!(duration > 0)) { $("moment-bar").hidden = true; note.textContent = ""; return; }
  $("moment-bar").hidden = false;
  // a preview may be a frame shorter than the catalog's duration: keep the bar on the timeline
  const left = Math.min(99.5, (100 * hit.start) / duration);
  bar.style.left = `${left}%`;
  bar.style.width = `${Math.min(100 - left, Math.max(0.5, (100 * (hit.end - hit.start)) / duration))}%`;
  note.textContent = `Moment ${fmt(hit.start)} – ${fmt(hit.end)}` +
    (RANGE_FROM[hit.range_from] ? ` (${RANGE_FROM[hit.range_from]})` : " (the matching segments)");
}

// The player plays the preview (every browser plays it: the original, or an H.264/AAC
// copy the server makes the first time); the original stays one click away.
function play(hit, name) {
  const box = $("player-box"), v = $("player");
  $("player-title").textContent = `${name} — from ${fmt(hit.start)}`;
  $("player-error").hidden = true;
  $("original-link").href = hit.media_url;
  box.hidden = false;
  v.src = hit.preview_url || hit.media_url;
  v.addEventListener("loadedmetadata", () => {
    v.currentTime = hit.start;
    markMoment(hit, v.duration);
    v.play().catch(() => {});
  }, { once: true });
  // The player sits above the grid: bring it into view when a card far down is clicked.
  box.scrollIntoView({ block: "start" });
  v.focus();
}

$("player").addEventListener("error", () => {
  const v = $("player");
  if (!v.getAttribute("src")) return;
  const el = $("player-error");
  el.textContent = "This video cannot be played here" + (v.error && v.error.message ? ` (${v.error.message})` : "") +
    ". Download the original file below.";
  el.hidden = false;
});
$("close-player").addEventListener("click", closePlayer);
$("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); page = 1; search(true); });
$("prev-page").addEventListener("click", () => { page = Math.max(1, page - 1); search(true); });
$("next-page").addEventListener("click", () => { page += 1; search(true); });
$("show-weaker").addEventListener("click", () => { $("min-conf").value = "low"; page = 1; search(true); });
window.addEventListener("popstate", () => {
  if (urlToState()) search(false);
  else { clearResults(); closePlayer(); setStatus(""); }
});

// Keyboard: "/" focuses the search box; arrows move between results (left/right along
// a row, up/down by a row of the grid); Enter (or Space) on a result plays it.
function resultButtons() { return Array.from(document.querySelectorAll("#results button.hit")); }
document.addEventListener("keydown", (ev) => {
  const t = ev.target;
  const typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  if (ev.key === "/" && !typing && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
    ev.preventDefault();
    $("q").focus();
    $("q").select();
    return;
  }
  if (!["ArrowDown", "ArrowUp", "ArrowLeft", "ArrowRight"].includes(ev.key) || typing && t.id !== "q") return;
  const btns = resultButtons();
  if (!btns.length) return;
  let i = btns.indexOf(document.activeElement);
  if (t.id === "q") { if (ev.key !== "ArrowDown") return; i = -1; }
  const top0 = btns[0].getBoundingClientRect().top;
  const perRow = Math.max(1, btns.filter((b) => Math.abs(b.getBoundingClientRect().top - top0) < 2).length);
  const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: i < 0 ? 1 : perRow, ArrowUp: -perRow }[ev.key];
  const next = Math.min(btns.length - 1, Math.max(0, i + step));
  ev.preventDefault();
  btns[next].focus();
});

if (urlToState()) search(false);
