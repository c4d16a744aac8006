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
    try {
      const e = JSON.parse(text);
      msg = e.error;
      if (e.fields && e.fields.length) msg += ": " + e.fields.map(f => f.field + " " + f.message).join("; ");
    } catch (e) { /* not JSON */ }
    throw new Error(msg || resp.status + " " + resp.statusText);
  }
  return text;
}

// ruleURL is the API path of one rule: the name is one path segment, so a
// name with "/" or "../" names that rule and nothing else.
function ruleURL(base, name) { return base + "/" + encodeURIComponent(name); }

function list(v) { return v.split(",").map(s => s.trim()).filter(Boolean); }

function setStatus(el, msg, kind) {
  if (!el) return;
  el.textContent = msg;
  el.classList.add("status");
  el.classList.toggle("ok", kind === "ok");
  el.classList.toggle("error", kind === "error");
}

// Helpers that set a field of a rule object from the form, or drop it when
// the form leaves it empty, so that a field the form does not show is never
// touched.
function obj(rule, key) {
  if (typeof rule[key] !== "object" || rule[key] === null || Array.isArray(rule[key])) rule[key] = {};
  return rule[key];
}
function setList(o, key, value) { const v = list(value); if (v.length) o[key] = v; else delete o[key]; }
function setStr(o, key, value) { if (value !== "") o[key] = value; else delete o[key]; }
function joined(v) { return Array.isArray(v) ? v.join(", ") : ""; }

// The rule editors: a form for the common fields and a JSON view of the
// whole rule. The JSON is the rule; the form edits its common fields in
// place, so fields the form does not show (allowed lists, outbound
// destinations, listening ports, WAF exceptions, CVE exceptions, custom
// checks...) are kept as they are.
const editors = {
  runtime: {
    path: "/api/v1/policies/runtime/app-embedded",
    toForm(r, f) {
      const sc = r.scope || {}, pr = r.processes || {}, nw = r.network || {};
      f.name.value = r.name || "";
      f.tasks.value = joined(sc.tasks); f.containers.value = joined(sc.containers); f.images.value = joined(sc.images);
      f.processEffect.value = pr.effect || "disable"; f.denied.value = joined(pr.denied);
      f.networkEffect.value = nw.effect || "disable"; f.deniedDomains.value = joined(nw.deniedDomains);
    },
    fromForm(f, r) {
      r.name = f.name.value.trim();
      const sc = obj(r, "scope");
      setList(sc, "tasks", f.tasks.value); setList(sc, "containers", f.containers.value); setList(sc, "images", f.images.value);
      const pr = obj(r, "processes"); pr.effect = f.processEffect.value; setList(pr, "denied", f.denied.value);
      const nw = obj(r, "network"); nw.effect = f.networkEffect.value; setList(nw, "deniedDomains", f.deniedDomains.value);
      return r;
    },
  },
  waf: {
    path: "/api/v1/policies/firewall/app-embedded",
    toForm(r, f) {
      f.name.value = r.name || "";
      f.tasks.value = joined((r.scope || {}).tasks);
      f.externalPort.value = r.externalPort || ""; f.appPort.value = r.appPort || "";
      f.detection.value = r.detection === "crs-pl1" ? "crs-pl1" : "";
      for (const el of f.elements) {
        if (el.name && el.name.startsWith("prot-")) el.value = (r.protections || {})[el.name.slice(5)] || "disable";
      }
    },
    fromForm(f, r) {
      r.name = f.name.value.trim();
      setList(obj(r, "scope"), "tasks", f.tasks.value);
      r.externalPort = Number(f.externalPort.value); r.appPort = Number(f.appPort.value);
      if (f.detection.value !== "") r.detection = f.detection.value;
      else if (r.detection !== "extended") delete r.detection; // "extended" typed in the JSON stays as typed
      const prot = obj(r, "protections");
      for (const el of f.elements) { if (el.name && el.name.startsWith("prot-")) prot[el.name.slice(5)] = el.value; }
      return r;
    },
  },
  ci: {
    path: "/api/v1/policies/ci",
    toForm(r, f) {
      const sc = r.scope || {}, v = r.vulnerabilities || {}, c = r.compliance || {};
      f.name.value = r.name || "";
      f.images.value = joined(sc.images); f.tasks.value = joined(sc.tasks);
      f.alertThreshold.value = v.alertThreshold || ""; f.blockThreshold.value = v.blockThreshold || "";
      f.onlyFixed.checked = !!v.onlyFixed; f.graceDays.value = v.graceDays || "";
      f.complianceDefault.value = c.default || "";
    },
    fromForm(f, r) {
      r.name = f.name.value.trim();
      const sc = obj(r, "scope"); setList(sc, "images", f.images.value); setList(sc, "tasks", f.tasks.value);
      const v = obj(r, "vulnerabilities");
      setStr(v, "alertThreshold", f.alertThreshold.value); setStr(v, "blockThreshold", f.blockThreshold.value);
      if (f.onlyFixed.checked) v.onlyFixed = true; else delete v.onlyFixed;
      if (f.graceDays.value !== "" && Number(f.graceDays.value) !== 0) v.graceDays = Number(f.graceDays.value); else delete v.graceDays;
      setStr(obj(r, "compliance"), "default", f.complianceDefault.value);
      return r;
    },
  },
  images: {
    path: "/api/v1/policies/images/app-embedded",
    toForm(r, f) {
      const sc = r.scope || {}, v = r.vulnerabilities || {};
      f.name.value = r.name || "";
      f.tasks.value = joined(sc.tasks); f.containers.value = joined(sc.containers); f.images.value = joined(sc.images);
      f.alertThreshold.value = v.alertThreshold || ""; f.onlyFixed.checked = !!v.onlyFixed;
    },
    fromForm(f, r) {
      r.name = f.name.value.trim();
      const sc = obj(r, "scope");
      setList(sc, "tasks", f.tasks.value); setList(sc, "containers", f.containers.value); setList(sc, "images", f.images.value);
      const v = obj(r, "vulnerabilities");
      setStr(v, "alertThreshold", f.alertThreshold.value);
      if (f.onlyFixed.checked) v.onlyFixed = true; else delete v.onlyFixed;
      return r;
    },
  },
};

// parseRule reads the JSON view: a rule is a JSON object with a name.
function parseRule(text) {
  let v;
  try { v = JSON.parse(text); } catch (e) { throw new Error("the JSON is not valid: " + e.message); }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("the JSON must be one rule: an object {\"name\": ...}");
  return v;
}

function setupEditor(form) {
  const ed = editors[form.dataset.kind];
  const json = form.querySelector("textarea.rule-json");
  const jsonStatus = form.querySelector(".json-status");
  const status = form.querySelector(".actions .status");
  const submit = form.querySelector("button[type=submit]");
  const showJSON = (rule) => { json.value = JSON.stringify(rule, null, 2); setStatus(jsonStatus, "valid JSON", "ok"); submit.disabled = false; };
  const current = () => { try { return parseRule(json.value); } catch (e) { return null; } };
  // Form → JSON: the form's fields into the rule, every other field kept.
  form.addEventListener("input", (ev) => {
    if (ev.target === json) return;
    const base = current();
    if (base === null) return; // the JSON is being fixed: leave it alone
    showJSON(ed.fromForm(form, base));
  });
  form.addEventListener("change", (ev) => {
    if (ev.target === json) return;
    const base = current();
    if (base !== null) showJSON(ed.fromForm(form, base));
  });
  // JSON → form.
  json.addEventListener("input", () => {
    try {
      const rule = parseRule(json.value);
      ed.toForm(rule, form);
      setStatus(jsonStatus, "valid JSON", "ok");
      submit.disabled = false;
    } catch (e) {
      setStatus(jsonStatus, e.message, "error");
      submit.disabled = true;
    }
  });
  showJSON(ed.fromForm(form, {}));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    const editing = form.dataset.editing;
    if (!editing && form.position && form.position.value !== "") q.set("index", form.position.value);
    let rule;
    try { rule = ed.fromForm(form, parseRule(json.value)); } catch (e) { setStatus(status, e.message, "error"); return; }
    setStatus(status, "Saving…");
    try {
      if (editing !== undefined) await api("PUT", ruleURL(ed.path, editing), rule);
      else await api("POST", ed.path, rule, q);
      setStatus(status, "Saved.", "ok");
      location.reload();
    } catch (e) { setStatus(status, e.message, "error"); }
  });
  return { ed, showJSON };
}

document.addEventListener("DOMContentLoaded", () => {
  let editor = null;
  const form = document.querySelector("form[data-kind]");
  if (form) editor = setupEditor(form);
  for (const btn of document.querySelectorAll("button[data-edit]")) {
    btn.addEventListener("click", () => {
      const rule = JSON.parse(btn.dataset.edit);
      editor.ed.toForm(rule, form);
      editor.showJSON(rule);
      if (form.position) form.position.disabled = true;
      form.dataset.editing = rule.name;
      document.getElementById("form-title").textContent = "Edit rule " + rule.name;
      form.querySelector("button[type=submit]").textContent = "Save rule";
      form.querySelector(".cancel-edit").hidden = false;
      form.scrollIntoView();
    });
  }
  for (const btn of document.querySelectorAll(".cancel-edit")) {
    btn.addEventListener("click", () => location.reload());
  }
  for (const btn of document.querySelectorAll("button[data-delete]")) {
    btn.addEventListener("click", async () => {
      if (!confirm("Delete the rule " + btn.dataset.delete + "? Defenders stop enforcing it within seconds.")) return;
      try { await api("DELETE", ruleURL(btn.dataset.path, btn.dataset.delete)); location.reload(); } catch (e) { alert(e.message); }
    });
  }
  // Users page (admins): add, change password, disable/enable, delete.
  const userForm = document.getElementById("user-form");
  if (userForm) {
    userForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const status = userForm.querySelector(".status");
      const body = { username: userForm.username.value.trim(), password: userForm.password.value, role: userForm.role.value };
      const fams = list(userForm.families ? userForm.families.value : "");
      if (fams.length) body.taskFamilies = fams;
      setStatus(status, "Saving…");
      try { await api("POST", "/api/v1/users", body); setStatus(status, "Added.", "ok"); location.reload(); } catch (e) { setStatus(status, e.message, "error"); }
    });
  }
  for (const btn of document.querySelectorAll("button[data-user-action]")) {
    btn.addEventListener("click", async () => {
      const name = btn.dataset.user, action = btn.dataset.userAction;
      const path = "/api/v1/users/" + encodeURIComponent(name);
      try {
        if (action === "delete") {
          if (!confirm("Delete the user " + name + "? Their tokens stop working at once.")) return;
          await api("DELETE", path);
        } else if (action === "disable" || action === "enable") {
          await api("PATCH", path, { disabled: action === "disable" });
        } else if (action === "password") {
          const pw = prompt("New password for " + name + " (8 to 72 bytes):");
          if (!pw) return;
          await api("PUT", path + "/password", { password: pw });
        }
        location.reload();
      } catch (e) { alert(e.message); }
    });
  }
  for (const btn of document.querySelectorAll("button[data-revoke]")) {
    btn.addEventListener("click", async () => {
      if (!confirm("Revoke this token? Whoever holds it is refused at once.")) return;
      try { await api("DELETE", "/api/v1/tokens/" + encodeURIComponent(btn.dataset.revoke)); location.reload(); } catch (e) { alert(e.message); }
    });
  }
  const pwForm = document.getElementById("password-form");
  if (pwForm) {
    pwForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const status = pwForm.querySelector(".status");
      setStatus(status, "Changing…");
      try {
        await api("PUT", "/api/v1/users/" + encodeURIComponent(pwForm.dataset.user) + "/password",
          { password: pwForm.password.value, currentPassword: pwForm.current.value });
        location.href = "/login";
      } catch (e) { setStatus(status, e.message, "error"); }
    });
  }
  const rotate = document.getElementById("rotate-form");
  if (rotate) {
    rotate.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const status = rotate.querySelector(".status");
      setStatus(status, "Rotating…");
      try {
        const out = JSON.parse(await api("POST", "/api/v1/tokens/agent", { taskFamily: rotate.taskFamily.value.trim(), overlap: rotate.overlap.value.trim() }));
        const box = document.getElementById("rotated-token");
        box.value = out.token; box.hidden = false; box.select();
        setStatus(status, "New credential below, shown once: put it in the family's secret. " + out.older + " older credential(s) stop at " + out.olderExpireAt + ".", "ok");
      } catch (e) { setStatus(status, e.message, "error"); }
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
  // Every handler is in place (tests wait for this before clicking).
  document.body.dataset.ready = "1";
});
