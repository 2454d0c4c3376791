// A moderator invite link (/invite/{token}): says which deliberation it is for, then makes the person a moderator of
// it: signed in, with one button; otherwise by signing in, or by creating a moderator account. Single use.

import { html, useEffect, useState } from "/static/vendor/htm-preact-standalone.module.js";
import { t } from "/static/js/i18n.js";
import { changeHeaders, signIn, whoAmI } from "/static/js/session.js";
import { startStaffPage, withElements } from "/static/js/staff.js";

const token = location.pathname.split("/").pop();
// Errors made here, put in words when shown (so a language switch applies to them too); the server's are strings.
const UNREACHABLE = Symbol("unreachable");
const MISMATCH = Symbol("passwords differ");

function errorText(error) {
  if (error === UNREACHABLE) return t("ui.unreachable_retry");
  if (error === MISMATCH) return t("invite.passwords_differ");
  return error;
}

async function accept(body) {
  const init = { method: "POST", headers: changeHeaders() };
  if (body) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(`/api/invites/${encodeURIComponent(token)}/accept`, init);
  const data = await response.json().catch(() => ({}));
  if (response.ok) return { deliberation: data, error: "" };
  return { deliberation: null, error: typeof data.detail === "string" ? data.detail
    : t("staff.http_error", { status: response.status }) };
}

function Accepted({ deliberation }) {
  return html`
    <section class="card" role="status">
      <h2>${t("invite.accepted", { title: deliberation.title })}</h2>
      <p><a href=${`/organise/${deliberation.id}`} id="go-deliberation">${t("invite.open_deliberation")}</a></p>
    </section>`;
}

function Invite() {
  const [info, setInfo] = useState(undefined);
  const [me, setMe] = useState(undefined);
  const [mode, setMode] = useState("create");
  const [error, setError] = useState("");
  const [done, setDone] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    fetch(`/api/invites/${encodeURIComponent(token)}`)
      .then(async (r) => setInfo(r.ok ? await r.json() : null))
      .catch(() => setError(UNREACHABLE));
    whoAmI().then(setMe).catch(() => setMe(null));
  }, []);
  if (done) return html`<${Accepted} deliberation=${done} />`;
  if (info === undefined || me === undefined) return html`<p class="hint">${errorText(error) || t("ui.loading")}</p>`;
  if (info === null) return html`<p class="error" role="alert">${t("invite.unknown")}</p>`;
  const run = async (work) => {
    setBusy(true);
    setError("");
    try {
      await work();
    } catch {
      setError(UNREACHABLE);
    } finally {
      setBusy(false);
    }
  };
  const acceptSignedIn = () => run(async () => {
    const result = await accept(null);
    if (result.error) setError(result.error);
    else setDone(result.deliberation);
  });
  const submit = (event) => {
    event.preventDefault();
    const form = event.target;
    const email = form.email.value.trim();
    const password = form.password.value;
    run(async () => {
      if (mode === "create") {
        if (password !== form.confirm.value) {
          setError(MISMATCH);
          return;
        }
        const result = await accept({ email, password });
        if (result.error) {
          setError(result.error);
          return;
        }
        const failed = await signIn(email, password);  // the account exists now: start its session
        if (failed) setError(failed);
        setDone(result.deliberation);
        return;
      }
      const failed = await signIn(email, password);
      if (failed) {
        setError(failed);
        return;
      }
      const result = await accept(null);
      if (result.error) setError(result.error);
      else setDone(result.deliberation);
    });
  };
  const intro = html`<p class="lead">${withElements(t("invite.intro"), { title: html`<strong>${info.title}</strong>` })}</p>`;
  const errorLine = error && html`<p class="error" role="alert">${errorText(error)}</p>`;
  if (me) {
    return html`
      ${intro}
      <section class="card">
        <p>${t("landing.signed_in_as")} ${me.email}.</p>
        ${errorLine}
        <button type="button" class="primary" id="accept" disabled=${busy} onClick=${acceptSignedIn}>
          ${t("invite.accept")}</button>
      </section>`;
  }
  return html`
    ${intro}
    <form class="card" id="invite-form" onSubmit=${submit} novalidate>
      <fieldset class="start-with">
        <legend>${t("invite.have_account")}</legend>
        <label class="checkbox"><input type="radio" name="mode" value="create" checked=${mode === "create"}
          onChange=${() => setMode("create")} /> ${t("invite.mode_create")}</label>
        <label class="checkbox"><input type="radio" name="mode" value="sign-in" checked=${mode === "sign-in"}
          onChange=${() => setMode("sign-in")} /> ${t("invite.mode_sign_in")}</label>
      </fieldset>
      <label for="invite-email">${t("landing.email")}</label>
      <input id="invite-email" name="email" type="email" autocomplete="username" required />
      <label for="invite-password">${mode === "create" ? t("invite.new_password") : t("landing.password")}</label>
      <input id="invite-password" name="password" type="password" required
        autocomplete=${mode === "create" ? "new-password" : "current-password"} />
      ${mode === "create" && html`
        <label for="invite-confirm">${t("invite.confirm_password")}</label>
        <input id="invite-confirm" name="confirm" type="password" autocomplete="new-password" required />`}
      ${errorLine}
      <button type="submit" class="primary" disabled=${busy}>${mode === "create" ? t("invite.create_and_accept")
        : t("invite.sign_in_and_accept")}</button>
    </form>`;
}

startStaffPage(Invite, document.getElementById("main"));
