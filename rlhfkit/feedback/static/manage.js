// Admin management pages: project settings and annotators, over the same admin API the CLI
// changes. Names and links go in with textContent only.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const status = (text, kind) => { $("manage-status").textContent = text; $("manage-status").className = "status " + (kind || ""); };
  const api = window.rlhfkitAdminApi;  // static/admin_api.js
  const run = (p, ok) => p.then(() => status(ok, "ok")).catch((e) => status("Not saved: " + e.message, "error"));

  const manage = $("manage");
  if (manage) {
    const url = `/api/admin/projects/${manage.dataset.project}`;
    const renderMembers = (names) => {
      const list = $("members");
      list.replaceChildren();
      if (!names.length) {
        const li = document.createElement("li");
        li.className = "muted";
        li.textContent = "no members";
        list.appendChild(li);
      }
      names.forEach((n) => {
        const li = document.createElement("li");
        li.textContent = n + " ";
        const b = document.createElement("button");
        b.type = "button";
        b.className = "remove-member";
        b.dataset.name = n;
        b.textContent = "remove";
        li.appendChild(b);
        list.appendChild(li);
      });
    };
    const members = (body) => api("POST", `${url}/members`, body).then((r) => {
      renderMembers(r.members);
      $("members-only").checked = r.members_only;
    });
    $("archived").addEventListener("change", (ev) => run(api("PATCH", url, { archived: ev.target.checked }),
      ev.target.checked ? "Archived: hidden from annotators." : "Active again."));
    $("members-only").addEventListener("change", (ev) => run(api("PATCH", url, { members_only: ev.target.checked }),
      ev.target.checked ? "Members only." : "Open to every annotator."));
    $("add-member").addEventListener("click", () => {
      const name = $("member-name").value.trim();
      if (name) run(members({ add: [name] }).then(() => { $("member-name").value = ""; }), `${name} added.`);
    });
    $("members").addEventListener("click", (ev) => {
      const b = ev.target.closest(".remove-member");
      if (b) run(members({ remove: [b.dataset.name] }), `${b.dataset.name} removed.`);
    });
    $("save-guidelines").addEventListener("click", () => {
      let examples;
      try { examples = JSON.parse($("examples").value || "[]"); } catch (e) { status("Examples are not valid JSON: " + e.message, "error"); return; }
      run(api("PATCH", url, { instructions: $("instructions").value, examples }), "Guidelines saved.");
    });
    $("delete-project").addEventListener("click", () => {
      const name = $("confirm-name").value;
      if (name !== manage.dataset.name) { status("Type the project's name exactly to delete it.", "error"); return; }
      api("DELETE", `${url}?confirm=${encodeURIComponent(name)}`)
        .then(() => { window.location.href = "/admin"; })
        .catch((e) => status("Not deleted: " + e.message, "error"));
    });
  }

  if ($("annotators-page")) {
    $("add-annotator").addEventListener("click", () => {
      const name = $("new-name").value.trim();
      if (!name) return;
      api("POST", "/api/admin/annotators", { name, role: $("new-role").value }).then((r) => {
        $("new-link").textContent = r.login_url;
        const tr = document.createElement("tr");
        [r.name, r.role, "yes", "0"].forEach((v) => { const td = document.createElement("td"); td.textContent = v; tr.appendChild(td); });
        document.querySelector("#annotators tbody").appendChild(tr);
        $("new-name").value = "";
        status(`${r.name} added.`, "ok");
      }).catch((e) => status("Not added: " + e.message, "error"));
    });
  }
})();
