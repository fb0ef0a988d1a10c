// The console: the SIP-as-RTMP web page (docs/glossary.md, "seed"), over the same REST API, from the API's own origin
// (no CORS, no browser extension). The token stays in this tab's sessionStorage.
"use strict";

// Relative to the page (/console/), so a proxy serving the API under a prefix that it strips
// (an Ingress with a rewrite) still works.
const API = "../rest-api/call/";
const PUSH_API = "../rest-api/push/";
const POLL_MS = 1000;
const $ = (selector, root = document) => root.querySelector(selector);

function token() {
  return sessionStorage.getItem("siprtmp-token") || "";
}

function say(text, isError = false) {
  const message = $("#message");
  message.textContent = text;
  message.className = isError ? "error" : "";
}

async function call(name, body, base = API) {
  const response = await fetch(base + name, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: "Bearer " + token() },
    body: JSON.stringify(body || {}),
  });
  let answer = null;
  try {
    answer = await response.json();
  } catch (_) {
    answer = { error: response.statusText };
  }
  if (!response.ok) {
    const error = new Error(answer.error || response.statusText);
    error.status = response.status;
    error.field = answer.field;
    throw error;
  }
  return answer;
}

// The form as the seed's nested body; empty fields are left out. The "extra" JSON is merged
// in (a SyntaxError is reported against that field).
function startupBody(form) {
  const extraText = form.elements.extra.value.trim();
  let extra = {};
  if (extraText) {
    try {
      extra = JSON.parse(extraText);
    } catch (error) {
      const refused = new Error("extra: not valid JSON (" + error.message + ")");
      refused.field = "extra";
      throw refused;
    }
  }
  const body = { ...extra, connection: { ...(extra.connection || {}) } };
  for (const input of form.querySelectorAll("input[name]")) {
    const value = input.type === "checkbox" ? input.checked : input.value.trim();
    if (value === "") continue;
    const [first, second] = input.name.split(".");
    if (second) body.connection[second] = value;
    else body[first] = value;
  }
  if (body.connection.sipPort !== undefined) body.connection.sipPort = String(body.connection.sipPort);
  if (Object.keys(body.connection).length === 0) delete body.connection;
  return body;
}

function markInvalid(form, field) {
  for (const input of form.querySelectorAll("input[name], textarea[name]")) {
    input.setAttribute("aria-invalid", String(Boolean(field) && input.name === field));
  }
}

function cell(row, cls, text, stateful = false) {
  const td = $("td." + cls, row);
  const value = text === null || text === undefined ? "" : String(text);
  if (td.textContent !== value) td.textContent = value;
  if (stateful) td.className = cls + " state state-" + value;
}

function newRow(view) {
  const row = document.createElement("tr");
  row.dataset.callId = view.callId;
  for (const cls of ["call-id", "callee", "stream", "call-status", "stream-status", "phase", "reason"]) {
    const td = document.createElement("td");
    td.className = cls;
    row.appendChild(td);
  }
  const dtmf = document.createElement("td");
  dtmf.className = "dtmf";
  const digits = document.createElement("input");
  digits.className = "dtmf-digits";
  digits.setAttribute("aria-label", "DTMF digits for " + view.callId);
  digits.placeholder = "0-9 * # A-D";
  const send = document.createElement("button");
  send.className = "dtmf-send";
  send.textContent = "Send";
  send.addEventListener("click", async () => {
    try {
      await call("send_dtmf", { callId: view.callId, dtmf: digits.value.trim() });
      say("DTMF " + digits.value.trim() + " sent to " + view.callId);
      digits.value = "";
    } catch (error) {
      say(error.message, true);
    }
  });
  dtmf.append(digits, send);
  const actions = document.createElement("td");
  const hangup = document.createElement("button");
  hangup.className = "hangup";
  hangup.textContent = "Hang up";
  hangup.addEventListener("click", async () => {
    hangup.disabled = true;
    try {
      await call("terminate", { callId: view.callId });
      say("Hanging up " + view.callId);
    } catch (error) {
      hangup.disabled = false;
      say(error.message, true);
    }
  });
  actions.appendChild(hangup);
  const more = document.createElement("td");
  const show = document.createElement("button");
  show.className = "show-destinations";
  show.textContent = "Destinations";
  show.addEventListener("click", () => showDestinations(view.callId));
  more.appendChild(show);
  row.append(dtmf, actions, more);
  return row;
}

// -- a call's destinations (push/find, push/startup, push/terminate) --------------------------

let shownCall = null;

function showDestinations(callId) {
  shownCall = callId;
  $("#destinations-call").textContent = callId;
  $("#destinations-section").hidden = false;
  $("#destinations tbody").replaceChildren();
  refreshDestinations();
}

// A row per destination, keyed by its name (the call's own rtmpUrl/rtmpStream: "primary").
function destinationRow(view) {
  const key = view.primary ? "primary" : view.name || "unnamed:" + view.url;
  const body = $("#destinations tbody");
  let row = body.querySelector(`tr[data-destination="${CSS.escape(key)}"]`);
  if (row) return row;
  row = document.createElement("tr");
  row.dataset.destination = key;
  for (const cls of ["destination-name", "destination-url", "destination-profile", "destination-state", "destination-bytes"]) {
    const td = document.createElement("td");
    td.className = cls;
    row.appendChild(td);
  }
  const actions = document.createElement("td");
  const remove = document.createElement("button");
  remove.className = "push-remove hangup";
  remove.textContent = "Remove";
  // The call's own destination is its for life; one without a name needs its key to be named.
  remove.disabled = view.primary || !view.name;
  remove.title = view.primary ? "The call's own rtmpUrl/rtmpStream: hang up the call instead" : "";
  remove.addEventListener("click", async () => {
    remove.disabled = true;
    try {
      await call("terminate", { callId: shownCall, name: view.name }, PUSH_API);
      say("Destination " + view.name + " removed from " + shownCall);
      refreshDestinations();
    } catch (error) {
      remove.disabled = false;
      say(error.message, true);
    }
  });
  actions.appendChild(remove);
  row.appendChild(actions);
  body.appendChild(row);
  return row;
}

function renderDestinations(views) {
  const seen = new Set();
  for (const view of views) {
    const row = destinationRow(view);
    seen.add(row.dataset.destination);
    cell(row, "destination-name", view.primary ? "(the call's own)" : view.name);
    cell(row, "destination-url", view.url);
    cell(row, "destination-profile", view.profile);
    cell(row, "destination-state", view.state, true);
    cell(row, "destination-bytes", view.bytesSent);
  }
  for (const row of [...$("#destinations tbody").rows]) {
    if (!seen.has(row.dataset.destination)) row.remove();
  }
}

async function refreshDestinations() {
  if (!shownCall) return;
  const callId = shownCall;
  try {
    const views = await call("find", { callId }, PUSH_API);
    if (callId === shownCall) renderDestinations(views);
  } catch (error) {
    if (error.status === 404 && callId === shownCall) {
      shownCall = null;
      $("#destinations-section").hidden = true;
    }
  }
}

function pushBody(form) {
  const body = { callId: shownCall };
  for (const input of form.querySelectorAll("input[name], select[name]")) {
    const value = input.value.trim();
    if (value !== "") body[input.name] = value;
  }
  return body;
}

function render(views) {
  const body = $("#calls tbody");
  const seen = new Set();
  for (const view of views) {
    seen.add(view.callId);
    let row = body.querySelector(`tr[data-call-id="${CSS.escape(view.callId)}"]`);
    if (!row) {
      row = newRow(view);
      body.appendChild(row);
    }
    cell(row, "call-id", view.callId);
    cell(row, "callee", view.callee);
    cell(row, "stream", view.rtmpUrl + "/" + view.rtmpStream);
    cell(row, "call-status", view.status, true);
    cell(row, "stream-status", view.streamStatus, true);
    cell(row, "phase", view.terminating ? "Terminating" : view.phase, true);
    cell(row, "reason", view.reason);
    const live = !view.terminating && !["Succeeded", "Failed"].includes(view.phase);
    $("button.dtmf-send", row).disabled = !live || view.status !== "ESTABLISHED";
    $("button.hangup", row).disabled = view.terminating;
  }
  for (const row of [...body.rows]) {
    if (!seen.has(row.dataset.callId)) row.remove();
  }
  $("#no-calls").hidden = views.length > 0;
  $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
}

async function poll() {
  if (token()) {
    try {
      render(await call("find_all"));
      await refreshDestinations();
    } catch (error) {
      if (error.status === 401) say("The API refused the token: enter the right one.", true);
      else say("Cannot list calls: " + error.message, true);
    }
  }
  setTimeout(poll, POLL_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  $("#token").value = token();
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("siprtmp-token", $("#token").value.trim());
    say("Token set.");
  });
  const form = $("#startup-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const view = await call("startup", startupBody(form));
      markInvalid(form, null);
      form.elements["connection.sipPassword"].value = ""; // kept in a Secret now, not in the page
      say("Call " + view.callId + " started: " + view.status + " / " + view.streamStatus);
    } catch (error) {
      markInvalid(form, error.field);
      say(error.message, true);
    }
  });
  const pushForm = $("#push-form");
  pushForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const view = await call("startup", pushBody(pushForm), PUSH_API);
      markInvalid(pushForm, null);
      pushForm.elements.rtmpStream.value = ""; // the key is in the resource now, not the page
      pushForm.elements.name.value = "";
      say("Destination " + view.name + " added to " + view.callId + ": " + view.url);
      refreshDestinations();
    } catch (error) {
      markInvalid(pushForm, error.field);
      say(error.message, true);
    }
  });
  if (!token()) say("Enter the API token to see and start calls.");
  poll();
});
