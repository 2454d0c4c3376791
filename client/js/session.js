// Signing in for organisers, moderators and administrators: the server keeps the session in an HttpOnly cookie;
// requests that change something send the session's CSRF token (from its readable cookie) in X-CSRF-Token.

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
  const response = await fetch("/api/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  if (response.ok) return null;
  const body = await response.json().catch(() => ({}));
  if (response.status === 429) return body.detail || "Too many attempts: wait a minute and try again.";
  if (response.status === 401) return "Wrong email or password.";
  return typeof body.detail === "string" ? body.detail : `Signing in failed (error ${response.status}).`;
}

export async function signOut() {
  await fetch("/api/auth/logout", { method: "POST", headers: changeHeaders() }).catch(() => {});
}

// Wires a sign-in form (email, password, error and submit elements by id) to call onSignedIn(me) when it succeeds.
export function wireSignInForm({ form, email, password, error }, onSignedIn) {
  const $ = (id) => document.getElementById(id);
  $(form).addEventListener("submit", async (event) => {
    event.preventDefault();
    $(error).hidden = true;
    const button = $(form).querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const failed = await signIn($(email).value.trim(), $(password).value);
      if (failed) {
        $(error).textContent = failed;
        $(error).hidden = false;
        $(password).focus();
        return;
      }
      $(password).value = "";
      onSignedIn(await whoAmI());
    } catch {
      $(error).textContent = "The server could not be reached. Check your connection and try again.";
      $(error).hidden = false;
    } finally {
      button.disabled = false;
    }
  });
}
