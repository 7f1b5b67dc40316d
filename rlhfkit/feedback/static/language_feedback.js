// Language feedback on the annotation page (issue 13): a critique of one response, and an edit of
// the best response with a word diff shown before it is submitted. It plugs into annotate.js
// through window.rlhfkitAnnotate; every text is set with textContent (never innerHTML).
//   k then a number (pairwise: k then 1/2 or a/b)  write a critique of that response
//   K (rating / thumbs projects, where k moves the selection and numbers rate)
//                                                    write a critique of the selected response
//   e                                                edit the best response (ranked first / chosen /
//                                                    rated highest / first thumbs up)
//   Esc                                              leave the text field (Enter then submits)
"use strict";
(() => {
  const host = window.rlhfkitAnnotate;
  if (!host) return;
  const { mode, el } = host;
  const perResponse = Boolean(host.perResponse);  // rating / thumbs: static/scales.js owns k and the digits
  const $ = (id) => document.getElementById(id);
  let current = null;
  let critiqueNext = false;  // "k" pressed: the next number picks the response to critique
  let editing = null;        // {index, original} while the edit box is open

  // ---- word diff (longest common subsequence over words and the white space between them)
  function tokens(text) {
    return text.split(/(\s+)/).filter((t) => t.length);
  }

  function diff(a, b) {
    // [op, text] with op "=", "-" (only in a) or "+" (only in b). Quadratic: past 4M cells the
    // whole texts are shown as removed and added instead (still correct, just coarse).
    const x = tokens(a), y = tokens(b);
    if (x.length * y.length > 4e6) return [["-", a], ["+", b]];
    const n = x.length, m = y.length;
    const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
      }
    }
    const out = [];
    const push = (op, t) => (out.length && out[out.length - 1][0] === op ? (out[out.length - 1][1] += t) : out.push([op, t]));
    let i = 0, j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && x[i] === y[j]) { push("=", x[i]); i++; j++; }
      else if (i < n && (j === m || lcs[i + 1][j] >= lcs[i][j + 1])) { push("-", x[i]); i++; }  // removals first
      else { push("+", y[j]); j++; }
    }
    return out;
  }

  function renderDiff() {
    const box = $("edit-diff");
    box.replaceChildren();
    if (!editing) return;
    const text = $("edit-text").value;
    if (text.trim() === editing.original.trim()) {
      box.appendChild(el("span", "hint", "No changes yet: the edit is not sent until you change the text."));
      return;
    }
    for (const [op, t] of diff(editing.original, text)) {
      box.appendChild(el(op === "=" ? "span" : op === "-" ? "del" : "ins", null, t));
    }
  }

  // ---- the best response: first of the top tier, the pairwise choice, the highest rating (first
  // on a tie) or the first thumbs up
  function bestPosition() {
    const s = host.state();
    if (!s.current || s.allBad) return null;
    if (s.perResponse) {
      const value = (j) => (j.kind === "rating" ? j.score : j.thumbs_up === true ? 1 : null);  // thumbs down: never best
      let best = null;
      s.perResponse.forEach((j, pos) => {
        if (value(j) !== null && (best === null || value(j) > value(s.perResponse[best]))) best = pos;
      });
      return best;
    }
    if (mode === "pairwise") return s.choice === "a" ? 0 : s.choice === "b" ? 1 : null;
    return s.tiers.length ? s.tiers[0][0] : null;
  }

  function positionLabel(pos) {
    return mode === "pairwise" ? "AB"[pos] : String(pos + 1);
  }

  function openEdit() {
    const pos = bestPosition();
    if (pos === null) {
      host.setStatus(mode === "pairwise" ? "Choose A or B first: the edit starts from the better response."
        : mode === "rating" ? "Rate first: the edit starts from your highest-rated response."
        : mode === "binary" ? "Give a thumbs up first: the edit starts from the first response you liked."
        : "Rank first: the edit starts from your best response.", "warn");
      return;
    }
    const r = current.responses[pos];
    if (!editing || editing.index !== r.index) {
      editing = { index: r.index, original: r.text };
      $("edit-text").value = r.text;
      $("edit-label").textContent = `Your edit of response ${positionLabel(pos)} (Esc leaves; the diff below is what is sent)`;
    }
    $("edit-box").hidden = false;
    renderDiff();
    $("edit-text").focus();
  }

  function closeEdit() {
    editing = null;
    $("edit-box").hidden = true;
    $("edit-text").value = "";
    renderDiff();
  }

  function openCritique(pos) {
    const box = document.querySelectorAll(".response .response-critique")[pos];
    if (!box) return;
    box.hidden = false;
    box.focus();
  }

  function decorateCards() {
    document.querySelectorAll(".response").forEach((card, pos) => {
      const foot = el("footer", "lf-footer");
      const btn = el("button", "lf-critique-btn", "critique");
      btn.type = "button";
      btn.title = perResponse ? "critique this response (K: the selected one)"
        : `critique this response (k then ${positionLabel(pos)})`;
      const area = el("textarea", "response-critique");
      area.dataset.freeText = "";
      area.maxLength = 10000;
      area.rows = 2;
      area.hidden = true;
      area.placeholder = "What is wrong with this response, and how should it change? (Esc leaves)";
      area.setAttribute("aria-label", `critique of response ${positionLabel(pos)}`);
      btn.addEventListener("click", (ev) => { ev.stopPropagation(); openCritique(pos); });
      area.addEventListener("click", (ev) => ev.stopPropagation());  // a click in it is no ranking
      foot.append(btn, area);
      card.appendChild(foot);
    });
  }

  function buildEditBox() {
    const box = el("div", "edit-box");
    box.id = "edit-box";
    box.hidden = true;
    const label = el("label", "edit-label");
    label.id = "edit-label";
    label.htmlFor = "edit-text";
    const area = el("textarea");
    area.id = "edit-text";
    area.dataset.freeText = "";
    area.maxLength = 50000;
    area.rows = 6;
    area.addEventListener("input", renderDiff);
    const diffBox = el("div", "edit-diff");
    diffBox.id = "edit-diff";
    diffBox.setAttribute("aria-label", "changes to the response");
    const discard = el("button", null, "Discard edit");
    discard.type = "button";
    discard.id = "edit-discard";
    discard.addEventListener("click", closeEdit);
    box.append(label, area, el("div", "edit-diff-title", "Changes (removed, added):"), diffBox, discard);
    const buttons = document.querySelector(".controls .buttons");
    buttons.parentNode.insertBefore(box, buttons);
    const editBtn = el("button", null, "Edit best ");
    editBtn.type = "button";
    editBtn.id = "edit-open";
    editBtn.appendChild(el("kbd", null, "e"));
    editBtn.addEventListener("click", openEdit);
    buttons.insertBefore(editBtn, $("skip"));
    const line = document.querySelector(".shortcut-line");
    if (line) {
      if (perResponse) line.append(" · ", el("kbd", null, "K"), " critique the selected response · ", el("kbd", null, "e"), " edit the best");
      else line.append(" · ", el("kbd", null, "k"), "+number critique a response · ", el("kbd", null, "e"), " edit the best");
    }
    const help = $("help-table");
    const critiqueKey = perResponse ? ["K (Shift+k)", "critique the selected response (Esc leaves)"]
      : ["k then a number", "critique that response (Esc leaves)"];
    for (const [keys, what] of [critiqueKey,
                                ["e", "edit the best response; the diff shows what is sent (Esc leaves)"]]) {
      const tr = el("tr");
      tr.appendChild(el("td")).appendChild(el("kbd", null, keys));
      tr.appendChild(el("td", null, what));
      help.appendChild(tr);
    }
  }

  function onKey(ev) {
    // Capture phase, before annotate.js: only keys meant for this plugin are taken.
    const t = ev.target;
    if (!current || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (t && (t.tagName === "TEXTAREA" || t.tagName === "INPUT")) return;
    if (!$("skip-box").hidden) return;
    let pos = null;
    if (critiqueNext) {
      critiqueNext = false;
      const digit = /^Digit([1-9])$/.exec(ev.code);
      if (mode === "pairwise") pos = { 1: 0, 2: 1, a: 0, b: 1 }[ev.key] ?? null;
      else if (digit) pos = Number(digit[1]) - 1;
      host.setStatus("", "");
      if (pos !== null && pos < current.responses.length) openCritique(pos);
    } else if (perResponse && ev.key === "K") {
      const selected = document.querySelector(".response.selected");
      openCritique(selected ? Number(selected.dataset.pos) : 0);
    } else if (!perResponse && ev.key === "k") {
      critiqueNext = true;
      host.setStatus("Critique: press the number of the response.", "");
    } else if (ev.key === "e") {
      openEdit();
    } else {
      return;
    }
    ev.preventDefault();
    ev.stopImmediatePropagation();
  }

  host.plugins.push({
    onShow(assignment) {
      current = assignment;
      critiqueNext = false;
      closeEdit();
      decorateCards();
    },
    body() {
      const critiques = [];
      document.querySelectorAll(".response").forEach((card, pos) => {
        const text = card.querySelector(".response-critique").value.trim();
        if (text) critiques.push({ response: current.responses[pos].index, text });
      });
      const out = {};
      if (critiques.length) out.response_critiques = critiques;
      const text = $("edit-text").value;
      if (editing && text.trim() && text.trim() !== editing.original.trim()) out.edit = { response: editing.index, text };
      return out;
    },
  });
  buildEditBox();
  document.addEventListener("keydown", onKey, true);
})();
