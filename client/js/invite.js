// A moderator invite link (/invite/{token}): says which deliberation it is for, then makes the person a moderator of
// it: signed in, with one button; otherwise by signing in, or by creating a moderator account. Single use.

import { html, useEffect, useState } from "/static/vendor/htm-preact-standalone.module.js";
import { changeHeaders, signIn, whoAmI } from "/static/js/session.js";
import { startStaffPage } from "/static/js/staff.js";

const token = location.pathname.split("/").pop();
const UNREACHABLE = "The server could not be reached. Check your connection and try again.";

async function accept(body) {
  const init = { method: "POST", headers: changeHeaders() };
  if (body) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(`/api/invites/${encodeURIComponent(token)}/accept`, init);
  const data = await response.json().catch(() => ({}));
  if (response.ok) return { deliberation: data, error: "" };
  return { deliberation: null, error: typeof data.detail === "string" ? data.detail : `error ${response.status}` };
}

function Accepted({ deliberation }) {
  return html`
    <section class="card" role="status">
      <h2>You moderate “${deliberation.title}”</h2>
      <p><a href=${`/organise/${deliberation.id}`} id="go-deliberation">Open the deliberation</a></p>
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
  if (info === undefined || me === undefined) return html`<p class="hint">${error || "Loading…"}</p>`;
  if (info === null) {
    return html`<p class="error" role="alert">This invite is unknown, already used or expired. Ask the organiser for a
      new link.</p>`;
  }
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
          setError("The two passwords differ.");
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
  const intro = html`<p class="lead">You are invited to moderate “<strong>${info.title}</strong>”: watch its rooms,
    help participants, and overrule the AI facilitator when needed.</p>`;
  if (me) {
    return html`
      ${intro}
      <section class="card">
        <p>Signed in as ${me.email}.</p>
        ${error && html`<p class="error" role="alert">${error}</p>`}
        <button type="button" class="primary" id="accept" disabled=${busy} onClick=${acceptSignedIn}>Accept the
          invite</button>
      </section>`;
  }
  return html`
    ${intro}
    <form class="card" id="invite-form" onSubmit=${submit} novalidate>
      <fieldset class="start-with">
        <legend>Do you have a Moot account on this server?</legend>
        <label class="checkbox"><input type="radio" name="mode" value="create" checked=${mode === "create"}
          onChange=${() => setMode("create")} /> No: create a moderator account</label>
        <label class="checkbox"><input type="radio" name="mode" value="sign-in" checked=${mode === "sign-in"}
          onChange=${() => setMode("sign-in")} /> Yes: sign in</label>
      </fieldset>
      <label for="invite-email">Email</label>
      <input id="invite-email" name="email" type="email" autocomplete="username" required />
      <label for="invite-password">Password${mode === "create" ? " (at least 12 characters)" : ""}</label>
      <input id="invite-password" name="password" type="password" required
        autocomplete=${mode === "create" ? "new-password" : "current-password"} />
      ${mode === "create" && html`
        <label for="invite-confirm">The same password again</label>
        <input id="invite-confirm" name="confirm" type="password" autocomplete="new-password" required />`}
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <button type="submit" class="primary" disabled=${busy}>${mode === "create" ? "Create the account and accept"
        : "Sign in and accept"}</button>
    </form>`;
}

startStaffPage(Invite, document.getElementById("main"));
