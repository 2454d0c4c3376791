// Organisers' pages: their deliberations (/organise), a new one (/organise/new) and one deliberation
// (/organise/{id}): its settings, the participant link, opening, pausing and closing it, moderator invite links, who
// waits in the lobby and in which rooms people are, and starting a round. Moderators see the deliberations they were
// invited to, read-only. Rendered with Preact + htm (vendored); text only through JSX, never as HTML.

import { html, useCallback, useEffect, useState } from "/static/vendor/htm-preact-standalone.module.js";
import { currentLocale, formatDateTime, t } from "/static/js/i18n.js";
import { signOut } from "/static/js/session.js";
import { ErrorLine, SignIn, StepIn, api, startStaffPage, useSignedIn, withElements } from "/static/js/staff.js";

const LOBBY_POLL_MS = 3000;
const NOT_FOUND = Symbol("not found");  // an error made here, put in words when shown (so a language switch applies)

// A deliberation's status in the interface's words.
function statusWord(status) {
  if (status === "draft") return t("organise.status_draft");
  if (status === "open") return t("organise.status_open");
  if (status === "paused") return t("organise.status_paused");
  if (status === "closed") return t("organise.status_closed");
  return status;
}

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
      <button type="button" onClick=${copy}>${copied ? t("organise.copied") : t("organise.copy")}</button>
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
      <h1 id="list-heading">${t("organise.heading")}</h1>
      ${mayCreate && html`<p><${Link} href="/organise/new">${t("organise.new")}</${Link}></p>`}
      <${ErrorLine} text=${error} />
      ${items === null && !error && html`<p class="hint">${t("ui.loading")}</p>`}
      ${items !== null && items.length === 0 && html`<p class="hint">${mayCreate
        ? t("organise.none_yet") : t("organise.not_invited")}</p>`}
      ${items !== null && items.length > 0 && html`
        <ul class="deliberation-list">
          ${items.map((d) => html`
            <li key=${d.id}>
              <${Link} href=${`/organise/${d.id}`}>${d.title}</${Link}>
              ${" "}<span class=${`badge status-${d.status}`}>${statusWord(d.status)}</span>
              ${!d.can_manage && html` <span class="hint">${t("organise.as_moderator")}</span>`}
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
      <legend>${t("organise.signup_question_number", { number: index + 1 })}</legend>
      <label for=${`${base}-text`}>${t("organise.question")}</label>
      <input id=${`${base}-text`} type="text" maxlength="300" value=${question.text}
        onInput=${(e) => onChange({ ...question, text: e.target.value })} />
      <label for=${`${base}-choices`}>${t("organise.choices")}</label>
      <textarea id=${`${base}-choices`} rows="3" value=${question.choices.join("\n")}
        onInput=${(e) => onChange({ ...question, choices: e.target.value.split("\n") })}></textarea>
      <button type="button" onClick=${onRemove}>${t("organise.remove_question")}</button>
    </fieldset>`;
}

function SpecForm({ initial, submitLabel, onSubmit, readOnly }) {
  const [spec, setSpec] = useState({ ...EMPTY_SPEC, ...initial });
  const [templates, setTemplates] = useState([]);
  const [languages, setLanguages] = useState((initial.languages || ["en"]).join(", "));
  const [error, setError] = useState("");
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    api("GET", `/api/templates?lang=${encodeURIComponent(currentLocale())}`).then((r) => r.ok && setTemplates(r.data));
  }, [currentLocale()]);  // (titled in the interface's language, again after a switch)
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
    setSaved(false);
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
    else setSaved(true);
  };
  return html`
    <form class="card spec-form" onSubmit=${submit} novalidate>
      <fieldset disabled=${readOnly}>
        <legend class="visually-hidden">${t("organise.settings")}</legend>
        <label for="spec-title">${t("organise.title")}</label>
        <input id="spec-title" type="text" maxlength="200" required value=${spec.title} onInput=${set("title")} />
        <label for="spec-question">${t("organise.spec_question")}</label>
        <textarea id="spec-question" rows="2" maxlength="2000" required value=${spec.question}
          onInput=${set("question")}></textarea>
        <label for="spec-background">${t("organise.background")}</label>
        <textarea id="spec-background" rows="5" maxlength="20000" value=${spec.background}
          onInput=${set("background")}></textarea>
        <label for="spec-template">${t("organise.template")}</label>
        <select id="spec-template" value=${spec.template} onChange=${set("template")}>
          ${templates.length === 0 && html`<option value=${spec.template}>${spec.template}</option>`}
          ${templates.map((template) => html`<option key=${template.id} value=${template.id}>${template.title}
            </option>`)}
        </select>
        <div class="field-row">
          <div>
            <label for="spec-group-min">${t("organise.group_min")}</label>
            <input id="spec-group-min" type="number" min="2" max="12" value=${spec.group_min}
              onInput=${setNumber("group_min")} />
          </div>
          <div>
            <label for="spec-group-max">${t("organise.group_max")}</label>
            <input id="spec-group-max" type="number" min="2" max="12" value=${spec.group_max}
              onInput=${setNumber("group_max")} />
          </div>
        </div>
        <label for="spec-cross-pollination">${t("organise.cross_pollination")}</label>
        <input id="spec-cross-pollination" type="number" min="0" max="10" value=${spec.cross_pollination ?? 3}
          onInput=${setNumber("cross_pollination")} aria-describedby="cross-pollination-hint" />
        <p class="hint" id="cross-pollination-hint">${t("organise.cross_pollination_hint")}</p>
        <fieldset class="start-with">
          <legend>${t("organise.ai_messages")}</legend>
          <label class="checkbox"><input type="radio" name="ai-messages" value="direct"
            checked=${spec.ai_messages === "direct"} onChange=${set("ai_messages")} /> ${t("organise.ai_direct")}
          </label>
          <label class="checkbox"><input type="radio" name="ai-messages" value="approve"
            checked=${spec.ai_messages === "approve"} onChange=${set("ai_messages")} /> ${t("organise.ai_approve")}
          </label>
        </fieldset>
        <h3>${t("organise.signup_questions")}</h3>
        <p class="hint">${t("organise.signup_questions_hint")}</p>
        ${questions.map((q, i) => html`<${QuestionEditor} key=${q.id} index=${i} question=${q}
          onChange=${(changed) => setQuestions(questions.map((x, j) => (j === i ? changed : x)))}
          onRemove=${() => setQuestions(questions.filter((_, j) => j !== i))} />`)}
        <button type="button" id="add-question" onClick=${() => setQuestions([...questions,
          { id: nextQuestionId(questions), text: "", choices: ["", ""] }])}>${t("organise.add_question")}</button>
        ${questions.length > 0 && html`
          <label for="spec-mix">${t("organise.mix_question")}</label>
          <select id="spec-mix" value=${spec.mix_question || ""}
            onChange=${(e) => setSpec({ ...spec, mix_question: e.target.value || null })}>
            <option value="">${t("organise.no_mixing")}</option>
            ${questions.map((q) => html`<option key=${q.id} value=${q.id}>${q.text || q.id}</option>`)}
          </select>`}
        <label for="spec-languages">${t("organise.languages")}</label>
        <input id="spec-languages" type="text" value=${languages} onInput=${(e) => setLanguages(e.target.value)} />
        <label for="spec-starts">${t("organise.starts_at")}</label>
        <input id="spec-starts" type="datetime-local" value=${toLocalInput(spec.starts_at)}
          onInput=${(e) => setSpec({ ...spec, starts_at: fromLocalInput(e.target.value) })} />
        <label for="spec-retention">${t("organise.retention")}</label>
        <input id="spec-retention" type="number" min="1" max="3650" value=${spec.retention_days ?? ""}
          onInput=${(e) => setSpec({ ...spec, retention_days: e.target.value === "" ? null : e.target.value })} />
        <${ErrorLine} text=${error} />
        ${saved && html`<p class="hint" role="status">${t("organise.saved")}</p>`}
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
      <p><${Link} href="/organise">${t("organise.all")}</${Link}></p>
      <h1 id="new-heading">${t("organise.new")}</h1>
      <${SpecForm} initial=${EMPTY_SPEC} submitLabel=${t("organise.create")} onSubmit=${create} />
    </section>`;
}

// --- one deliberation -----------------------------------------------------------------------------------------

function Lobby({ deliberation, onError }) {
  const [status, setStatus] = useState(null);
  const [round, setRound] = useState(null);
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
    setRound({ rooms: Object.keys(r.data.rooms).length, waiting: r.data.waiting });
    refresh();
  };
  const open = deliberation.status === "open";
  return html`
    <section class="card" aria-labelledby="lobby-heading">
      <h2 id="lobby-heading">${t("organise.lobby_heading")}</h2>
      <div class="lobby-status">
        ${status === null ? html`<p class="hint">${t("ui.loading")}</p>` : html`
          <p id="waiting" aria-live="polite">${withElements(t("organise.waiting", { count: status.waiting }),
            { waiting: html`<strong>${status.waiting}</strong>` })}</p>
          ${status.rooms.length === 0 ? html`<p class="hint">${t("organise.no_rooms")}</p>` : html`
            <ul class="room-list" aria-label=${t("organise.rooms")}>
              ${status.rooms.map((room) => html`
                <li key=${room.room_id}>
                  <span>${room.title}</span>: ${t("organise.people", { count: room.participants })}
                  ${" "}<a href=${`/moderate/${room.room_id}`}>${t("organise.moderate")}</a>
                </li>`)}
            </ul>`}`}
      </div>
      ${deliberation.can_manage && html`
        <p class="hint">${deliberation.mix_question
          ? t("organise.round_hint_mix", { min: deliberation.group_min, max: deliberation.group_max })
          : t("organise.round_hint", { min: deliberation.group_min, max: deliberation.group_max })}</p>
        <button type="button" id="start-round" class="primary" disabled=${busy || !open}
          onClick=${start}>${t("organise.start_round")}</button>
        ${!open && html`<p class="hint">${t("organise.open_first")}</p>`}
        ${round && html`<p role="status" id="round-result">${t("organise.round_result",
          { count: round.rooms, waiting: round.waiting })}</p>`}`}
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
      <h2 id="moderators-heading">${t("organise.moderators")}</h2>
      ${moderators.length === 0 ? html`<p class="hint">${t("organise.no_moderators")}</p>` : html`
        <ul aria-label=${t("organise.moderators")}>
          ${moderators.map((m) => html`
            <li key=${m.user_id}>${m.email} <button type="button" onClick=${() => remove(m.user_id)}
              aria-label=${t("organise.remove_moderator", { email: m.email })}>${t("organise.remove")}</button></li>`)}
        </ul>`}
      <button type="button" id="create-invite" onClick=${createInvite}>${t("organise.create_invite")}</button>
      ${invite && html`
        <${CopyRow} id="invite-url" label=${t("organise.invite_link")} value=${invite.url} />
        <p class="hint">${t("organise.invite_expires", { date: formatDateTime(invite.expires_at) })}</p>`}
    </section>`;
}

// What a status means for the people arriving.
function statusMeaning(status) {
  if (status === "draft") return t("organise.draft_meaning");
  if (status === "open") return t("organise.open_meaning");
  if (status === "paused") return t("organise.paused_meaning");
  return t("organise.closed_meaning");
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
      <h2 id="lifecycle-heading">${t("organise.lifecycle_heading")}</h2>
      <p>${withElements(t("organise.status_line", { meaning: statusMeaning(s) }),
        { status: html`<strong id="status">${statusWord(s)}</strong>` })}</p>
      <div class="button-row">
        ${(s === "draft" || s === "paused") && html`<button type="button" class="primary" id="open"
          onClick=${() => act("open")}>${t("organise.open")}</button>`}
        ${s === "open" && html`<button type="button" id="pause" onClick=${() => act("pause")}>${t("organise.pause")}
          </button>`}
        ${s !== "closed" && html`<button type="button" id="close" onClick=${() => act("close")}>${t("organise.close")}
          </button>`}
        ${!confirmDelete && html`<button type="button" class="danger" onClick=${() => setConfirmDelete(true)}>
          ${t("organise.delete")}</button>`}
      </div>
      ${confirmDelete && html`
        <p class="warning" role="alert">${t("organise.delete_warning")}</p>
        <div class="button-row">
          <button type="button" class="danger" id="confirm-delete" onClick=${remove}>${t("organise.delete_everything")}
          </button>
          <button type="button" onClick=${() => setConfirmDelete(false)}>${t("organise.keep_it")}</button>
        </div>`}
    </section>`;
}

function Deliberation({ id }) {
  const [deliberation, setDeliberation] = useState(null);
  const [error, setError] = useState("");
  useEffect(() => {
    api("GET", `/api/deliberations/${encodeURIComponent(id)}`).then((r) => (r.ok ? setDeliberation(r.data)
      : setError(r.status === 404 ? NOT_FOUND : r.error)));
  }, [id]);
  const save = async (body) => {
    const r = await api("PUT", `/api/deliberations/${id}`, body);
    if (!r.ok) return r.error;
    setDeliberation(r.data);
    return "";
  };
  const errorText = error === NOT_FOUND ? t("organise.not_found") : error;
  if (deliberation === null) {
    return html`<section class="narrow wide"><p><${Link} href="/organise">${t("organise.all")}</${Link}></p>
      ${error ? html`<${ErrorLine} text=${errorText} />` : html`<p class="hint">${t("ui.loading")}</p>`}</section>`;
  }
  const d = deliberation;
  return html`
    <section class="narrow wide" aria-labelledby="deliberation-heading">
      <p><${Link} href="/organise">${t("organise.all")}</${Link}></p>
      <h1 id="deliberation-heading">${d.title}</h1>
      <${ErrorLine} text=${errorText} />
      <p><a href=${`/dashboard/${d.id}`} id="dashboard-link">${t("organise.dashboard_link")}</a></p>
      <p><a href=${`/review/${d.id}`} id="review-link">${t("organise.review_link")}</a></p>
      <section class="card" aria-labelledby="link-heading">
        <h2 id="link-heading">${t("organise.participant_link_heading")}</h2>
        <p class="hint">${t("organise.participant_link_hint")}</p>
        <${CopyRow} id="participant-url" label=${t("organise.participant_link")} value=${d.participant_url} />
      </section>
      ${d.can_manage && html`<${Lifecycle} deliberation=${d} onChanged=${setDeliberation} onError=${setError} />`}
      <${Lobby} key=${d.status} deliberation=${d} onError=${setError} />
      ${d.status !== "closed" && d.status !== "draft" && html`<${StepIn} deliberation=${d} onError=${setError} />`}
      ${d.can_manage && html`<${Moderators} deliberation=${d} onError=${setError} />`}
      <h2>${t("organise.settings")}</h2>
      <${SpecForm} key=${d.updated_at} initial=${d} submitLabel=${t("organise.save")} onSubmit=${save}
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
  if (me === undefined) return html`<p class="hint">${t("ui.loading")}</p>`;
  if (me === null) return html`<${SignIn} onSignedIn=${setMe} />`;
  const out = async () => {
    await signOut();
    setMe(null);
  };
  const id = path.replace(/^\/organise\/?/, "");
  const page = id === "" ? html`<${DeliberationList} me=${me} />`
    : id === "new" ? html`<${NewDeliberation} />` : html`<${Deliberation} key=${id} id=${id} />`;
  return html`${page}<p class="narrow wide"><button type="button" onClick=${out}>${t("landing.sign_out")}</button></p>`;
}

startStaffPage(App, document.getElementById("main"));
