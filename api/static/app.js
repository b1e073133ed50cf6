// vidseek search page: plain JS, no build step. Talks to /v1/search; thumbnails and
// media use the signed links that each hit carries (an <img>/<video> cannot send headers).
"use strict";
const $ = (id) => document.getElementById(id);
const keyInput = $("api-key");
keyInput.value = localStorage.getItem("vidseek-key") || "";
keyInput.addEventListener("change", () => localStorage.setItem("vidseek-key", keyInput.value.trim()));

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

function setStatus(text, isError) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

async function search(ev) {
  if (ev) ev.preventDefault();
  const q = queryText();
  const image = $("image").files[0];
  if (!q && !image) { setStatus("Type a query or choose an image."); return; }
  const headers = {};
  const key = keyInput.value.trim();
  if (key) headers["Authorization"] = "Bearer " + key;
  let resp;
  setStatus("Searching…");
  try {
    if (image) {
      const fd = new FormData();
      fd.append("q", q); fd.append("k", $("k").value); fd.append("per_video", $("per-video").value);
      fd.append("image", image);
      resp = await fetch("/v1/search", { method: "POST", body: fd, headers });
    } else {
      const params = new URLSearchParams({ q, k: $("k").value, per_video: $("per-video").value });
      resp = await fetch("/v1/search?" + params, { headers });
    }
  } catch (e) { setStatus("The server cannot be reached: " + e, true); return; }
  const body = await resp.json();
  if (!resp.ok) { setStatus(`${body.error.code}: ${body.error.message}`, true); return; }
  render(body);
}

function render(body) {
  const list = $("results");
  list.replaceChildren();
  const n = body.hits.length;
  setStatus(`${n} moment${n === 1 ? "" : "s"} in ${Math.round(body.took_ms)} ms (intent: ${body.intent.label || "?"})`);
  showEntity(body.intent.entities || []);
  for (const h of body.hits) {
    const li = document.createElement("li");
    li.className = "card";
    const btn = document.createElement("button");
    const name = h.title || h.source.split("/").pop();
    btn.setAttribute("aria-label", `Play ${name} from ${fmt(h.start)}`);
    const img = document.createElement("img");
    img.alt = `Keyframe of ${name} at ${fmt(h.start)}`;
    img.loading = "lazy";
    if (h.thumbnail_url) img.src = h.thumbnail_url;
    loadCover(h, name, img, btn);
    const div = document.createElement("div");
    div.className = "body";
    const title = document.createElement("div"); title.className = "title"; title.textContent = name;
    const time = document.createElement("div"); time.className = "time";
    time.textContent = `${fmt(h.start)} – ${fmt(h.end)} · score ${h.score.toFixed(3)}` +
      (RANGE_FROM[h.range_from] ? ` · ${RANGE_FROM[h.range_from]}` : "");
    const badges = document.createElement("div");
    for (const [m, s] of Object.entries(h.matched)) {
      const b = document.createElement("span"); b.className = "badge"; b.textContent = `${m} ${s.toFixed(2)}`;
      badges.append(b);
    }
    const snip = document.createElement("div"); snip.className = "snippet"; snip.textContent = h.snippet || "";
    div.append(title, time, badges, snip);
    btn.append(img, div);
    btn.addEventListener("click", () => { coverClicked(h, btn); play(h, name); });
    li.append(btn);
    list.append(li);
  }
}

// Covers: the bandit's pick for this video, with the query as the audience context;
// a click on the card is the feedback for that impression. The moment's keyframe
// stays when the cover cannot be had (no media on the server, an old link).
async function loadCover(hit, name, img, btn) {
  if (!hit.media_url) return;
  const t = new URL(hit.media_url, location.origin).searchParams.get("t");
  if (!t) return;
  const params = new URLSearchParams({ t, aspect: "16:9" });
  const context = $("q").value.trim();
  if (context) params.set("context", context);
  let resp;
  try {
    resp = await fetch(`/v1/videos/${encodeURIComponent(hit.video_id)}/cover?${params}`);
  } catch (e) { return; }
  if (!resp.ok) return;
  img.src = URL.createObjectURL(await resp.blob());
  img.alt = `Cover of ${name}`;
  img.classList.add("cover");
  btn.dataset.impression = resp.headers.get("X-Cover-Impression") || "";
  btn.dataset.t = t;
}

function coverClicked(hit, btn) {
  const impression = btn.dataset.impression;
  if (!impression) return;
  const body = JSON.stringify({ impression, video_id: hit.video_id, t: btn.dataset.t });
  fetch("/v1/feedback", { method: "POST", headers: { "Content-Type": "application/json" }, body })
    .catch(() => {});  // a lost click only costs the bandit one observation
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
    b.addEventListener("click", () => { $("q").value = nb.name; search(); });
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
  bar.style.left = `${(100 * hit.start) / duration}%`;
  bar.style.width = `${Math.max(0.5, (100 * (hit.end - hit.start)) / duration)}%`;
  note.textContent = `Moment ${fmt(hit.start)} – ${fmt(hit.end)}` +
    (RANGE_FROM[hit.range_from] ? ` (${RANGE_FROM[hit.range_from]})` : " (the matching segments)");
}

function play(hit, name) {
  const box = $("player-box"), v = $("player");
  $("player-title").textContent = `${name} — from ${fmt(hit.start)}`;
  box.hidden = false;
  v.src = hit.media_url;
  v.addEventListener("loadedmetadata", () => {
    v.currentTime = hit.start;
    markMoment(hit, v.duration);
    v.play().catch(() => {});
  }, { once: true });
  // The player sits above the grid: bring it into view when a card far down is clicked.
  box.scrollIntoView({ block: "start" });
  v.focus();
}

$("close-player").addEventListener("click", () => { const v = $("player"); v.pause(); $("player-box").hidden = true; });
$("search-form").addEventListener("submit", search);
