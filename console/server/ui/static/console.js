// taskguard console: the few interactive bits. Changes go to the JSON API
// with the session cookie and the CSRF header.
"use strict";

async function api(method, path, body, query) {
  const url = path + (query && query.toString() ? "?" + query.toString() : "");
  const headers = { "X-Taskguard-Csrf": "1" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(url, { method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : (typeof body === "string" ? body : JSON.stringify(body)) });
  const text = await resp.text();
  if (!resp.ok) {
    let msg = text;
    try { msg = JSON.parse(text).error; } catch (e) { /* not JSON */ }
    throw new Error(msg || resp.status + " " + resp.statusText);
  }
  return text;
}

function list(v) { return v.split(",").map(s => s.trim()).filter(Boolean); }

function setStatus(el, msg, kind) {
  if (!el) return;
  el.textContent = msg;
  el.className = "status " + (kind || "");
}

function runtimeRule(f) {
  const rule = { name: f.name.value.trim(), scope: {}, processes: { effect: f.processEffect.value }, network: { effect: f.networkEffect.value } };
  for (const k of ["tasks", "containers", "images"]) { const v = list(f[k].value); if (v.length) rule.scope[k] = v; }
  const denied = list(f.denied.value); if (denied.length) rule.processes.denied = denied;
  const domains = list(f.deniedDomains.value); if (domains.length) rule.network.deniedDomains = domains;
  return rule;
}

function wafRule(f) {
  const rule = { name: f.name.value.trim(), scope: {}, externalPort: Number(f.externalPort.value), appPort: Number(f.appPort.value), protections: {} };
  const tasks = list(f.tasks.value); if (tasks.length) rule.scope.tasks = tasks;
  for (const el of f.elements) { if (el.name && el.name.startsWith("prot-")) rule.protections[el.name.slice(5)] = el.value; }
  return rule;
}

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-kind]")) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const status = form.querySelector(".status");
      const runtime = form.dataset.kind === "runtime";
      const path = runtime ? "/api/v1/policies/runtime/app-embedded" : "/api/v1/policies/firewall/app-embedded";
      const q = new URLSearchParams();
      const editing = form.dataset.editing;
      if (!editing && runtime && form.position.value !== "") q.set("index", form.position.value);
      setStatus(status, "Saving…");
      try {
        const rule = runtime ? runtimeRule(form) : wafRule(form);
        if (editing) await api("PUT", path + "/" + encodeURIComponent(editing), rule);
        else await api("POST", path, rule, q);
        setStatus(status, "Saved.", "ok");
        location.reload();
      } catch (e) { setStatus(status, e.message, "error"); }
    });
  }
  for (const btn of document.querySelectorAll("button[data-edit]")) {
    btn.addEventListener("click", () => {
      const form = document.querySelector("form[data-kind]");
      const rule = JSON.parse(btn.dataset.edit);
      const scope = rule.scope || {};
      form.name.value = rule.name;
      form.tasks.value = (scope.tasks || []).join(", ");
      if (form.dataset.kind === "runtime") {
        form.containers.value = (scope.containers || []).join(", ");
        form.images.value = (scope.images || []).join(", ");
        const pr = rule.processes || {}, nw = rule.network || {};
        form.processEffect.value = pr.effect || "disable";
        form.denied.value = (pr.denied || []).join(", ");
        form.networkEffect.value = nw.effect || "disable";
        form.deniedDomains.value = (nw.deniedDomains || []).join(", ");
        form.position.disabled = true;
      } else {
        form.externalPort.value = rule.externalPort;
        form.appPort.value = rule.appPort;
        for (const el of form.elements) {
          if (el.name && el.name.startsWith("prot-")) el.value = (rule.protections || {})[el.name.slice(5)] || "disable";
        }
      }
      form.dataset.editing = rule.name;
      document.getElementById("form-title").textContent = "Edit rule " + rule.name;
      form.querySelector("button[type=submit]").textContent = "Save rule";
      form.querySelector(".cancel-edit").hidden = false;
      form.scrollIntoView({ behavior: "smooth" });
    });
  }
  for (const btn of document.querySelectorAll(".cancel-edit")) {
    btn.addEventListener("click", () => location.reload());
  }
  for (const btn of document.querySelectorAll("button[data-delete]")) {
    btn.addEventListener("click", async () => {
      if (!confirm("Delete this rule? Defenders stop enforcing it within seconds.")) return;
      try { await api("DELETE", btn.dataset.delete); location.reload(); } catch (e) { alert(e.message); }
    });
  }
  const protect = document.getElementById("protect");
  if (protect) {
    protect.addEventListener("click", async () => {
      const f = document.getElementById("protect-form");
      const out = document.getElementById("task-out");
      const status = document.getElementById("protect-status");
      const q = new URLSearchParams();
      for (const k of ["consoleaddr", "defenderImage", "agentTokenSecret"]) { if (f[k].value.trim()) q.set(k, f[k].value.trim()); }
      if (f.extractEntrypoint.checked) q.set("extractEntrypoint", "true");
      setStatus(status, "Protecting…"); out.value = "";
      try {
        const text = await api("POST", "/api/v1/defenders/fargate.json", document.getElementById("task-in").value, q);
        try { out.value = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { out.value = text; }
        setStatus(status, "Protected. Register it with aws ecs register-task-definition.", "ok");
      } catch (e) { setStatus(status, e.message, "error"); }
    });
    document.getElementById("copy").addEventListener("click", async () => {
      const out = document.getElementById("task-out");
      try { await navigator.clipboard.writeText(out.value); } catch (e) { out.select(); document.execCommand("copy"); }
      setStatus(document.getElementById("protect-status"), "Copied.", "ok");
    });
  }
});
