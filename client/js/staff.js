// Shared by the organisers', moderators' and reviewers' pages (Preact + htm): starting a page in the reader's
// interface language (with the header's switch), API requests with the session's CSRF token, an error line, the
// sign-in form, who is signed in, and the "step in" card (a message to every room, the AI paused or resumed
// everywhere).

import { html, render, useEffect, useState } from "/static/vendor/htm-preact-standalone.module.js";
import { currentLocale, localeSwitch, setupI18n, t } from "/static/js/i18n.js";
import { changeHeaders, signIn, whoAmI } from "/static/js/session.js";

// Render a page's app once its words are loaded; switching the interface language re-renders it in place (its state
// kept: the app gets the locale as a prop, so every component below re-renders with the new words).
export async function startStaffPage(App, main) {
  await setupI18n();
  const select = document.getElementById("locale-switch");
  if (select) localeSwitch(select);
  const draw = () => render(html`<${App} locale=${currentLocale()} />`, main);
  document.addEventListener("moot:locale", draw);
  main.textContent = "";
  draw();
}

// One request to the API: {ok, status, data, error} (error in words a person can act on).
export async function api(method, path, body) {
  const init = { method, headers: method === "GET" ? {} : changeHeaders() };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    return { ok: false, status: 0, data: null, error: t("ui.unreachable_short") };
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (response.ok) return { ok: true, status: response.status, data, error: "" };
  const detail = data && typeof data.detail === "string" ? data.detail : t("staff.http_error", { status: response.status });
  return { ok: false, status: response.status, data, error: detail };
}

export function ErrorLine({ text }) {
  return text ? html`<p class="error" role="alert">${text}</p>` : null;
}

export function SignIn({ onSignedIn }) {
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    const form = event.target;
    setBusy(true);
    setError("");
    const failed = await signIn(form.email.value.trim(), form.password.value).catch(() => t("ui.unreachable_retry"));
    setBusy(false);
    if (failed) {
      setError(failed);
      return;
    }
    onSignedIn(await whoAmI());
  };
  return html`
    <form class="card narrow" id="sign-in" onSubmit=${submit} novalidate>
      <h1>${t("staff.sign_in")}</h1>
      <p class="hint">${t("staff.sign_in_hint")}</p>
      <label for="sign-in-email">${t("landing.email")}</label>
      <input id="sign-in-email" name="email" type="email" autocomplete="username" required />
      <label for="sign-in-password">${t("landing.password")}</label>
      <input id="sign-in-password" name="password" type="password" autocomplete="current-password" required />
      <${ErrorLine} text=${error} />
      <button type="submit" class="primary" disabled=${busy}>${t("staff.sign_in")}</button>
    </form>`;
}


// An account's role in the interface's words.
export function roleName(role) {
  if (role === "organiser") return t("staff.role_organiser");
  if (role === "moderator") return t("staff.role_moderator");
  if (role === "admin") return t("staff.role_admin");
  return role;
}

// Who is signed in: undefined while asking, null when nobody (show SignIn); shown in the page's #whoami.
export function useSignedIn() {
  const [me, setMe] = useState(undefined);
  useEffect(() => {
    whoAmI().then(setMe).catch(() => setMe(null));
  }, []);
  useEffect(() => {
    document.getElementById("whoami").textContent = me ? t("staff.whoami", { email: me.email, role: roleName(me.role) })
      : "";
  }, [me, currentLocale()]);  // (and again in another interface language)
  return [me, setMe];
}

// A message to every room of the deliberation, and the AI paused or resumed in all of them.
export function StepIn({ deliberation, onError }) {
  const [done, setDone] = useState("");
  const say = async (event) => {
    event.preventDefault();
    const text = event.target.text.value.trim();
    if (!text) return;
    const r = await api("POST", `/api/deliberations/${deliberation.id}/broadcast`, { text });
    if (!r.ok) {
      onError(r.error);
      return;
    }
    event.target.reset();
    setDone(t("staff.sent_to_rooms", { count: r.data.rooms.length }));
  };
  const facilitator = async (action) => {
    const r = await api("POST", `/api/deliberations/${deliberation.id}/facilitator/${action}`);
    if (!r.ok) onError(r.error);
    else if (r.data.facilitator === "paused") setDone(t("staff.ai_paused_in_rooms", { count: r.data.rooms.length }));
    else setDone(t("staff.ai_resumed_in_rooms", { count: r.data.rooms.length }));
  };
  return html`
    <section class="card" aria-labelledby="step-in-heading">
      <h2 id="step-in-heading">${t("staff.step_in")}</h2>
      <form onSubmit=${say}>
        <label for="broadcast-text">${t("staff.broadcast_label")}</label>
        <textarea id="broadcast-text" name="text" rows="2" maxlength="1000"></textarea>
        <button type="submit" id="broadcast">${t("staff.broadcast")}</button>
      </form>
      <div class="button-row">
        <button type="button" id="pause-all" onClick=${() => facilitator("pause")}>${t("staff.pause_all")}</button>
        <button type="button" id="resume-all" onClick=${() => facilitator("resume")}>${t("staff.resume_all")}</button>
      </div>
      ${done && html`<p role="status" id="step-in-result">${done}</p>`}
    </section>`;
}

// A translated message whose {placeholders} are elements (names kept in <bdi>): t() leaves the placeholders it is
// not given, and each is replaced here by its element, the words around it staying text.
export function withElements(text, elements) {
  return text.split(/(\{\w+\})/).map((part) => {
    const name = /^\{(\w+)\}$/.exec(part);
    return name && name[1] in elements ? elements[name[1]] : part;
  });
}
