// A moderator's controls for one room (/moderate/<room id>): calls for a moderator (take them), pause or resume the
// AI facilitator, approve, edit or reject AI messages waiting for approval, and see safety and summary flags. Polls the moderator API every two
// seconds, signed in (the session cookie; changes carry the CSRF token).
import { changeHeaders, whoAmI, wireSignInForm } from "./session.js";

const roomId = decodeURIComponent(location.pathname.split("/").pop() || "");
const $ = (id) => document.getElementById(id);
let timer = null;
const drafts = new Map(); // message id -> text being edited (survives re-rendering)

async function api(path, options = {}) {
  const response = await fetch(`/api/rooms/${encodeURIComponent(roomId)}${path}`, {
    ...options,
    headers: changeHeaders({ "content-type": "application/json", ...(options.headers || {}) }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.detail || `request failed (${response.status})`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function status(text) {
  $("mod-status").textContent = text;
}

function when(ts) {
  return new Date(ts * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function renderPending(messages) {
  const list = $("pending");
  const ids = new Set(messages.map((m) => m.message_id));
  for (const item of [...list.children]) if (!ids.has(item.dataset.id)) item.remove();
  for (const message of messages) {
    if (list.querySelector(`li[data-id="${CSS.escape(message.message_id)}"]`)) continue;
    const item = document.createElement("li");
    item.dataset.id = message.message_id;
    const meta = document.createElement("p");
    meta.className = "hint";
    meta.textContent = `${when(message.ts)} · ${message.kind.replace("_", " ")} · ${message.generated_by}`;
    const label = document.createElement("label");
    const fieldId = `text-${message.message_id}`;
    label.htmlFor = fieldId;
    label.textContent = "Message (edit before approving if needed)";
    const text = document.createElement("textarea");
    text.id = fieldId;
    text.rows = 3;
    text.maxLength = 4000;
    text.value = drafts.get(message.message_id) ?? message.text;
    text.addEventListener("input", () => drafts.set(message.message_id, text.value));
    const row = document.createElement("div");
    row.className = "button-row";
    const approve = document.createElement("button");
    approve.type = "button";
    approve.className = "primary";
    approve.textContent = "Approve";
    approve.dataset.action = "approve";
    const reject = document.createElement("button");
    reject.type = "button";
    reject.textContent = "Reject";
    reject.dataset.action = "reject";
    approve.addEventListener("click", () => review(message, "approve", text.value));
    reject.addEventListener("click", () => review(message, "reject"));
    row.append(approve, reject);
    item.append(meta, label, text);
    if (message.statements && message.statements.length) {
      const intro = document.createElement("p");
      intro.className = "hint";
      intro.textContent = "With these AI-proposed statements (posted with the message, dropped if you reject it):";
      const statements = document.createElement("ul");
      statements.className = "proposed-statements";
      for (const statement of message.statements) {
        const li = document.createElement("li");
        li.textContent = statement.text;
        statements.append(li);
      }
      item.append(intro, statements);
    }
    item.append(row);
    list.append(item);
  }
  $("pending-empty").hidden = messages.length > 0;
  $("pending-count").textContent = messages.length ? `(${messages.length})` : "";
}

async function review(message, action, text) {
  try {
    const edited = action === "approve" && text.trim() !== message.text.trim();
    await api(`/ai-messages/${encodeURIComponent(message.message_id)}/${action}`, {
      method: "POST",
      body: edited ? JSON.stringify({ text }) : undefined,
    });
    drafts.delete(message.message_id);
    status(action === "approve" ? (edited ? "Edited message posted." : "Message posted.") : "Message rejected.");
    await refresh();
  } catch (err) {
    status(`Could not ${action}: ${err.message}`);
    await refresh();
  }
}

function renderFlags(listId, flags, describe) {
  const list = $(listId);
  list.replaceChildren();
  for (const flag of flags) {
    const item = document.createElement("li");
    item.textContent = describe(flag);
    list.append(item);
  }
  if (!flags.length) list.append(noneItem("None."));
}

function noneItem(text) {
  const item = document.createElement("li");
  item.className = "hint";
  item.textContent = text;
  return item;
}

function renderCalls(calls) {
  const list = $("llm-calls");
  $("calls-count").textContent = calls.length ? `(${calls.length})` : "";
  if (list.dataset.rendered === String(calls.length)) return; // unchanged: keep open <details> open
  list.dataset.rendered = String(calls.length);
  list.replaceChildren();
  for (const call of calls) {
    const item = document.createElement("li");
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = `${when(call.at)} · ${call.purpose} · ${call.model} · ${call.latency_s.toFixed(1)} s · ` +
      (call.outcome === "ok" ? "valid answer" : `${call.outcome}: fallback used`);
    const prompt = document.createElement("pre");
    prompt.textContent = call.messages.map((m) => `[${m.role}]\n${m.content}`).join("\n\n");
    const output = document.createElement("pre");
    output.textContent = `[answer]\n${call.output}${call.error ? `\n\n[error] ${call.error}` : ""}`;
    details.append(summary, prompt, output);
    item.append(details);
    list.append(item);
  }
  if (!calls.length) list.append(noneItem("None yet."));
}

function renderHelp(requests) {
  const list = $("help-requests");
  const ids = new Set(requests.map((r) => r.request_id));
  for (const item of [...list.children]) if (!ids.has(item.dataset.id)) item.remove();
  for (const request of requests) {
    if (list.querySelector(`li[data-id="${CSS.escape(request.request_id)}"]`)) continue;
    const item = document.createElement("li");
    item.dataset.id = request.request_id;
    const text = document.createElement("span");
    text.textContent = `${when(request.ts)} · ${request.participant_name}${request.note ? `: “${request.note}”` : ""}`;
    const take = document.createElement("button");
    take.type = "button";
    take.textContent = "Take this call";
    take.setAttribute("aria-label", `Take the call from ${request.participant_name}`);
    take.addEventListener("click", async () => {
      take.disabled = true;
      try {
        await api(`/help-requests/${encodeURIComponent(request.request_id)}/take`, { method: "POST" });
        item.remove();
        showHelpCount();
        status(`You took the call from ${request.participant_name}: they were told a moderator is coming.`);
      } catch (err) {
        take.disabled = false;
        status(`Could not take the call: ${err.message}`);
      }
    });
    item.append(text, " ", take);
    list.append(item);
  }
  showHelpCount();
}

function showHelpCount() {
  const count = $("help-requests").children.length;
  $("help-empty").hidden = count > 0;
  $("help-count").textContent = count ? `(${count})` : "";
}

async function refresh() {
  try {
    const [pending, safety, summary, calls, help] = await Promise.all([
      api("/ai-messages/pending"), api("/safety-flags"), api("/summary-flags"), api("/llm-calls"),
      api("/help-requests"),
    ]);
    renderHelp(help);
    renderCalls(calls);
    renderPending(pending);
    renderFlags("safety-flags", safety, (f) =>
      `${when(f.ts)} · ${f.speaker_name}${f.text ? `: “${f.text}”` : ""} · ${f.category.replace("_", "-")}: ` +
      `${f.reason} (flagged by ${f.detected_by})`);
    renderFlags("summary-flags", summary, (f) =>
      `${when(f.ts)} · point ${f.point + 1} of summary ${f.message_id}${f.note ? `: ${f.note}` : ""}`);
  } catch (err) {
    if (err.status === 401) return signOut(err.message);
    status(`Not updated: ${err.message}`);
  }
}

async function control(action) {
  try {
    const result = await api(`/facilitator/${action}`, { method: "POST" });
    $("facilitator-state").textContent = result.facilitator === "paused"
      ? "Paused: the AI facilitator is silent and its stage clock is stopped."
      : "Running.";
    status(result.facilitator === "paused" ? "AI facilitator paused." : "AI facilitator resumed.");
  } catch (err) {
    status(`Could not ${action}: ${err.message}`);
  }
}

function signOut(message) {
  clearInterval(timer);
  $("controls").hidden = true;
  $("sign-in").hidden = false;
  if (message) {
    $("sign-in-error").textContent = message;
    $("sign-in-error").hidden = false;
  }
  $("sign-in-email").focus();
}

function refused(message) {
  clearInterval(timer);
  $("controls").hidden = true;
  $("sign-in").hidden = true;
  $("mod-error").textContent = message;
  $("mod-error").hidden = false;
}

async function start() {
  try {
    const room = await fetch(`/api/rooms/${encodeURIComponent(roomId)}`).then((r) => (r.ok ? r.json() : null));
    if (!room) return refused("There is no room with this link.");
    $("room-title").textContent = `Moderate: ${room.title}`;
    document.title = `Moot: moderate ${room.title}`;
    await api("/ai-messages/pending");
  } catch (err) {
    if (err.status === 401) return signOut("");
    if (err.status === 404) return refused("This account may not moderate this room (or it does not exist).");
    return refused(err.message);
  }
  $("sign-in").hidden = true;
  $("sign-in-error").hidden = true;
  $("controls").hidden = false;
  await refresh();
  timer = setInterval(refresh, 2000);
  return undefined;
}

wireSignInForm({ form: "sign-in", email: "sign-in-email", password: "sign-in-password", error: "sign-in-error" },
  () => start());
$("pause").addEventListener("click", () => control("pause"));
$("resume").addEventListener("click", () => control("resume"));
whoAmI().then((me) => (me ? start() : signOut(""))).catch(() => signOut(""));
