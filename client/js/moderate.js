// A moderator's controls for one room (/moderate/<room id>): calls for a moderator (take them), pause or resume the
// AI facilitator, approve, edit or reject AI messages waiting for approval, and see safety and summary flags. Polls the moderator API every two
// seconds, signed in (the session cookie; changes carry the CSRF token). The words are the reader's locale's; on a
// switch of language the lists, the status line and the other texts written here are written again.
import { formatTime, localeSwitch, setupI18n, t } from "./i18n.js";
import { categoryName, kindName, outcomeName, seconds } from "./ai_words.js";
import { changeHeaders, whoAmI, wireSignInForm } from "./session.js";

const roomId = decodeURIComponent(location.pathname.split("/").pop() || "");
const $ = (id) => document.getElementById(id);
let timer = null;
const drafts = new Map(); // message id -> text being edited (survives re-rendering)
// What is shown, kept to write it again in another language: texts as functions, lists as the server's data.
const shown = { room: null, status: null, error: null, facilitator: null, pending: [], help: [], calls: [],
  safety: [], summary: [] };

async function api(path, options = {}) {
  const response = await fetch(`/api/rooms/${encodeURIComponent(roomId)}${path}`, {
    ...options,
    headers: changeHeaders({ "content-type": "application/json", ...(options.headers || {}) }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.detail || t("staff.http_error", { status: response.status }));
    error.status = response.status;
    throw error;
  }
  return body;
}

// The status line: text is a function, called again when the language changes.
function status(text) {
  shown.status = text;
  $("mod-status").textContent = text();
}

function when(ts) {
  return formatTime(ts);
}

function quoted(text) {
  return t("moderate.quoted", { text });
}

function renderPending(messages) {
  shown.pending = messages;
  const list = $("pending");
  const ids = new Set(messages.map((m) => m.message_id));
  for (const item of [...list.children]) if (!ids.has(item.dataset.id)) item.remove();
  for (const message of messages) {
    if (list.querySelector(`li[data-id="${CSS.escape(message.message_id)}"]`)) continue;
    const item = document.createElement("li");
    item.dataset.id = message.message_id;
    const meta = document.createElement("p");
    meta.className = "hint";
    meta.textContent = `${when(message.ts)} · ${kindName(message.kind)} · ${message.generated_by}`;
    const label = document.createElement("label");
    const fieldId = `text-${message.message_id}`;
    label.htmlFor = fieldId;
    label.textContent = t("moderate.message_label");
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
    approve.textContent = t("moderate.approve");
    approve.dataset.action = "approve";
    const reject = document.createElement("button");
    reject.type = "button";
    reject.textContent = t("moderate.reject");
    reject.dataset.action = "reject";
    approve.addEventListener("click", () => review(message, "approve", text.value));
    reject.addEventListener("click", () => review(message, "reject"));
    row.append(approve, reject);
    item.append(meta, label, text);
    if (message.statements && message.statements.length) {
      const intro = document.createElement("p");
      intro.className = "hint";
      intro.textContent = t("moderate.with_statements");
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

function reviewed(action, edited) {
  if (action !== "approve") return t("moderate.rejected");
  return edited ? t("moderate.posted_edited") : t("moderate.posted");
}

function reviewFailed(action, error) {
  return action === "approve"
    ? t("moderate.approve_failed", { error })
    : t("moderate.reject_failed", { error });
}

async function review(message, action, text) {
  try {
    const edited = action === "approve" && text.trim() !== message.text.trim();
    await api(`/ai-messages/${encodeURIComponent(message.message_id)}/${action}`, {
      method: "POST",
      body: edited ? JSON.stringify({ text }) : undefined,
    });
    drafts.delete(message.message_id);
    status(() => reviewed(action, edited));
    await refresh();
  } catch (err) {
    status(() => reviewFailed(action, err.message));
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
  if (!flags.length) list.append(noneItem(t("moderate.none")));
}

function describeSafety(flag) {
  return `${when(flag.ts)} · ${flag.speaker_name}${flag.text ? `: ${quoted(flag.text)}` : ""} · ` +
    t("moderate.safety_flag", { category: categoryName(flag.category), reason: flag.reason, by: flag.detected_by });
}

function describeSummary(flag) {
  return `${when(flag.ts)} · ` + t("moderate.summary_flag", { point: flag.point + 1, summary: flag.message_id }) +
    (flag.note ? `: ${flag.note}` : "");
}

function renderAllFlags(safety, summary) {
  shown.safety = safety;
  shown.summary = summary;
  renderFlags("safety-flags", safety, describeSafety);
  renderFlags("summary-flags", summary, describeSummary);
}

function noneItem(text) {
  const item = document.createElement("li");
  item.className = "hint";
  item.textContent = text;
  return item;
}

function renderCalls(calls, again = false) {
  shown.calls = calls;
  const list = $("llm-calls");
  $("calls-count").textContent = calls.length ? `(${calls.length})` : "";
  if (!again && list.dataset.rendered === String(calls.length)) return; // unchanged: keep open <details> open
  const open = new Set([...list.querySelectorAll("details")].flatMap((details, i) => (details.open ? [i] : [])));
  list.dataset.rendered = String(calls.length);
  list.replaceChildren();
  calls.forEach((call, i) => {
    const item = document.createElement("li");
    const details = document.createElement("details");
    details.open = again && open.has(i);
    const summary = document.createElement("summary");
    summary.textContent = `${when(call.at)} · ${call.purpose} · ${call.model} · ${seconds(call.latency_s)} · ` +
      outcomeName(call.outcome);
    const prompt = document.createElement("pre");
    prompt.textContent = call.messages.map((m) => `[${m.role}]\n${m.content}`).join("\n\n");
    const output = document.createElement("pre");
    output.textContent = `[${t("moderate.call_answer")}]\n${call.output}` +
      (call.error ? `\n\n[${t("moderate.call_error")}] ${call.error}` : "");
    details.append(summary, prompt, output);
    item.append(details);
    list.append(item);
  });
  if (!calls.length) list.append(noneItem(t("moderate.none_yet")));
}

function renderHelp(requests) {
  shown.help = requests;
  const list = $("help-requests");
  const ids = new Set(requests.map((r) => r.request_id));
  for (const item of [...list.children]) if (!ids.has(item.dataset.id)) item.remove();
  for (const request of requests) {
    if (list.querySelector(`li[data-id="${CSS.escape(request.request_id)}"]`)) continue;
    const item = document.createElement("li");
    item.dataset.id = request.request_id;
    const text = document.createElement("span");
    const note = request.note ? `: ${quoted(request.note)}` : "";
    text.textContent = `${when(request.ts)} · ${request.participant_name}${note}`;
    const take = document.createElement("button");
    take.type = "button";
    take.textContent = t("moderate.take_call");
    const name = request.participant_name;
    take.setAttribute("aria-label", t("moderate.take_call_from", { name }));
    take.addEventListener("click", async () => {
      take.disabled = true;
      try {
        await api(`/help-requests/${encodeURIComponent(request.request_id)}/take`, { method: "POST" });
        item.remove();
        shown.help = shown.help.filter((r) => r.request_id !== request.request_id);
        showHelpCount();
        status(() => t("moderate.took_call", { name }));
      } catch (err) {
        take.disabled = false;
        status(() => t("moderate.take_failed", { error: err.message }));
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
    renderAllFlags(safety, summary);
  } catch (err) {
    if (err.status === 401) return signOut(err.message);
    status(() => t("moderate.not_updated", { error: err.message }));
  }
}

function showFacilitator() {
  if (!shown.facilitator) return;
  $("facilitator-state").textContent = shown.facilitator === "paused"
    ? t("moderate.state_paused")
    : t("moderate.state_running");
}

async function control(action) {
  try {
    const result = await api(`/facilitator/${action}`, { method: "POST" });
    shown.facilitator = result.facilitator === "paused" ? "paused" : "running";
    showFacilitator();
    status(() => (result.facilitator === "paused" ? t("moderate.ai_paused") : t("moderate.ai_resumed")));
  } catch (err) {
    status(() => (action === "pause"
      ? t("moderate.pause_failed", { error: err.message })
      : t("moderate.resume_failed", { error: err.message })));
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

// The page's error instead of the controls: text is a function, called again when the language changes.
function refused(text) {
  clearInterval(timer);
  shown.error = text;
  $("controls").hidden = true;
  $("sign-in").hidden = true;
  $("mod-error").textContent = text();
  $("mod-error").hidden = false;
}

// The heading and the window's title: the room's once it is known.
function showTitle() {
  if (shown.room) {
    $("room-title").textContent = t("moderate.heading_room", { title: shown.room.title });
    document.title = t("moderate.page_title_room", { title: shown.room.title });
  } else {
    $("room-title").textContent = t("moderate.heading");
    document.title = t("moderate.page_title");
  }
}

async function start() {
  try {
    const room = await fetch(`/api/rooms/${encodeURIComponent(roomId)}`).then((r) => (r.ok ? r.json() : null));
    if (!room) return refused(() => t("moderate.no_room"));
    shown.room = room;
    showTitle();
    await api("/ai-messages/pending");
  } catch (err) {
    if (err.status === 401) return signOut("");
    if (err.status === 404) return refused(() => t("moderate.not_allowed"));
    return refused(() => err.message);
  }
  $("sign-in").hidden = true;
  $("sign-in-error").hidden = true;
  $("controls").hidden = false;
  await refresh();
  timer = setInterval(refresh, 2000);
  return undefined;
}

// Another interface language: everything written here is written again (the static text is already).
document.addEventListener("moot:locale", () => {
  showTitle();
  showFacilitator();
  if (shown.status) $("mod-status").textContent = shown.status();
  if (shown.error) $("mod-error").textContent = shown.error();
  $("pending").replaceChildren();
  renderPending(shown.pending);
  $("help-requests").replaceChildren();
  renderHelp(shown.help);
  renderCalls(shown.calls, true);
  renderAllFlags(shown.safety, shown.summary);
});

async function init() {
  await setupI18n();
  localeSwitch($("locale-switch"));
  showTitle();
  wireSignInForm({ form: "sign-in", email: "sign-in-email", password: "sign-in-password", error: "sign-in-error" },
    () => start());
  $("pause").addEventListener("click", () => control("pause"));
  $("resume").addEventListener("click", () => control("resume"));
  whoAmI().then((me) => (me ? start() : signOut(""))).catch(() => signOut(""));
}

init();
