// Signing in for organisers, moderators and administrators: the server keeps the session in an HttpOnly cookie;
// requests that change something send the session's CSRF token (from its readable cookie) in X-CSRF-Token.
import { t } from "./i18n.js";

function cookie(name) {
  const found = document.cookie.split("; ").find((part) => part.startsWith(`${name}=`));
  return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
}

// Headers for a request that changes something.
export function changeHeaders(extra = {}) {
  return { "X-CSRF-Token": cookie("moot_csrf"), ...extra };
}

// Who is signed in ({email, role, expires_at}), or null.
export async function whoAmI() {
  const response = await fetch("/api/auth/me");
  return response.ok ? response.json() : null;
}

// Sign in; returns null, or the reason it failed (in words a person can act on).
export async function signIn(email, password) {
  const failed = await attempt(email, password);
  return failed && failed();
}

// Sign in; returns null, or a function that words the reason it failed in the interface's current language.
async function attempt(email, password) {
  const response = await fetch("/api/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  if (response.ok) return null;
  const body = await response.json().catch(() => ({}));
  if (response.status === 429) return () => body.detail || t("session.too_many_attempts");
  if (response.status === 401) return () => t("session.wrong_password");
  return () => (typeof body.detail === "string" ? body.detail : t("session.failed", { status: response.status }));
}

export async function signOut() {
  await fetch("/api/auth/logout", { method: "POST", headers: changeHeaders() }).catch(() => {});
}

// Wires a sign-in form (email, password, error and submit elements by id) to call onSignedIn(me) when it succeeds.
// The error it shows is worded again when the interface's language changes.
export function wireSignInForm({ form, email, password, error }, onSignedIn) {
  const $ = (id) => document.getElementById(id);
  let shown = null; // the error this wrote (as a function of the language) and its words
  const show = (text) => {
    shown = { text, words: text() };
    $(error).textContent = shown.words;
    $(error).hidden = false;
  };
  document.addEventListener("moot:locale", () => {
    if (!shown || $(error).textContent !== shown.words) return; // the page wrote something else there since
    shown.words = shown.text();
    $(error).textContent = shown.words;
  });
  $(form).addEventListener("submit", async (event) => {
    event.preventDefault();
    $(error).hidden = true;
    const button = $(form).querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const failed = await attempt($(email).value.trim(), $(password).value);
      if (failed) {
        show(failed);
        $(password).focus();
        return;
      }
      $(password).value = "";
      onSignedIn(await whoAmI());
    } catch {
      show(() => t("ui.unreachable_retry"));
    } finally {
      button.disabled = false;
    }
  });
}
