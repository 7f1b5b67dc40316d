// Rating (1-7 Likert) and thumbs up/down projects: one judgement per response. annotate.js
// asks window.rlhfkitModes[mode] for the page's behaviour in these modes (render, keys, the
// judgement to submit), so judging stays in one flow. Keyboard: 1-7 (ratings) or y/+ and n/-
// (thumbs) judge the selected response and move to the next unjudged one; arrow keys or j/k
// move the selection; Backspace/u clears the last judgement. Every control is a real button.
"use strict";
(() => {
  const LIKERT = ["1 very bad", "2 bad", "3 somewhat bad", "4 neutral", "5 somewhat good", "6 good", "7 very good"];
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };

  function makeMode(kind) {
    let values = [];   // per display position: 1..7, true/false, or null
    let at = 0;        // selected display position
    let history = [];  // display positions in the order they were judged (for undo)
    let view = null;
    let rerender = () => {};

    const options = kind === "rating" ? LIKERT.map((label, i) => ({ value: i + 1, key: String(i + 1), label }))
      : [{ value: true, key: "y", label: "👍 good" }, { value: false, key: "n", label: "👎 bad" }];

    function set(pos, value) {
      if (!view || pos < 0 || pos >= view.responses.length) return;
      values[pos] = value;
      history = history.filter((p) => p !== pos).concat([pos]);
      const next = values.findIndex((v, i) => v === null && i > pos);
      const first = values.findIndex((v) => v === null);
      at = next >= 0 ? next : first >= 0 ? first : pos;
      rerender();
    }

    return {
      shortcuts: [
        kind === "rating" ? ["1 … 7", "rate the selected response (1 very bad … 7 very good)"]
          : ["y or +  /  n or -", "thumbs up / thumbs down for the selected response"],
        ["← → or j k", "select the previous / next response"],
        ["Backspace or u", "clear the last judgement"], ["Enter", "submit"],
        ["c", "write a critique (Esc leaves)"], ["s", "skip with a reason"],
        ["Shift+U", "undo the last submission"], ["?", "show/hide shortcuts and guidelines"],
      ],
      reset(assignment, onChange) {
        view = assignment;
        rerender = onChange;
        values = assignment.responses.map(() => null);
        history = [];
        at = 0;
      },
      render(cards, bar) {
        cards.forEach((card) => {
          const pos = Number(card.dataset.pos);
          let row = card.querySelector(".scale");
          if (!row) {
            row = el("div", "scale " + kind);
            row.setAttribute("role", "group");
            row.setAttribute("aria-label", `${kind === "rating" ? "rating" : "thumbs"} for response ${pos + 1}`);
            options.forEach((o) => {
              const b = el("button", "scale-option", kind === "rating" ? String(o.value) : o.label);
              b.type = "button";
              b.title = o.label;
              b.dataset.value = String(o.value);
              b.addEventListener("click", (ev) => { ev.stopPropagation(); set(pos, o.value); });
              row.appendChild(b);
            });
            card.appendChild(row);
          }
          row.querySelectorAll(".scale-option").forEach((b) => {
            const on = values[pos] !== null && String(values[pos]) === b.dataset.value;
            b.classList.toggle("chosen", on);
            b.setAttribute("aria-pressed", String(on));
          });
          card.classList.toggle("selected", pos === at);
          card.classList.toggle("placed", values[pos] !== null);
          card.classList.toggle("bad", values[pos] === false);
          card.querySelector(".rank-badge").textContent = values[pos] === null ? ""
            : kind === "rating" ? LIKERT[values[pos] - 1] : values[pos] ? "👍 good" : "👎 bad";
        });
        const left = values.filter((v) => v === null).length;
        bar.appendChild(el("span", "hint", left ? `${left} of ${values.length} left: ${kind === "rating"
          ? "press 1-7 to rate" : "y/+ thumbs up, n/- thumbs down"} the selected response (←/→ to move).`
          : "All judged. Enter submits."));
      },
      click(pos) { at = pos; rerender(); },
      key(ev) {
        const k = ev.key;
        if (k === "ArrowRight" || k === "j") at = Math.min(values.length - 1, at + 1);
        else if (k === "ArrowLeft" || k === "k") at = Math.max(0, at - 1);
        else if (kind === "rating" && /^[1-7]$/.test(k)) { set(at, Number(k)); return true; }
        else if (kind === "binary" && (k === "y" || k === "+")) { set(at, true); return true; }
        else if (kind === "binary" && (k === "n" || k === "-")) { set(at, false); return true; }
        else return false;
        rerender();
        return true;
      },
      undo() {
        const pos = history.pop();
        if (pos === undefined) return;
        values[pos] = null;
        at = pos;
      },
      complete() { return values.length > 0 && values.every((v) => v !== null); },
      judgement() {
        const judgements = view.responses.map((r, pos) => (kind === "rating"
          ? { kind: "rating", response: r.index, score: values[pos], scale_min: 1, scale_max: 7 }
          : { kind: "binary", response: r.index, thumbs_up: values[pos] }));
        return { kind: "per_response", judgements };
      },
    };
  }

  window.rlhfkitModes = { rating: makeMode("rating"), binary: makeMode("binary") };
})();
