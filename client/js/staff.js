// Shared by the organisers', moderators' and reviewers' pages (Preact + htm): API requests with the session's CSRF
// token, an error line, the sign-in form, who is signed in, and the "step in" card (a message to every room, the AI
// paused or resumed everywhere).

import { html, useEffect, useState } from "/static/vendor/htm-preact-standalone.module.js";
import { changeHeaders, signIn, whoAmI } from "/static/js/session.js";

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
    return { ok: false, status: 0, data: null, error: "The server could not be reached. Check your connection." };
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (response.ok) return { ok: true, status: response.status, data, error: "" };
  const detail = data && typeof data.detail === "string" ? data.detail : `error ${response.status}`;
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
    const failed = await signIn(form.email.value.trim(), form.password.value).catch(
      () => "The server could not be reached. Check your connection and try again.");
    setBusy(false);
    if (failed) {
      setError(failed);
      return;
    }
    onSignedIn(await whoAmI());
  };
  return html`
    <form class="card narrow" id="sign-in" onSubmit=${submit} novalidate>
      <h1>Sign in</h1>
      <p class="hint">For organisers and the moderators they invited.</p>
      <label for="sign-in-email">Email</label>
      <input id="sign-in-email" name="email" type="email" autocomplete="username" required />
      <label for="sign-in-password">Password</label>
      <input id="sign-in-password" name="password" type="password" autocomplete="current-password" required />
      <${ErrorLine} text=${error} />
      <button type="submit" class="primary" disabled=${busy}>Sign in</button>
    </form>`;
}


// Who is signed in: undefined while asking, null when nobody (show SignIn); shown in the page's #whoami.
export function useSignedIn() {
  const [me, setMe] = useState(undefined);
  useEffect(() => {
    whoAmI().then(setMe).catch(() => setMe(null));
  }, []);
  useEffect(() => {
    document.getElementById("whoami").textContent = me ? `${me.email} (${me.role})` : "";
  }, [me]);
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
    setDone(`Sent to ${r.data.rooms.length} room${r.data.rooms.length === 1 ? "" : "s"}.`);
  };
  const facilitator = async (action) => {
    const r = await api("POST", `/api/deliberations/${deliberation.id}/facilitator/${action}`);
    if (!r.ok) onError(r.error);
    else setDone(`AI facilitator ${r.data.facilitator} in ${r.data.rooms.length} room${r.data.rooms.length === 1
      ? "" : "s"}.`);
  };
  return html`
    <section class="card" aria-labelledby="step-in-heading">
      <h2 id="step-in-heading">Step in</h2>
      <form onSubmit=${say}>
        <label for="broadcast-text">A message to every room (shown as from a moderator)</label>
        <textarea id="broadcast-text" name="text" rows="2" maxlength="1000"></textarea>
        <button type="submit" id="broadcast">Send to every room</button>
      </form>
      <div class="button-row">
        <button type="button" id="pause-all" onClick=${() => facilitator("pause")}>Pause the AI in every room</button>
        <button type="button" id="resume-all" onClick=${() => facilitator("resume")}>Resume it</button>
      </div>
      ${done && html`<p role="status" id="step-in-result">${done}</p>`}
    </section>`;
}
