// Landing page: sign in, create a room and share its link.
import { currentLocale, localeSwitch, setupI18n, t } from "./i18n.js";
import { changeHeaders, signOut, whoAmI, wireSignInForm } from "./session.js";
import { Words } from "./translated.js";

await setupI18n();
localeSwitch(document.getElementById("locale-switch"));
// The words this script wrote on the page, written again in another interface language (see translated.js).
const words = new Words();
document.addEventListener("moot:locale", () => words.rewrite());

const form = document.getElementById("create-room");
const titleInput = document.getElementById("room-title");
const errorBox = document.getElementById("create-error");
const created = document.getElementById("room-created");
const linkInput = document.getElementById("room-link");
const copyButton = document.getElementById("copy-link");
const copyStatus = document.getElementById("copy-status");

// message: a function giving the words (calling t), or the server's own.
function showError(message) {
  words.set(errorBox, message);
  errorBox.hidden = false;
  titleInput.setAttribute("aria-invalid", "true");
  titleInput.focus();
}

// The templates, titled in the interface's language where they have it (again after a switch).
const templateSelect = document.getElementById("room-template");
function loadTemplates() {
  fetch(`/api/templates?lang=${encodeURIComponent(currentLocale())}`)
    .then((response) => response.json())
    .then((templates) => {
      for (const template of templates) {
        const option = templateSelect.querySelector(`option[value="${CSS.escape(template.id)}"]`)
          || templateSelect.appendChild(document.createElement("option"));
        option.value = template.id;
        option.textContent = template.title;
        option.lang = template.language;
      }
    })
    .catch(() => {});
}
loadTemplates();
document.addEventListener("moot:locale", loadTemplates);

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  errorBox.hidden = true;
  titleInput.removeAttribute("aria-invalid");
  const title = titleInput.value.trim();
  if (!title) {
    showError(() => t("landing.need_topic"));
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const response = await fetch("/api/rooms", {
      method: "POST",
      headers: changeHeaders({ "content-type": "application/json" }),
      body: JSON.stringify({
        title,
        template: templateSelect.value || null,
        question: document.getElementById("room-question").value.trim() || null,
        ai_messages: templateSelect.value && document.getElementById("room-approval").checked ? "approve" : null,
      }),
    });
    const body = await response.json().catch(() => ({}));
    if (response.status === 401) {
      showSignIn();
      return;
    }
    if (!response.ok) {
      const { status } = response;
      showError(typeof body.detail === "string" ? body.detail : () => t("landing.create_failed", { status }));
      return;
    }
    linkInput.value = body.url;
    document.getElementById("room-capacity").textContent = String(body.max_participants);
    document.getElementById("join-link").href = `/r/${encodeURIComponent(body.id)}`;
    document.getElementById("moderate-link").href = `/moderate/${encodeURIComponent(body.id)}`;
    created.hidden = false;
    linkInput.focus();
    linkInput.select();
  } catch (err) {
    showError(() => t("ui.unreachable_retry"));
  } finally {
    button.disabled = false;
  }
});

copyButton.addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(linkInput.value);
    words.set(copyStatus, () => t("landing.copied"));
  } catch {
    linkInput.select();
    words.set(copyStatus, () => t("landing.copy_by_hand"));
  }
});

let openRooms = false; // anyone may start a room (MOOT_OPEN_ROOMS): the form shows without signing in

function showSignIn() {
  document.getElementById("sign-in").hidden = false;
  document.getElementById("create-room").hidden = !openRooms;
  document.getElementById("signed-in").hidden = true;
  document.getElementById("deliberations-link").hidden = true;
  document.getElementById("sign-in-note").hidden = !openRooms;
}

function showSignedIn(me) {
  document.getElementById("sign-in").hidden = true;
  document.getElementById("create-room").hidden = false;
  document.getElementById("signed-in").hidden = false;
  document.getElementById("deliberations-link").hidden = false;
  document.getElementById("signed-in-email").textContent = me.email;
}

wireSignInForm({ form: "sign-in", email: "sign-in-email", password: "sign-in-password", error: "sign-in-error" },
  (me) => (me ? showSignedIn(me) : showSignIn()));
document.getElementById("sign-out").addEventListener("click", async () => {
  await signOut();
  showSignIn();
});
fetch("/api/config")
  .then((response) => (response.ok ? response.json() : {}))
  .catch(() => ({}))
  .then((config) => {
    openRooms = Boolean(config.open_rooms);
    return whoAmI();
  })
  .then((me) => (me ? showSignedIn(me) : showSignIn()))
  .catch(showSignIn);
