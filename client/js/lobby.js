// The lobby page (/d/<deliberation id>): read the question and the notice, check camera and microphone, give a name,
// answer the sign-up questions, consent, and wait until the organisers form the groups; then go to one's room. The
// participant credential is kept in localStorage, so a reload (or a later visit) goes straight back to waiting or to
// the room. Every text from the server is set with textContent.
import { currentLocale, languageOptions, localeSwitch, setupI18n, t } from "./i18n.js";
import { LevelMonitor } from "./levels.js";
import { devicesReady, getLocalMedia } from "./media.js";
import { Words } from "./translated.js";

const deliberationId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const api = `/api/lobby/${encodeURIComponent(deliberationId)}`;
const credentialKey = `moot:credential:${deliberationId}`;
const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);

const state = { info: null, config: { test_mode: false }, media: null, pollTimer: null, failures: 0 };
// The words this script wrote on the page, written again in another interface language (see translated.js).
const words = new Words();

const levels = new LevelMonitor({
  onLevel: (_key, rms) => { $("mic-meter").style.width = `${Math.min(100, Math.sqrt(rms) * 220)}%`; },
});

// message: a function giving the words (calling t).
function showError(message) {
  words.set($("lobby-error"), message);
  $("lobby-error").hidden = false;
}

function paragraphs(container, text) {
  container.replaceChildren();
  for (const block of text.split(/\n\s*\n/)) {
    if (!block.trim()) continue;
    const p = document.createElement("p");
    p.textContent = block.trim();
    container.append(p);
  }
}

async function init() {
  await setupI18n();
  localeSwitch($("locale-switch"));
  words.set(document.querySelector(".meter"), () => t("join.microphone_level"), "title");
  try {
    const [config, info] = await Promise.all([fetch("/api/config"),
      fetch(`${api}?lang=${encodeURIComponent(currentLocale())}`)]);
    if (config.ok) state.config = await config.json();
    if (!info.ok) {
      words.set($("title"), "Moot");
      const { status } = info;
      showError(status === 404 ? () => t("lobby.not_open") : () => t("lobby.load_failed", { status }));
      return;
    }
    state.info = await info.json();
  } catch {
    words.set($("title"), "Moot");
    showError(() => t("ui.unreachable"));
    return;
  }
  const { info } = state;
  words.set($("title"), info.title);
  words.set(document.querySelector("title"), `${info.title} · Moot`);
  $("question").textContent = info.question;
  paragraphs($("background"), info.background || "");
  $("about").hidden = false;
  if (localStorage.getItem(credentialKey)) {
    startWaiting(localStorage.getItem(`${credentialKey}:name`) || "");
    return;
  }
  renderForm(info);
  await checkDevices();
}

// The deliberation's languages, named in the interface's language and their own; preselected: the one chosen
// before in this browser, else the interface's, else the first. The room page starts with the same choice.
function fillLanguages(info) {
  const offered = info.languages && info.languages.length ? info.languages : ["en"];
  const select = $("language");
  const chosen = select.value;
  select.replaceChildren(...languageOptions(offered));
  const saved = localStorage.getItem("moot:language");
  select.value = [chosen, saved, currentLocale()].find((code) => code && offered.includes(code)) || offered[0];
}

function showNotice(paragraphs) {
  $("notice").replaceChildren(...paragraphs.map((text) => {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }));
}

function renderForm(info) {
  fillLanguages(info);
  showNotice(info.notice.paragraphs);
  const questions = $("questions");
  questions.replaceChildren();
  for (const question of info.signup_questions) {
    const fieldset = document.createElement("fieldset");
    fieldset.className = "signup-question";
    const legend = document.createElement("legend");
    legend.textContent = question.text;
    fieldset.append(legend);
    question.choices.forEach((choice, i) => {
      const label = document.createElement("label");
      label.className = "checkbox";
      const input = document.createElement("input");
      input.type = "radio";
      input.name = `q-${question.id}`;
      input.value = choice;
      input.id = `q-${question.id}-${i}`;
      input.dataset.question = question.id;
      input.addEventListener("change", updateButton);
      label.append(input, ` ${choice}`);
      fieldset.append(label);
    });
    questions.append(fieldset);
  }
  const saved = localStorage.getItem("moot:name");
  if (saved) $("display-name").value = saved;
  $("arrive-form").hidden = false;
  updateButton();
}

function answers() {
  const chosen = {};
  for (const input of document.querySelectorAll("#questions input:checked")) chosen[input.dataset.question] = input.value;
  return chosen;
}

function updateButton() {
  if (!state.info) return;
  const hasName = $("display-name").value.trim().length > 0;
  const answered = Object.keys(answers()).length === state.info.signup_questions.length;
  const agreed = $("consent").checked;
  const missing = [!hasName && t("lobby.missing_name"), !answered && t("lobby.missing_answers"),
    !agreed && t("lobby.missing_consent")].filter(Boolean);
  $("arrive-button").disabled = missing.length > 0;
  $("arrive-hint").textContent = missing.length ? t("lobby.missing", { missing: missing.join(", ") }) : "";
  $("arrive-hint").hidden = missing.length === 0;
}

async function checkDevices() {
  words.set($("device-status"), () => t("join.checking_devices"));
  if (state.media) for (const track of state.media.stream.getTracks()) track.stop();
  state.media = await getLocalMedia({ testMode: state.config.test_mode });
  const { audio, video, messages } = state.media;
  $("preview").srcObject = video ? new MediaStream([video]) : null;
  $("preview").closest(".preview-box").classList.toggle("no-video", !video);
  levels.watch("preview", audio);
  words.set($("device-status"), () => [devicesReady(audio, video), ...messages.map((message) => message())]
    .filter(Boolean).join(" "));
  $("device-status").classList.toggle("warning", messages.length > 0);
  $("retry-devices").hidden = messages.length === 0;
}

async function arrive() {
  const name = $("display-name").value.trim().replace(/\s+/g, " ");
  $("arrive-error").hidden = true;
  $("arrive-button").disabled = true;
  try {
    const response = await fetch(`${api}/arrive`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name, consent: true, notice_version: state.info.notice.version, answers: answers() }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const { status } = response;
      words.set($("arrive-error"), typeof body.detail === "string" ? body.detail.replace(/^name: /, "")
        : () => t("lobby.join_failed", { status }));
      $("arrive-error").hidden = false;
      updateButton();
      return;
    }
    localStorage.setItem("moot:name", name);
    localStorage.setItem("moot:language", $("language").value);
    localStorage.setItem(credentialKey, body.credential);
    localStorage.setItem(`${credentialKey}:name`, body.name);
    if (state.media) for (const track of state.media.stream.getTracks()) track.stop();
    levels.unwatch("preview");
    if (body.status === "assigned") goToRoom(body);
    else startWaiting(body.name);
  } catch {
    words.set($("arrive-error"), () => t("ui.unreachable"));
    $("arrive-error").hidden = false;
    updateButton();
  }
}

function startWaiting(name) {
  $("arrive-form").hidden = true;
  $("waiting").hidden = false;
  $("waiting-name").textContent = name;
  $("waiting-heading").focus();
  poll();
}

async function poll() {
  clearTimeout(state.pollTimer);
  const credential = localStorage.getItem(credentialKey);
  try {
    const response = await fetch(`${api}/me`, { headers: { "X-Moot-Participant": credential || "" } });
    if (response.status === 401 || response.status === 404) {
      forget();
      showError(() => t("lobby.ended"));
      return;
    }
    if (response.ok) {
      state.failures = 0;
      const place = await response.json();
      $("waiting-name").textContent = place.name;
      if (place.status === "assigned") return goToRoom(place);
      if (place.status === "left") {
        forget();
        showError(() => t("lobby.left"));
        return undefined;
      }
      words.set($("waiting-status"), () => t("lobby.waiting"));
      words.set($("lobby-status"), () => t("lobby.in_lobby"));
    }
  } catch {
    state.failures += 1;
    words.set($("lobby-status"), () => t("ui.reconnecting"));
  }
  state.pollTimer = setTimeout(poll, Math.min(POLL_MS * 2 ** Math.min(state.failures, 3), 15_000));
  return undefined;
}

function goToRoom(place) {
  words.set($("waiting-status"), () => t("lobby.going"));
  location.assign(`/r/${encodeURIComponent(place.room_id)}`);
}

function forget() {
  localStorage.removeItem(credentialKey);
  localStorage.removeItem(`${credentialKey}:name`);
  $("waiting").hidden = true;
  clearTimeout(state.pollTimer);
}

$("display-name").addEventListener("input", updateButton);
$("consent").addEventListener("change", updateButton);
$("retry-devices").addEventListener("click", checkDevices);
$("arrive-form").addEventListener("submit", (event) => {
  event.preventDefault();
  arrive();
});
$("leave-button").addEventListener("click", async () => {
  const credential = localStorage.getItem(credentialKey);
  await fetch(`${api}/leave`, { method: "POST", headers: { "X-Moot-Participant": credential || "" } }).catch(() => {});
  forget();
  words.set($("lobby-status"), "");
  showError(() => t("lobby.left"));
});

// Another interface language: the notice (from the server) and the words scripts wrote, again.
document.addEventListener("moot:locale", async () => {
  words.rewrite();
  if (!state.info) return;
  const response = await fetch(`${api}?lang=${encodeURIComponent(currentLocale())}`).catch(() => null);
  if (response && response.ok) {
    const fresh = await response.json();
    state.info.notice = fresh.notice;
    if (!$("arrive-form").hidden) showNotice(fresh.notice.paragraphs);
  }
  fillLanguages(state.info);
  updateButton();
});

init();
