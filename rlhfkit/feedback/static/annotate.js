// The annotation page. Plain JS, no build step. Every piece of item text is inserted with
// textContent or as text nodes (never innerHTML), so a response containing <script> or
// <img onerror> is shown as the characters it is; markdown is parsed into DOM nodes (renderText).
"use strict";
(() => {
  const app = document.getElementById("app");
  const projectId = app.dataset.project;
  const mode = app.dataset.mode;
  const ext = (window.rlhfkitModes || {})[mode] || null;  // rating / thumbs projects: static/scales.js
  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };

  let current = null;      // the assignment view from the API
  let tiers = [];          // ranking: list of tiers of display positions (0-based)
  let tieNext = false;     // "=" pressed: the next number joins the last tier
  let choice = null;       // pairwise: "a" | "b" | "tie" | "both_bad"
  let allBad = false;
  let clientId = null;     // judgement id for the current item; reused by retries
  let shownAt = 0;
  let lastSubmitted = null;
  let busy = false;

  // Extra feedback kinds plug in here (static/language_feedback.js): they read the page state,
  // reset on each item (onShow) and add fields to the submitted body (body). Text fields they
  // create carry data-free-text, so typing in them never triggers a shortcut. In rating/thumbs
  // projects the state carries the per-response judgements so far (display order).
  const plugins = [];
  window.rlhfkitAnnotate = {
    mode, plugins, el, setStatus, perResponse: Boolean(ext),
    state: () => ({ current, tiers, choice, allBad, perResponse: ext && current ? ext.judgement().judgements : null }),
  };

  const SHORTCUTS = ext ? ext.shortcuts : mode === "pairwise" ? [
    ["1 or a", "response A is better"], ["2 or b", "response B is better"],
    ["t or =", "tie (equally good)"], ["0 or x", "both bad"],
    ["Enter", "submit"], ["Backspace", "clear the choice"], ["c", "write a critique (Esc leaves)"],
    ["s", "skip with a reason"], ["Shift+U", "undo the last submission"], ["?", "show/hide shortcuts"],
  ] : [
    ["1 … 9", "the number of the best remaining response (press repeatedly)"],
    ["= then a number, or Shift+number", "tie that response with the previous one"],
    ["Backspace or u", "undo the last placement"], ["x", "all responses are bad"],
    ["Enter", "submit"], ["c", "write a critique (Esc leaves)"], ["s", "skip with a reason"],
    ["Shift+U", "undo the last submission"], ["?", "show/hide shortcuts"],
  ];

  function fillHelp() {
    const table = $("help-table");
    for (const [keys, what] of SHORTCUTS) {
      const tr = el("tr");
      const k = el("td");
      k.appendChild(el("kbd", null, keys));
      tr.appendChild(k);
      tr.appendChild(el("td", null, what));
      table.appendChild(tr);
    }
  }

  // Markdown, rendered safely: the text is parsed into blocks (fenced code, headings, lists,
  // quotes, paragraphs) and inline spans (`code`, **bold**, *italic*), and every node is built
  // with createElement + textContent. No string ever reaches innerHTML, so raw HTML in a response
  // (<script>, <img onerror>) stays visible text; links stay text too (no clickable URLs from
  // model output on an annotator's screen). Paragraphs keep their line breaks (pre-wrap).
  const INLINE = /(`+)([\s\S]+?)\1|\*\*([^*\n][\s\S]*?)\*\*|__([^_\n][\s\S]*?)__|\*([^*\s][^*\n]*?)\*|(?<![\w])_([^_\s][^_\n]*?)_(?![\w])/g;

  function appendInline(parent, text) {
    let last = 0;
    for (const m of text.matchAll(INLINE)) {
      if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
      if (m[2] !== undefined) parent.appendChild(el("code", null, m[2]));
      else if (m[3] !== undefined || m[4] !== undefined) appendInline(parent.appendChild(el("strong")), m[3] ?? m[4]);
      else appendInline(parent.appendChild(el("em")), m[5] ?? m[6]);
      last = m.index + m[0].length;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function renderText(container, text) {
    container.replaceChildren();
    const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
    let para = [];
    const flush = () => {
      if (para.length) appendInline(container.appendChild(el("div", "para")), para.join("\n"));
      para = [];
    };
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      let m;
      if ((m = line.match(/^\s*(```+|~~~+)/))) {  // fenced code, to the closing fence or the end
        flush();
        const fence = m[1], body = [];
        for (i++; i < lines.length && !lines[i].trim().startsWith(fence); i++) body.push(lines[i]);
        container.appendChild(el("pre")).appendChild(el("code", null, body.join("\n")));
      } else if ((m = line.match(/^(#{1,6})\s+(.*)$/))) {
        flush();
        appendInline(container.appendChild(el("div", `md-h md-h${m[1].length}`)), m[2]);
      } else if (/^\s*([-*+]|\d{1,9}[.)])\s+/.test(line)) {
        flush();
        const ordered = /^\s*\d/.test(line);
        const list = container.appendChild(el(ordered ? "ol" : "ul"));
        const start = line.match(/^\s*(\d+)/);
        if (ordered && start && start[1] !== "1") list.start = Number(start[1]);
        for (; i < lines.length && /^\s*([-*+]|\d{1,9}[.)])\s+/.test(lines[i]); i++) {
          appendInline(list.appendChild(el("li")), lines[i].replace(/^\s*([-*+]|\d{1,9}[.)])\s+/, ""));
        }
        i--;
      } else if (/^\s*>/.test(line)) {
        flush();
        const body = [];
        for (; i < lines.length && /^\s*>/.test(lines[i]); i++) body.push(lines[i].replace(/^\s*>\s?/, ""));
        i--;
        renderText(container.appendChild(el("blockquote")), body.join("\n"));
      } else if (!line.trim()) {
        flush();
      } else {
        para.push(line);
      }
    }
    flush();
  }

  function renderPrompt(prompt) {
    const box = $("prompt");
    box.replaceChildren();
    if (typeof prompt === "string") {
      renderText(box, prompt);
      return;
    }
    for (const m of prompt) {
      const turn = el("div", "turn " + m.role);
      turn.appendChild(el("span", "role", m.role));
      const body = el("div", "turn-body");
      renderText(body, m.content);
      turn.appendChild(body);
      box.appendChild(turn);
    }
  }

  const label = (pos) => (mode === "pairwise" ? "AB"[pos] : String(pos + 1));
  const placed = () => new Set(tiers.flat());

  function setStatus(text, kind) {
    const s = $("status");
    s.textContent = text || "";
    s.className = "status " + (kind || "");
  }

  function renderProgress(p) {
    if (!p) return;
    let text = `${p.judged} judged`;
    if (p.daily_cap) text += ` · today ${p.today}/${p.daily_cap}`;
    if (p.skipped) text += ` · ${p.skipped} skipped`;
    $("progress").textContent = text;
  }

  function renderResponses() {
    const box = $("responses");
    box.replaceChildren();
    box.style.setProperty("--k", current.responses.length);
    current.responses.forEach((r, pos) => {
      const card = el("article", "card response");
      card.dataset.pos = pos;
      card.draggable = mode === "ranking";
      const head = el("header");
      head.appendChild(el("span", "key", label(pos)));
      head.appendChild(el("span", "rank-badge"));
      card.appendChild(head);
      const body = el("div", "response-text");
      if (r.empty) body.appendChild(el("span", "empty-response", "(empty response)"));  // imported as ""
      else renderText(body, r.text);
      card.appendChild(body);
      card.addEventListener("click", () => (ext ? ext.click(pos) : mode === "pairwise" ? choose("ab"[pos]) : place(pos, false)));
      card.addEventListener("dragstart", (ev) => ev.dataTransfer.setData("text/plain", String(pos)));
      box.appendChild(card);
    });
  }

  function ordinal(n) {
    return n + ({ 1: "st", 2: "nd", 3: "rd" }[n] || "th");  // K is at most 9
  }

  function renderState() {
    if (!current) return;
    const cards = document.querySelectorAll(".response");
    const rank = $("ranking");
    rank.replaceChildren();
    if (ext) ext.render(cards, rank);
    else if (mode === "ranking") {
      const tierOf = new Map();
      tiers.forEach((t, i) => t.forEach((p) => tierOf.set(p, i)));
      cards.forEach((c) => {
        const pos = Number(c.dataset.pos);
        const t = tierOf.get(pos);
        c.classList.toggle("placed", !allBad && t !== undefined);
        c.classList.toggle("best", !allBad && t === 0);
        c.classList.toggle("bad", allBad);  // red "bad" badges, never the green of a placement
        c.querySelector(".rank-badge").textContent = allBad ? "bad" : (t === undefined ? "" : ordinal(t + 1));
      });
      rank.appendChild(el("span", "hint", allBad ? "All responses marked bad. Enter submits, Backspace undoes."
        : tiers.length === 0 ? "Press the number of the best response (or drag it here)."
        : placed().size < current.responses.length ? (tieNext ? "Tie: press the number to tie with the last one."
        : "Next best? (= or Shift+number ties with the previous)") : "Ranking complete. Enter submits."));
      tiers.forEach((t, i) => {
        const chip = el("span", "tier");
        chip.dataset.tier = i;
        chip.appendChild(el("span", "tier-n", ordinal(i + 1)));
        chip.appendChild(document.createTextNode(t.map(label).join(" = ")));
        rank.appendChild(chip);
      });
    } else {
      cards.forEach((c) => {
        const pos = Number(c.dataset.pos);
        const win = (choice === "a" && pos === 0) || (choice === "b" && pos === 1);
        c.classList.toggle("best", win || choice === "tie");
        c.classList.toggle("bad", choice === "both_bad");
        c.querySelector(".rank-badge").textContent = win ? "better" : choice === "tie" ? "tie"
          : choice === "both_bad" ? "bad" : "";
      });
      rank.appendChild(el("span", "hint", choice ? `Your choice: ${{ a: "A is better", b: "B is better",
        tie: "tie", both_bad: "both bad" }[choice]}. Enter submits.` : "A better (1/a), B better (2/b), tie (t), both bad (x)."));
    }
    $("submit").disabled = !complete() || busy;
  }

  function complete() {
    if (!current) return false;
    if (ext) return ext.complete();
    if (mode === "pairwise") return choice !== null;
    return allBad || placed().size === current.responses.length;
  }

  function place(pos, tie) {
    if (!current || allBad || pos >= current.responses.length || placed().has(pos)) return;
    if ((tie || tieNext) && tiers.length) tiers[tiers.length - 1].push(pos);
    else tiers.push([pos]);
    tieNext = false;
    const rest = current.responses.map((_, i) => i).filter((i) => !placed().has(i));
    if (rest.length === 1) tiers.push(rest);  // the last one is placed for you (undo to change)
    renderState();
  }

  function choose(c) {
    if (!current) return;
    choice = c;
    renderState();
  }

  function undo() {
    if (ext) ext.undo();
    else if (allBad) allBad = false;
    else if (mode === "pairwise") choice = null;
    else if (tieNext) tieNext = false;
    else if (tiers.length) {
      const last = tiers[tiers.length - 1];
      last.pop();
      if (!last.length) tiers.pop();
    }
    renderState();
  }

  function judgement() {
    const idx = (pos) => current.responses[pos].index;  // display position -> original index
    if (ext) return ext.judgement();
    if (mode === "pairwise") {
      return { kind: "pairwise", a: idx(0), b: idx(1), choice };
    }
    if (allBad) return { kind: "all_bad" };
    return { kind: "ranking", tiers: tiers.map((t) => t.map(idx)) };
  }

  async function api(method, url, body) {
    // Retries network failures and 5xx with the same body (the judgement id makes it safe).
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await fetch(url, {
          method, credentials: "same-origin",
          headers: body ? { "Content-Type": "application/json" } : {},
          body: body ? JSON.stringify(body) : undefined,
        });
        if (r.status >= 500 && attempt < 5) throw new Error("server error " + r.status);
        const data = await r.json().catch(() => ({}));
        if (!r.ok) throw Object.assign(new Error(data.detail || r.statusText), { fatal: true, status: r.status });
        return data;
      } catch (e) {
        if (e.fatal || attempt >= 5) throw e;
        setStatus("Connection problem, retrying…", "warn");
        await new Promise((res) => setTimeout(res, 300 * 2 ** attempt));
      }
    }
  }

  function show(assignment) {
    current = assignment;
    app.classList.remove("finished");
    tiers = []; tieNext = false; choice = null; allBad = false;
    if (ext) ext.reset(assignment, renderState);
    clientId = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()).replace(/[^A-Za-z0-9-]/g, "");
    shownAt = performance.now();
    $("critique").value = "";
    renderPrompt(current.prompt);
    renderResponses();
    renderState();
    plugins.forEach((p) => p.onShow && p.onShow(current));
    window.scrollTo(0, 0);
  }

  async function loadNext() {
    const data = await api("GET", `/api/projects/${projectId}/next`);
    renderProgress(data.progress);
    if (data.instructions) {
      $("instructions").hidden = false;
      $("instructions").textContent = data.instructions;
    }
    if (data.done) {
      current = null;
      app.classList.add("finished");
      $("prompt").replaceChildren();
      $("responses").replaceChildren(el("p", "done", data.reason === "daily_cap"
        ? "You reached today's limit. Thank you!" : "Nothing left for you in this project. Thank you!"));
      $("ranking").replaceChildren();
      $("submit").disabled = true;
      return;
    }
    show(data.assignment);
  }

  async function submit() {
    if (!complete() || busy) return;
    busy = true;
    renderState();
    try {
      const critique = $("critique").value.trim();
      const res = await api("POST", `/api/assignments/${current.assignment_id}/judgement`, {
        id: clientId, judgement: judgement(), critique: critique || null,
        time_spent_s: Math.round((performance.now() - shownAt) / 100) / 10,
        ...plugins.reduce((extra, p) => Object.assign(extra, p.body ? p.body() : {}), {}),
      });
      lastSubmitted = res.id;
      $("retract").disabled = false;
      setStatus("Saved.", "ok");
      await loadNext();
    } catch (e) {
      setStatus("Not saved: " + e.message, "error");
    } finally {
      busy = false;
      renderState();
    }
  }

  async function retract() {
    if (!lastSubmitted || busy) return;
    busy = true;
    try {
      const res = await api("DELETE", `/api/judgements/${encodeURIComponent(lastSubmitted)}`);
      lastSubmitted = null;
      $("retract").disabled = true;
      setStatus("Last submission undone; it is back for you to judge again.", "ok");
      show(res.assignment);
    } catch (e) {
      setStatus("Could not undo: " + e.message, "error");
    } finally {
      busy = false;
      renderState();
    }
  }

  function openSkip() {
    if (!current) return;
    $("skip-box").hidden = false;
  }

  async function skip(reason) {
    $("skip-box").hidden = true;
    if (!current || !reason) return;
    try {
      await api("POST", `/api/assignments/${current.assignment_id}/skip`, { reason });
      setStatus("Skipped.", "ok");
      await loadNext();
    } catch (e) {
      setStatus("Could not skip: " + e.message, "error");
    }
  }

  function onKey(ev) {
    const t = ev.target;
    if (t && t.dataset && "freeText" in t.dataset) {  // a plugin's text field: Esc leaves it
      if (ev.key === "Escape") t.blur();
      return;
    }
    if (t === $("critique")) {
      if (ev.key === "Escape") t.blur();
      return;
    }
    if (t === $("skip-other")) {
      if (ev.key === "Enter") skip(t.value.trim());
      if (ev.key === "Escape") $("skip-box").hidden = true;
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (!$("skip-box").hidden) {
      const btn = document.querySelectorAll("#skip-box button[data-reason]")[Number(ev.key) - 1];
      if (btn) skip(btn.dataset.reason);
      else if (ev.key === "4") { $("skip-other").focus(); ev.preventDefault(); }
      else if (ev.key === "Escape") $("skip-box").hidden = true;
      return;
    }
    const digit = /^Digit([0-9])$/.exec(ev.code);
    const k = ev.key;
    let handled = true;
    if (k === "?") $("help").hidden = !$("help").hidden;
    else if (k === "Enter") submit();
    else if (k === "U" && ev.shiftKey) retract();
    else if (k === "Backspace" || k === "u") undo();
    else if (k === "c") { $("critique").focus(); }
    else if (k === "s") openSkip();
    else if (ext) handled = ext.key(ev);
    else if (mode === "pairwise") {
      if (k === "1" || k === "a") choose("a");
      else if (k === "2" || k === "b") choose("b");
      else if (k === "t" || k === "=") choose("tie");
      else if (k === "0" || k === "x") choose("both_bad");
      else handled = false;
    } else if (k === "x") { allBad = !allBad; tiers = []; renderState(); }
    else if (k === "=") { tieNext = tiers.length > 0; renderState(); }
    else if (digit && digit[1] !== "0") place(Number(digit[1]) - 1, ev.shiftKey);
    else handled = false;
    if (handled) ev.preventDefault();
  }

  function wireDrag() {
    // Drag a card onto the ranking bar to place it next; onto a tier chip to tie with that tier.
    const bar = $("ranking");
    bar.addEventListener("dragover", (ev) => ev.preventDefault());
    bar.addEventListener("drop", (ev) => {
      ev.preventDefault();
      const pos = Number(ev.dataTransfer.getData("text/plain"));
      const chip = ev.target.closest ? ev.target.closest(".tier") : null;
      if (chip && !placed().has(pos)) {
        tiers[Number(chip.dataset.tier)].push(pos);
        const rest = current.responses.map((_, i) => i).filter((i) => !placed().has(i));
        if (rest.length === 1) tiers.push(rest);
        renderState();
      } else place(pos, false);
    });
  }

  document.addEventListener("keydown", onKey);
  $("submit").addEventListener("click", submit);
  $("undo").addEventListener("click", undo);
  $("allbad").addEventListener("click", () => (mode === "pairwise" ? choose("both_bad") : onKey({ key: "x", code: "KeyX", target: document.body, preventDefault() {} })));
  $("skip").addEventListener("click", openSkip);
  $("retract").addEventListener("click", retract);
  $("skip-cancel").addEventListener("click", () => ($("skip-box").hidden = true));
  document.querySelectorAll("#skip-box button[data-reason]").forEach((b) => b.addEventListener("click", () => skip(b.dataset.reason)));
  $("help-toggle").addEventListener("click", () => ($("help").hidden = !$("help").hidden));
  fillHelp();
  wireDrag();
  loadNext().catch((e) => setStatus("Could not load work: " + e.message, "error"));
})();
