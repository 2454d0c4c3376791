// Organisers' pages: their deliberations (/organise), a new one (/organise/new) and one deliberation
// (/organise/{id}): its settings, the participant link, opening, pausing and closing it, moderator invite links, who
// waits in the lobby and in which rooms people are, and starting a round. Moderators see the deliberations they were
// invited to, read-only. Rendered with Preact + htm (vendored); text only through JSX, never as HTML.

import { html, useCallback, useEffect, useState } from "/static/vendor/htm-preact-standalone.module.js";
import { signOut } from "/static/js/session.js";
import { ErrorLine, SignIn, StepIn, api, startStaffPage, useSignedIn } from "/static/js/staff.js";

const LOBBY_POLL_MS = 3000;
const STATUS_WORDS = { draft: "Draft", open: "Open", paused: "Paused", closed: "Closed" };

function navigate(path) {
  history.pushState(null, "", path);
  window.dispatchEvent(new PopStateEvent("popstate"));
}

function Link({ href, children }) {
  const follow = (event) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    navigate(href);
  };
  return html`<a href=${href} onClick=${follow}>${children}</a>`;
}

function CopyRow({ id, label, value }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value);
      setCopied(true);
    } catch {
      document.getElementById(id).select();
    }
  };
  return html`
    <label for=${id}>${label}</label>
    <div class="copy-row">
      <input id=${id} type="text" readonly value=${value} onFocus=${(e) => e.target.select()} />
      <button type="button" onClick=${copy}>${copied ? "Copied" : "Copy"}</button>
    </div>`;
}

function DeliberationList({ me }) {
  const [items, setItems] = useState(null);
  const [error, setError] = useState("");
  useEffect(() => {
    api("GET", "/api/deliberations").then((r) => (r.ok ? setItems(r.data) : setError(r.error)));
  }, []);
  const mayCreate = me.role === "organiser" || me.role === "admin";
  return html`
    <section class="narrow wide" aria-labelledby="list-heading">
      <h1 id="list-heading">Deliberations</h1>
      ${mayCreate && html`<p><${Link} href="/organise/new">New deliberation</${Link}></p>`}
      <${ErrorLine} text=${error} />
      ${items === null && !error && html`<p class="hint">Loading…</p>`}
      ${items !== null && items.length === 0 && html`<p class="hint">${mayCreate
        ? "None yet: start with a new deliberation." : "You have not been invited to a deliberation yet."}</p>`}
      ${items !== null && items.length > 0 && html`
        <ul class="deliberation-list">
          ${items.map((d) => html`
            <li key=${d.id}>
              <${Link} href=${`/organise/${d.id}`}>${d.title}</${Link}>
              ${" "}<span class=${`badge status-${d.status}`}>${STATUS_WORDS[d.status]}</span>
              ${!d.can_manage && html` <span class="hint">(moderator)</span>`}
            </li>`)}
        </ul>`}
    </section>`;
}

// --- the settings form --------------------------------------------------------------------------------------

const EMPTY_SPEC = {
  title: "", question: "", background: "", template: "quick-20", group_min: 4, group_max: 6,
  ai_messages: "direct", cross_pollination: 3, signup_questions: [], mix_question: null, languages: ["en"],
  starts_at: null,
  retention_days: null,
};

function toLocalInput(epochSeconds) {
  if (epochSeconds === null || epochSeconds === undefined) return "";
  const d = new Date(epochSeconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function fromLocalInput(value) {
  return value ? new Date(value).getTime() / 1000 : null;
}

function nextQuestionId(questions) {
  const used = new Set(questions.map((q) => q.id));
  let n = questions.length + 1;
  while (used.has(`q${n}`)) n += 1;
  return `q${n}`;
}

function QuestionEditor({ index, question, onChange, onRemove }) {
  const base = `question-${index}`;
  return html`
    <fieldset class="signup-question">
      <legend>Sign-up question ${index + 1}</legend>
      <label for=${`${base}-text`}>Question</label>
      <input id=${`${base}-text`} type="text" maxlength="300" value=${question.text}
        onInput=${(e) => onChange({ ...question, text: e.target.value })} />
      <label for=${`${base}-choices`}>Choices, one per line</label>
      <textarea id=${`${base}-choices`} rows="3" value=${question.choices.join("\n")}
        onInput=${(e) => onChange({ ...question, choices: e.target.value.split("\n") })}></textarea>
      <button type="button" onClick=${onRemove}>Remove this question</button>
    </fieldset>`;
}

function SpecForm({ initial, submitLabel, onSubmit, readOnly }) {
  const [spec, setSpec] = useState({ ...EMPTY_SPEC, ...initial });
  const [templates, setTemplates] = useState([]);
  const [languages, setLanguages] = useState((initial.languages || ["en"]).join(", "));
  const [error, setError] = useState("");
  const [saved, setSaved] = useState("");
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    api("GET", "/api/templates").then((r) => r.ok && setTemplates(r.data));
  }, []);
  const set = (field) => (event) => setSpec({ ...spec, [field]: event.target.value });
  const setNumber = (field) => (event) => setSpec({ ...spec, [field]: Number(event.target.value) });
  const questions = spec.signup_questions;
  const setQuestions = (next) => {
    const ids = new Set(next.map((q) => q.id));
    setSpec({ ...spec, signup_questions: next, mix_question: ids.has(spec.mix_question) ? spec.mix_question : null });
  };
  const submit = async (event) => {
    event.preventDefault();
    setError("");
    setSaved("");
    const fields = Object.fromEntries(Object.keys(EMPTY_SPEC).map((key) => [key, spec[key]]));
    const body = {
      ...fields,
      languages: languages.split(/[\s,]+/).filter(Boolean),
      signup_questions: questions.map((q) => ({ ...q, choices: q.choices.map((c) => c.trim()).filter(Boolean) })),
      retention_days: spec.retention_days ? Number(spec.retention_days) : null,
    };
    setBusy(true);
    const failure = await onSubmit(body);
    setBusy(false);
    if (failure) setError(failure);
    else setSaved("Saved.");
  };
  return html`
    <form class="card spec-form" onSubmit=${submit} novalidate>
      <fieldset disabled=${readOnly}>
        <legend class="visually-hidden">Settings</legend>
        <label for="spec-title">Title</label>
        <input id="spec-title" type="text" maxlength="200" required value=${spec.title} onInput=${set("title")} />
        <label for="spec-question">The question people deliberate</label>
        <textarea id="spec-question" rows="2" maxlength="2000" required value=${spec.question}
          onInput=${set("question")}></textarea>
        <label for="spec-background">Background material (people read it in the lobby)</label>
        <textarea id="spec-background" rows="5" maxlength="20000" value=${spec.background}
          onInput=${set("background")}></textarea>
        <label for="spec-template">Facilitator template</label>
        <select id="spec-template" value=${spec.template} onChange=${set("template")}>
          ${templates.length === 0 && html`<option value=${spec.template}>${spec.template}</option>`}
          ${templates.map((t) => html`<option key=${t.id} value=${t.id}>${t.title}</option>`)}
        </select>
        <div class="field-row">
          <div>
            <label for="spec-group-min">Smallest group</label>
            <input id="spec-group-min" type="number" min="2" max="12" value=${spec.group_min}
              onInput=${setNumber("group_min")} />
          </div>
          <div>
            <label for="spec-group-max">Largest group</label>
            <input id="spec-group-max" type="number" min="2" max="12" value=${spec.group_max}
              onInput=${setNumber("group_max")} />
          </div>
        </div>
        <label for="spec-cross-pollination">Statements from other rooms each room also votes on</label>
        <input id="spec-cross-pollination" type="number" min="0" max="10" value=${spec.cross_pollination ?? 3}
          onInput=${setNumber("cross_pollination")} aria-describedby="cross-pollination-hint" />
        <p class="hint" id="cross-pollination-hint">In its voting stage each room also votes on this many statements
          written in the other rooms (without their authors), so agreement across rooms can be measured. 0: none.</p>
        <fieldset class="start-with">
          <legend>AI facilitator messages</legend>
          <label class="checkbox"><input type="radio" name="ai-messages" value="direct"
            checked=${spec.ai_messages === "direct"} onChange=${set("ai_messages")} /> Posted directly (moderators
            can still remove them)</label>
          <label class="checkbox"><input type="radio" name="ai-messages" value="approve"
            checked=${spec.ai_messages === "approve"} onChange=${set("ai_messages")} /> A moderator approves each one
            first</label>
        </fieldset>
        <h3>Sign-up questions</h3>
        <p class="hint">Optional: asked in the lobby, for example an age band or a region.</p>
        ${questions.map((q, i) => html`<${QuestionEditor} key=${q.id} index=${i} question=${q}
          onChange=${(changed) => setQuestions(questions.map((x, j) => (j === i ? changed : x)))}
          onRemove=${() => setQuestions(questions.filter((_, j) => j !== i))} />`)}
        <button type="button" id="add-question" onClick=${() => setQuestions([...questions,
          { id: nextQuestionId(questions), text: "", choices: ["", ""] }])}>Add a sign-up question</button>
        ${questions.length > 0 && html`
          <label for="spec-mix">Spread the answers to this question evenly across rooms</label>
          <select id="spec-mix" value=${spec.mix_question || ""}
            onChange=${(e) => setSpec({ ...spec, mix_question: e.target.value || null })}>
            <option value="">No mixing</option>
            ${questions.map((q) => html`<option key=${q.id} value=${q.id}>${q.text || q.id}</option>`)}
          </select>`}
        <label for="spec-languages">Languages offered (codes, comma-separated, e.g. en, fr)</label>
        <input id="spec-languages" type="text" value=${languages} onInput=${(e) => setLanguages(e.target.value)} />
        <label for="spec-starts">First round starts at (optional; otherwise you start it)</label>
        <input id="spec-starts" type="datetime-local" value=${toLocalInput(spec.starts_at)}
          onInput=${(e) => setSpec({ ...spec, starts_at: fromLocalInput(e.target.value) })} />
        <label for="spec-retention">Delete transcripts this many days after closing (optional)</label>
        <input id="spec-retention" type="number" min="1" max="3650" value=${spec.retention_days ?? ""}
          onInput=${(e) => setSpec({ ...spec, retention_days: e.target.value === "" ? null : e.target.value })} />
        <${ErrorLine} text=${error} />
        ${saved && html`<p class="hint" role="status">${saved}</p>`}
        ${!readOnly && html`<button type="submit" class="primary" disabled=${busy}>${submitLabel}</button>`}
      </fieldset>
    </form>`;
}

function NewDeliberation() {
  const create = async (body) => {
    const r = await api("POST", "/api/deliberations", body);
    if (!r.ok) return r.error;
    navigate(`/organise/${r.data.id}`);
    return "";
  };
  return html`
    <section class="narrow wide" aria-labelledby="new-heading">
      <p><${Link} href="/organise">All deliberations</${Link}></p>
      <h1 id="new-heading">New deliberation</h1>
      <${SpecForm} initial=${EMPTY_SPEC} submitLabel="Create the deliberation" onSubmit=${create} />
    </section>`;
}

// --- one deliberation -----------------------------------------------------------------------------------------

function Lobby({ deliberation, onError }) {
  const [status, setStatus] = useState(null);
  const [round, setRound] = useState("");
  const [busy, setBusy] = useState(false);
  const refresh = useCallback(async () => {
    const r = await api("GET", `/api/deliberations/${deliberation.id}/lobby`);
    if (r.ok) setStatus(r.data);
  }, [deliberation.id]);
  useEffect(() => {
    refresh();
    const timer = setInterval(refresh, LOBBY_POLL_MS);
    return () => clearInterval(timer);
  }, [refresh]);
  const start = async () => {
    setBusy(true);
    const r = await api("POST", `/api/deliberations/${deliberation.id}/rounds`);
    setBusy(false);
    if (!r.ok) {
      onError(r.error);
      return;
    }
    const rooms = Object.keys(r.data.rooms).length;
    setRound(`Formed ${rooms} room${rooms === 1 ? "" : "s"}; ${r.data.waiting} still waiting.`);
    refresh();
  };
  const open = deliberation.status === "open";
  return html`
    <section class="card" aria-labelledby="lobby-heading">
      <h2 id="lobby-heading">Lobby and rooms</h2>
      <div class="lobby-status">
        ${status === null ? html`<p class="hint">Loading…</p>` : html`
          <p id="waiting" aria-live="polite"><strong>${status.waiting}</strong> waiting in the lobby.</p>
          ${status.rooms.length === 0 ? html`<p class="hint">No rooms yet.</p>` : html`
            <ul class="room-list" aria-label="Rooms">
              ${status.rooms.map((room) => html`
                <li key=${room.room_id}>
                  <span>${room.title}</span>: ${room.participants} ${room.participants === 1 ? "person" : "people"}
                  ${" "}<a href=${`/moderate/${room.room_id}`}>moderate</a>
                </li>`)}
            </ul>`}`}
      </div>
      ${deliberation.can_manage && html`
        <p class="hint">Starting a round puts everyone waiting into rooms of ${deliberation.group_min} to
          ${" "}${deliberation.group_max}${deliberation.mix_question ? ", spreading the answers to the chosen question"
          : ""}. People who arrive later fill open seats.</p>
        <button type="button" id="start-round" class="primary" disabled=${busy || !open}
          onClick=${start}>Start a round</button>
        ${!open && html`<p class="hint">Open the deliberation first.</p>`}
        ${round && html`<p role="status" id="round-result">${round}</p>`}`}
    </section>`;
}

function Moderators({ deliberation, onError }) {
  const [moderators, setModerators] = useState([]);
  const [invite, setInvite] = useState(null);
  const refresh = useCallback(async () => {
    const r = await api("GET", `/api/deliberations/${deliberation.id}/moderators`);
    if (r.ok) setModerators(r.data);
  }, [deliberation.id]);
  useEffect(() => { refresh(); }, [refresh]);
  const createInvite = async () => {
    const r = await api("POST", `/api/deliberations/${deliberation.id}/invites`);
    if (r.ok) setInvite(r.data);
    else onError(r.error);
  };
  const remove = async (userId) => {
    const r = await api("DELETE", `/api/deliberations/${deliberation.id}/moderators/${userId}`);
    if (!r.ok) onError(r.error);
    refresh();
  };
  return html`
    <section class="card" aria-labelledby="moderators-heading">
      <h2 id="moderators-heading">Moderators</h2>
      ${moderators.length === 0 ? html`<p class="hint">No moderators yet.</p>` : html`
        <ul aria-label="Moderators">
          ${moderators.map((m) => html`
            <li key=${m.user_id}>${m.email} <button type="button" onClick=${() => remove(m.user_id)}
              aria-label=${`Remove ${m.email}`}>Remove</button></li>`)}
        </ul>`}
      <button type="button" id="create-invite" onClick=${createInvite}>Create a moderator invite link</button>
      ${invite && html`
        <${CopyRow} id="invite-url" label="Invite link (works once)" value=${invite.url} />
        <p class="hint">It expires ${new Date(invite.expires_at * 1000).toLocaleString()}. Send it to one
          moderator.</p>`}
    </section>`;
}

function Lifecycle({ deliberation, onChanged, onError }) {
  const [confirmDelete, setConfirmDelete] = useState(false);
  const act = async (action) => {
    const r = await api("POST", `/api/deliberations/${deliberation.id}/${action}`);
    if (r.ok) onChanged(r.data);
    else onError(r.error);
  };
  const remove = async () => {
    const r = await api("DELETE", `/api/deliberations/${deliberation.id}`);
    if (r.ok) navigate("/organise");
    else onError(r.error);
  };
  const s = deliberation.status;
  return html`
    <section class="card" aria-labelledby="lifecycle-heading">
      <h2 id="lifecycle-heading">Open, pause, close</h2>
      <p>Status: <strong id="status">${STATUS_WORDS[s]}</strong>. ${s === "draft"
        ? "Participants cannot arrive until you open it." : s === "open" ? "People can arrive and rounds can start."
        : s === "paused" ? "Nobody new can arrive for now." : "It is over and can no longer change."}</p>
      <div class="button-row">
        ${(s === "draft" || s === "paused") && html`<button type="button" class="primary" id="open"
          onClick=${() => act("open")}>Open</button>`}
        ${s === "open" && html`<button type="button" id="pause" onClick=${() => act("pause")}>Pause</button>`}
        ${s !== "closed" && html`<button type="button" id="close" onClick=${() => act("close")}>Close for
          good</button>`}
        ${!confirmDelete && html`<button type="button" class="danger" onClick=${() => setConfirmDelete(true)}>
          Delete…</button>`}
      </div>
      ${confirmDelete && html`
        <p class="warning" role="alert">This deletes the deliberation with its rooms, transcripts, statements and
          votes. It cannot be undone.</p>
        <div class="button-row">
          <button type="button" class="danger" id="confirm-delete" onClick=${remove}>Delete everything</button>
          <button type="button" onClick=${() => setConfirmDelete(false)}>Keep it</button>
        </div>`}
    </section>`;
}

function Deliberation({ id }) {
  const [deliberation, setDeliberation] = useState(null);
  const [error, setError] = useState("");
  useEffect(() => {
    api("GET", `/api/deliberations/${encodeURIComponent(id)}`).then((r) => (r.ok ? setDeliberation(r.data)
      : setError(r.status === 404 ? "This deliberation does not exist, or you may not see it." : r.error)));
  }, [id]);
  const save = async (body) => {
    const r = await api("PUT", `/api/deliberations/${id}`, body);
    if (!r.ok) return r.error;
    setDeliberation(r.data);
    return "";
  };
  if (deliberation === null) {
    return html`<section class="narrow wide"><p><${Link} href="/organise">All deliberations</${Link}></p>
      ${error ? html`<${ErrorLine} text=${error} />` : html`<p class="hint">Loading…</p>`}</section>`;
  }
  const d = deliberation;
  return html`
    <section class="narrow wide" aria-labelledby="deliberation-heading">
      <p><${Link} href="/organise">All deliberations</${Link}></p>
      <h1 id="deliberation-heading">${d.title}</h1>
      <${ErrorLine} text=${error} />
      <p><a href=${`/dashboard/${d.id}`} id="dashboard-link">The live dashboard: every room at a glance</a></p>
      <p><a href=${`/review/${d.id}`} id="review-link">Review what was said: transcripts, statements, votes, exports</a>
      </p>
      <section class="card" aria-labelledby="link-heading">
        <h2 id="link-heading">The participant link</h2>
        <p class="hint">Everyone joins with this one link: they read the question and the notice, consent, and wait in
          the lobby until a round starts.</p>
        <${CopyRow} id="participant-url" label="Participant link" value=${d.participant_url} />
      </section>
      ${d.can_manage && html`<${Lifecycle} deliberation=${d} onChanged=${setDeliberation} onError=${setError} />`}
      <${Lobby} key=${d.status} deliberation=${d} onError=${setError} />
      ${d.status !== "closed" && d.status !== "draft" && html`<${StepIn} deliberation=${d} onError=${setError} />`}
      ${d.can_manage && html`<${Moderators} deliberation=${d} onError=${setError} />`}
      <h2>Settings</h2>
      <${SpecForm} key=${d.updated_at} initial=${d} submitLabel="Save the settings" onSubmit=${save}
        readOnly=${!d.can_manage || d.status === "closed"} />
    </section>`;
}

function App() {
  const [me, setMe] = useSignedIn();
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const onPop = () => setPath(location.pathname);
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);
  if (me === undefined) return html`<p class="hint">Loading…</p>`;
  if (me === null) return html`<${SignIn} onSignedIn=${setMe} />`;
  const out = async () => {
    await signOut();
    setMe(null);
  };
  const id = path.replace(/^\/organise\/?/, "");
  const page = id === "" ? html`<${DeliberationList} me=${me} />`
    : id === "new" ? html`<${NewDeliberation} />` : html`<${Deliberation} key=${id} id=${id} />`;
  return html`${page}<p class="narrow wide"><button type="button" onClick=${out}>Sign out</button></p>`;
}

startStaffPage(App, document.getElementById("main"));
