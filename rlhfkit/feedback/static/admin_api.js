// The JSON call shared by the management and review pages: one request, errors carry the
// server's message (the annotation page has its own, which retries submissions).
window.rlhfkitAdminApi = async function (method, url, body) {
  const r = await fetch(url, { method, credentials: "same-origin",
    headers: body ? { "Content-Type": "application/json" } : {}, body: body ? JSON.stringify(body) : undefined });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail || r.statusText));
  return data;
};
