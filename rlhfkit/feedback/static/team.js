// Team features of the annotation page, apart from annotate.js (which owns judging and shows
// "N judged", the done count): the project's guidelines and worked examples (shown once before
// your first item when there are worked examples, and in the "?" panel), and "M remaining"
// beside the progress. Text goes in with textContent only.
"use strict";
(() => {
  const app = document.getElementById("app");
  if (!app) return;
  const pid = app.dataset.project;
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const get = (url) => fetch(url, { credentials: "same-origin" }).then((r) => (r.ok ? r.json() : Promise.reject(r.status)));

  function guidelinesBlock(g) {
    const box = el("div", "guidelines");
    if (g.instructions) {
      box.appendChild(el("h3", null, "Guidelines"));
      box.appendChild(el("div", "para", g.instructions));
    }
    g.examples.forEach((ex, n) => {
      const card = el("div", "example");
      card.appendChild(el("h4", null, `Worked example ${n + 1}`));
      card.appendChild(el("div", "example-prompt para", ex.prompt));
      const list = el("ol", "example-responses");
      ex.responses.forEach((r) => list.appendChild(el("li", "para", r)));
      card.appendChild(list);
      const ans = el("p", "example-answer");
      ans.appendChild(el("b", null, "Answer: "));
      ans.appendChild(document.createTextNode(ex.answer));
      card.appendChild(ans);
      if (ex.why) card.appendChild(el("p", "example-why muted", ex.why));
      box.appendChild(card);
    });
    return box;
  }

  // The intro dialog swallows keys (so "1" does not rank the item behind it) until closed.
  let intro = null;
  function closeIntro() {
    if (!intro) return;
    intro.remove();
    intro = null;
    try { localStorage.setItem(`rlhfkit-guidelines-${pid}`, "seen"); } catch (_) { /* private mode */ }
  }
  window.addEventListener("keydown", (ev) => {
    if (!intro) return;
    if (ev.key === "Enter" || ev.key === "Escape") closeIntro();
    ev.stopPropagation();
    ev.preventDefault();
  }, true);

  function showIntro(g) {
    intro = el("div", "intro-backdrop");
    const dialog = el("section", "intro card");
    dialog.id = "guidelines-intro";
    dialog.setAttribute("role", "dialog");
    dialog.setAttribute("aria-label", "Guidelines");
    dialog.appendChild(el("h2", null, "Before you start"));
    dialog.appendChild(guidelinesBlock(g));
    const go = el("button", "primary", "Start ");
    go.type = "button";
    go.appendChild(el("kbd", null, "Enter"));
    go.addEventListener("click", closeIntro);
    dialog.appendChild(el("p", "muted small", "Press ? at any time to see these guidelines again."));
    dialog.appendChild(go);
    intro.appendChild(dialog);
    document.body.appendChild(intro);
    go.focus();
  }

  const counter = el("span", "done-remaining");
  counter.id = "done-remaining";
  const progress = document.getElementById("progress");
  if (progress) progress.after(counter);
  async function refreshCounts() {
    try {
      const p = await get(`/api/projects/${pid}/progress`);
      counter.textContent = `· ${p.remaining} remaining`;
    } catch (_) { /* the page's own status line reports connection problems */ }
  }
  if (progress) new MutationObserver(refreshCounts).observe(progress, { childList: true, characterData: true, subtree: true });

  Promise.all([get(`/api/projects/${pid}/guidelines`), get(`/api/projects/${pid}/progress`)]).then(([g, p]) => {
    counter.textContent = `· ${p.remaining} remaining`;
    if (!g.instructions && !g.examples.length) return;
    const help = document.getElementById("help");
    if (help) help.appendChild(guidelinesBlock(g));
    let seen = false;
    try { seen = localStorage.getItem(`rlhfkit-guidelines-${pid}`) === "seen"; } catch (_) { /* private mode */ }
    // Plain instructions are already shown above every item; the dialog is for worked examples.
    if (p.done === 0 && !seen && g.examples.length) showIntro(g);
  }).catch(() => {});
})();
