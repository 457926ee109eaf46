// pyollama's chat page: plain JavaScript over the server's own /api/chat, /api/tags, /api/ps and
// /api/show. No build step and no dependencies; the conversation and settings live in this browser's
// localStorage.
"use strict";

const $ = (id) => document.getElementById(id);
const STORE = "pyollama.ui";
const SETTINGS = ["system", "temperature", "num_ctx", "seed", "think"];   // the API key is not kept

let state = { model: "", messages: [] };
let controller = null;          // the running generation's AbortController
let busy = false;               // a message is being sent (set before anything is awaited)
let capabilities = [];

function save() {
  const settings = Object.fromEntries(SETTINGS.map((k) => [k, $(k).value]));
  localStorage.setItem(STORE, JSON.stringify({ ...state, settings }));
}

function restore() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORE) || "{}");
    state.model = saved.model || "";
    state.messages = Array.isArray(saved.messages) ? saved.messages : [];
    for (const k of SETTINGS) if (saved.settings && saved.settings[k] != null) $(k).value = saved.settings[k];
  } catch (e) { /* a damaged entry starts a new conversation */ }
}

function setStatus(text) { $("status").textContent = text || ""; }

async function api(path, body, signal) {
  const headers = { "Content-Type": "application/json" };
  const key = $("apikey").value.trim();
  if (key) headers.Authorization = "Bearer " + key;
  const r = await fetch(path, body === undefined ? { headers, signal }
                                                 : { method: "POST", headers, body: JSON.stringify(body), signal });
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
    if (r.status === 401) msg += " (set the server's API key under Settings)";
    throw new Error(msg);
  }
  return r;
}

// --- markdown: a small, safe subset (everything is escaped first) ----------------------------------
function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function inline(s) {
  return escapeHtml(s)
    .replace(/`([^`]+)`/g, "<code>$1</code>")
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^*])\*([^*\s][^*]*)\*/g, "$1<em>$2</em>")
    .replace(/\[([^\]]+)\]\((https?:\/\/[^)\s]+)\)/g, '<a href="$2" target="_blank" rel="noopener noreferrer">$1</a>');
}

function blocks(text) {
  const out = [];
  let list = null;
  const close = () => { if (list) { out.push(`</${list}>`); list = null; } };
  for (const line of text.split("\n")) {
    let m;
    if ((m = line.match(/^(#{1,6})\s+(.*)$/))) {
      close();
      out.push(`<h${m[1].length}>${inline(m[2])}</h${m[1].length}>`);
    } else if ((m = line.match(/^\s*[-*]\s+(.*)$/)) || (m = line.match(/^\s*\d+[.)]\s+(.*)$/))) {
      const kind = /^\s*\d/.test(line) ? "ol" : "ul";
      if (list !== kind) { close(); out.push(`<${kind}>`); list = kind; }
      out.push(`<li>${inline(m[1])}</li>`);
    } else if (line.trim() === "") {
      close();
    } else {
      close();
      out.push(`<p>${inline(line)}</p>`);
    }
  }
  close();
  return out.join("");
}

function markdown(text) {
  // Fenced code blocks first; an unterminated fence (still streaming) runs to the end.
  const parts = text.split(/^```/m);
  let html = "";
  for (let i = 0; i < parts.length; i++) {
    if (i % 2 === 0) {
      html += blocks(parts[i]);
    } else {
      const nl = parts[i].indexOf("\n");
      const lang = nl < 0 ? parts[i].trim() : parts[i].slice(0, nl).trim();
      const code = nl < 0 ? "" : parts[i].slice(nl + 1);
      html += `<pre><code${lang ? ` class="language-${escapeHtml(lang)}"` : ""}>${escapeHtml(code)}</code></pre>`;
    }
  }
  return html;
}

// --- the conversation ------------------------------------------------------------------------------
function messageNode(m) {
  const div = document.createElement("div");
  div.className = "msg " + m.role;
  fill(div, m);
  return div;
}

function fill(div, m) {
  if (m.role === "user") {
    div.textContent = m.content;
    for (const img of m.images || []) {
      const el = document.createElement("img");
      el.src = "data:image/*;base64," + img;
      div.appendChild(el);
    }
    return;
  }
  let html = "";
  if (m.thinking) html += `<details class="thinking"><summary>Thinking</summary>${escapeHtml(m.thinking)}</details>`;
  html += `<div class="content">${markdown(m.content || "")}</div>`;
  if (m.stats) html += `<div class="stats">${escapeHtml(m.stats)}</div>`;
  div.innerHTML = html;
}

function render() {
  const log = $("log");
  log.replaceChildren(...state.messages.map(messageNode));
  log.scrollTop = log.scrollHeight;
}

function options() {
  const o = {};
  if ($("temperature").value !== "") o.temperature = Number($("temperature").value);
  if ($("num_ctx").value !== "") o.num_ctx = Number($("num_ctx").value);
  if ($("seed").value !== "") o.seed = Number($("seed").value);
  return o;
}

function readImages() {
  const files = Array.from($("images").files || []);
  return Promise.all(files.map((f) => new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
    reader.onerror = () => reject(new Error("cannot read " + f.name));
    reader.readAsDataURL(f);
  })));
}

async function send(ev) {
  ev.preventDefault();
  const text = $("prompt").value;
  if (!text.trim() || busy || !state.model) return;
  busy = true;
  const user = { role: "user", content: text };
  try {
    if (!$("images-label").hidden) {
      const images = await readImages();
      if (images.length) user.images = images;
    }
  } catch (e) {
    busy = false;
    setStatus(String(e.message || e));
    return;
  }
  state.messages.push(user);
  const reply = { role: "assistant", content: "", thinking: "" };
  state.messages.push(reply);
  $("prompt").value = "";
  $("images").value = "";
  render();
  const node = $("log").lastElementChild;
  // A turn that failed (its answer is an error) is shown but not sent again.
  const history = state.messages.slice(0, -1)
    .filter((m, i, all) => m.role === "assistant" || (m.role === "user" && all[i + 1]?.role !== "error"))
    .map((m) => (m.images ? { role: m.role, content: m.content, images: m.images } : { role: m.role, content: m.content }));
  if ($("system").value.trim()) history.unshift({ role: "system", content: $("system").value });
  const body = { model: state.model, messages: history, stream: true, options: options() };
  if ($("think").value) body.think = $("think").value === "true";
  controller = new AbortController();
  $("send").hidden = true;
  $("stop").hidden = false;
  setStatus("generating…");
  let pending = false;
  const paint = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; fill(node, reply); $("log").scrollTop = $("log").scrollHeight; });
  };
  try {
    const r = await api("/api/chat", body, controller.signal);
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (let ended = false; !ended;) {
      const { value, done } = await reader.read();
      ended = done;
      buf += done ? decoder.decode() + "\n" : decoder.decode(value, { stream: true });   // the last line may lack \n
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        const chunk = JSON.parse(line);
        if (chunk.error) throw new Error(chunk.error);
        if (chunk.message) {
          reply.content += chunk.message.content || "";
          reply.thinking += chunk.message.thinking || "";
        }
        if (chunk.done) {
          const secs = (chunk.eval_duration || 0) / 1e9;
          reply.stats = `${chunk.eval_count} tokens` + (secs > 0 ? `, ${(chunk.eval_count / secs).toFixed(1)} tokens/s` : "");
        }
        paint();
      }
    }
    setStatus("");
  } catch (e) {
    if (e.name === "AbortError") {
      reply.stats = "stopped";
      setStatus("stopped");
    } else {
      reply.role = "error";
      reply.content = String(e.message || e);
      setStatus("");
    }
  } finally {
    controller = null;
    busy = false;
    $("send").hidden = false;
    $("stop").hidden = true;
    node.className = "msg " + reply.role;
    fill(node, reply);
    save();
  }
}

// --- models ----------------------------------------------------------------------------------------
async function loadModels() {
  try {
    const [tags, ps] = await Promise.all([api("/api/tags").then((r) => r.json()), api("/api/ps").then((r) => r.json())]);
    const loaded = new Set((ps.models || []).map((m) => m.name));
    const names = (tags.models || []).map((m) => m.name).sort((a, b) => (loaded.has(b) - loaded.has(a)) || a.localeCompare(b));
    const select = $("model");
    select.replaceChildren(...names.map((n) => {
      const o = document.createElement("option");
      o.value = n;
      o.textContent = (loaded.has(n) ? "● " : "") + n;
      return o;
    }));
    if (!names.length) setStatus("no models yet: pull or create one (pyollama pull smollm2:135m)");
    if (names.includes(state.model)) select.value = state.model;
    else state.model = select.value;
    await modelChanged();
  } catch (e) {
    setStatus("cannot list models: " + e.message);
  }
}

async function modelChanged() {
  state.model = $("model").value;
  save();
  capabilities = [];
  try {
    capabilities = (await (await api("/api/show", { model: state.model })).json()).capabilities || [];
  } catch (e) { /* shown when the model is used */ }
  $("images-label").hidden = !capabilities.includes("vision");
  if (state.model && capabilities.length && !capabilities.includes("completion")) {
    setStatus(`${state.model} cannot chat (it is a ${capabilities[0]} model)`);
  } else if (!controller) {
    setStatus("");
  }
}

$("composer").addEventListener("submit", send);
$("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("composer").requestSubmit(); }
});
$("stop").addEventListener("click", () => { if (controller) controller.abort(); });
$("new").addEventListener("click", () => { if (controller) controller.abort(); state.messages = []; save(); render(); });
$("model").addEventListener("change", modelChanged);
for (const k of SETTINGS) $(k).addEventListener("change", save);
restore();
render();
loadModels();
