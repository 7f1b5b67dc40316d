// The review page: the queue of disputed items, every judgement side by side, and the
// adjudication form. Labels are written in one notation, shown and typed alike (responses
// numbered from 1 in their original order): ranking "2 > 1 = 3" or "all bad"; pairwise
// "1 > 2", "1 = 2" (tie), "1 x 2" (both bad); ratings "1:7, 2:3"; thumbs "1:+, 2:-".
// All text goes in with textContent.
"use strict";
(() => {
  const root = document.getElementById("review");
  const pid = root.dataset.project;
  const mode = root.dataset.mode;
  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  let queue = [];
  let at = -1;
  let item = null;

  const HELP = {
    ranking: 'Ranking, best first: "2 > 1 = 3" (= ties), or "all bad".',
    pairwise: 'Pairwise: "1 > 2" (1 better), "1 = 2" (tie), "1 x 2" (both bad).',
    arena: 'Pairwise: "1 > 2" (1 better), "1 = 2" (tie), "1 x 2" (both bad).',
    rating: 'Ratings 1-7 for every response: "1:7, 2:3, 3:5".',
    binary: 'Thumbs for every response: "1:+, 2:-".',
  };

  function describe(j) {
    if (j.kind === "all_bad") return "all bad";
    if (j.kind === "ranking") return j.tiers.map((t) => t.map((i) => i + 1).join(" = ")).join(" > ");
    if (j.kind === "pairwise") {
      const [a, b] = [j.a + 1, j.b + 1];
      return { a: `${a} > ${b}`, b: `${b} > ${a}`, tie: `${a} = ${b}`, both_bad: `${a} x ${b}` }[j.choice];
    }
    if (j.kind === "per_response") {
      return j.judgements.slice().sort((x, y) => x.response - y.response)
        .map((x) => `${x.response + 1}:${x.kind === "rating" ? x.score : x.thumbs_up ? "+" : "-"}`).join(", ");
    }
    return JSON.stringify(j);
  }

  function parse(text) {
    const t = text.trim().toLowerCase();
    const num = (s) => {
      const n = Number(s.trim());
      if (!Number.isInteger(n) || n < 1) throw new Error(`"${s.trim()}" is not a response number`);
      return n - 1;
    };
    if (mode === "ranking") {
      if (t === "all bad") return { kind: "all_bad" };
      return { kind: "ranking", tiers: t.split(">").map((tier) => tier.split("=").map(num)) };
    }
    if (mode === "pairwise" || mode === "arena") {
      const m = t.match(/^(\d+)\s*([>=x<])\s*(\d+)$/);
      if (!m) throw new Error('write "1 > 2", "1 = 2" or "1 x 2"');
      const a = num(m[1]), b = num(m[3]);
      return { kind: "pairwise", a, b, choice: { ">": "a", "<": "b", "=": "tie", x: "both_bad" }[m[2]] };
    }
    const judgements = t.split(",").map((part) => {
      const [r, v] = part.split(":");
      if (v === undefined) throw new Error(`"${part.trim()}": write response:value`);
      if (mode === "rating") return { kind: "rating", response: num(r), score: Number(v), scale_min: 1, scale_max: 7 };
      if (!["+", "-"].includes(v.trim())) throw new Error(`"${part.trim()}": thumbs are + or -`);
      return { kind: "binary", response: num(r), thumbs_up: v.trim() === "+" };
    });
    return { kind: "per_response", judgements };
  }

  const api = window.rlhfkitAdminApi;  // static/admin_api.js

  function setStatus(text, kind) {
    $("review-status").textContent = text || "";
    $("review-status").className = "status " + (kind || "");
  }

  function renderQueue() {
    const list = $("queue");
    list.replaceChildren();
    if (!queue.length) list.appendChild(el("li", "muted", "Nothing disputed: annotators agree everywhere so far."));
    queue.forEach((q, n) => {
      const li = el("li", n === at ? "current" : "");
      const b = el("button", "linkish", q.external_id);
      b.type = "button";
      b.addEventListener("click", () => open(n));
      li.appendChild(b);
      li.appendChild(el("span", "muted small", q.reason === "gold" ? ` gold missed ×${q.failed_gold}`
        : ` disagreement ${q.disagreement.toFixed(2)}`));
      if (q.adjudicated) li.appendChild(el("span", "pill", "adjudicated"));
      list.appendChild(li);
    });
  }

  function renderItem() {
    const prompt = $("review-prompt");
    prompt.replaceChildren();
    if (typeof item.prompt === "string") prompt.appendChild(el("div", "para", item.prompt));
    else item.prompt.forEach((m) => prompt.appendChild(el("div", "para", `${m.role}: ${m.content}`)));
    const box = $("review-responses");
    box.replaceChildren();
    item.responses.forEach((r) => {
      const card = el("article", "card response");
      const head = el("header");
      head.appendChild(el("span", "key", String(r.index + 1)));
      card.appendChild(head);
      card.appendChild(r.empty ? el("span", "empty-response", "(empty response)") : el("div", "para", r.text));
      box.appendChild(card);
    });
    const table = $("review-judgements");
    table.replaceChildren();
    const head = el("tr");
    ["annotator", "label", "critique", "source", "seconds", ""].forEach((h) => head.appendChild(el("th", null, h)));
    table.appendChild(head);
    const rows = item.judgements.map((j) => [j.annotator, describe(j.judgement), j.critique || "", j.source, j.time_s.toFixed(0)]);
    if (item.gold_answer) rows.unshift(["gold answer", describe(item.gold_answer), "", "", ""]);
    rows.forEach((cells) => {
      const tr = el("tr");
      cells.forEach((c, n) => tr.appendChild(el("td", n === 1 ? "label" : null, c)));
      const adopt = el("button", null, "adopt");
      adopt.type = "button";
      adopt.addEventListener("click", () => { $("adj-label").value = cells[1]; $("adj-label").focus(); });
      tr.appendChild(el("td")).appendChild(adopt);
      table.appendChild(tr);
    });
    const adj = item.adjudication;
    $("current-adjudication").textContent = adj ? `Current: ${describe(adj.judgement)} by ${adj.reviewer}`
      + (adj.note ? ` (${adj.note})` : "") : "Not adjudicated yet.";
    $("adj-label").value = adj ? describe(adj.judgement) : "";
    $("adj-note").value = adj && adj.note ? adj.note : "";
  }

  async function open(n) {
    if (n < 0 || n >= queue.length) return;
    at = n;
    renderQueue();
    try {
      item = await api("GET", `/api/review/items/${queue[n].item_id}`);
      renderItem();
      setStatus("");
    } catch (e) { setStatus("Could not load the item: " + e.message, "error"); }
  }

  async function save() {
    if (!item) return;
    let judgement;
    try { judgement = parse($("adj-label").value); } catch (e) { setStatus(e.message, "error"); return; }
    try {
      item = await api("POST", `/api/review/items/${item.item_id}/adjudication`,
        { judgement, note: $("adj-note").value.trim() || null });
      queue[at].adjudicated = true;
      renderQueue();
      renderItem();
      setStatus("Adjudication saved.", "ok");
    } catch (e) { setStatus("Not saved: " + e.message, "error"); }
  }

  document.addEventListener("keydown", (ev) => {
    const typing = ev.target.tagName === "INPUT";
    if (typing && ev.key === "Enter") { save(); ev.preventDefault(); return; }
    if (typing || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "j") open(at + 1);
    else if (ev.key === "k") open(at - 1);
    else if (ev.key === "a") { $("adj-label").focus(); ev.preventDefault(); }
  });
  $("adj-save").addEventListener("click", save);
  $("notation-help").textContent = HELP[mode] || "";
  api("GET", `/api/review/projects/${pid}/queue`).then((q) => {
    queue = q;
    renderQueue();
    if (queue.length) open(0);
  }).catch((e) => setStatus("Could not load the queue: " + e.message, "error"));
})();
