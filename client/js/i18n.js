// The interface's words, from client/locales/<locale>.json: English, French, German, Spanish and Dutch. The locale
// is the reader's choice (kept in this browser), else the first of the browser's languages Moot has, else English.
// Dates, times, language names and plurals go through Intl for that locale.
//
// Static text is marked in the HTML: data-i18n="key" sets an element's text, data-i18n-label="key" its aria-label,
// data-i18n-placeholder="key" its placeholder. Scripts call t("key", {name: value}). A message may be an object of
// plural forms ({"one": "...", "other": "..."}) chosen by Intl.PluralRules for params.count. A key missing from a
// locale falls back to English, and to the key itself when English lacks it too (a test checks none is missing).

export const LOCALES = ["en", "fr", "de", "es", "nl"];
const STORE = "moot:locale";

let locale = "en";
let messages = {};
let english = {};

// "pt-BR" -> "pt": captions, translations and the interface go by the base language (null stays null).
export function baseLanguage(code) {
  return code ? code.split("-")[0].toLowerCase() : null;
}

export function chooseLocale(preferred = localStorage.getItem(STORE), browser = navigator.languages || []) {
  for (const candidate of [preferred, ...browser]) {
    const base = baseLanguage(candidate);
    if (base && LOCALES.includes(base)) return base;
  }
  return "en";
}

async function fetchLocale(code) {
  const response = await fetch(`/static/locales/${code}.json`);
  if (!response.ok) throw new Error(`locale ${code}: ${response.status}`);
  return response.json();
}

// Load the chosen (or given) locale and apply it to the document.
export async function setupI18n(code = chooseLocale()) {
  english = await fetchLocale("en").catch(() => ({}));
  messages = code === "en" ? english : await fetchLocale(code).catch(() => english);
  locale = messages === english ? "en" : code;
  document.documentElement.lang = locale;
  applyI18n(document);
  return locale;
}

export function currentLocale() {
  return locale;
}

export async function switchLocale(code) {
  localStorage.setItem(STORE, code);
  await setupI18n(code);
  document.dispatchEvent(new CustomEvent("moot:locale", { detail: { locale } }));
}

export function t(key, params = {}) {
  let message = messages[key] ?? english[key] ?? key;
  if (typeof message === "object") {
    const form = new Intl.PluralRules(locale).select(Number(params.count ?? 0));
    message = message[form] ?? message.other;
  }
  return String(message).replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

// Marked elements get the locale's words; where a locale file could not be loaded, the page's own (English) text
// stays rather than a key.
export function applyI18n(root) {
  const known = (key) => key in messages || key in english;
  for (const element of root.querySelectorAll("[data-i18n]")) {
    if (known(element.dataset.i18n)) element.textContent = t(element.dataset.i18n);
  }
  for (const element of root.querySelectorAll("[data-i18n-label]")) {
    if (known(element.dataset.i18nLabel)) element.setAttribute("aria-label", t(element.dataset.i18nLabel));
  }
  for (const element of root.querySelectorAll("[data-i18n-placeholder]")) {
    if (known(element.dataset.i18nPlaceholder)) element.placeholder = t(element.dataset.i18nPlaceholder);
  }
}

export function formatTime(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function formatDateTime(seconds) {
  return new Date(seconds * 1000).toLocaleString(locale, { dateStyle: "medium", timeStyle: "short" });
}

// A language's name in the interface's locale ("fr" -> "français" in French, "French" in English).
export function languageName(code) {
  try {
    return new Intl.DisplayNames([locale], { type: "language" }).of(code) || code;
  } catch {
    return code;
  }
}

// <option>s for the languages one may speak and read: each named in the interface's language and in its own
// ("German (Deutsch)"), the value its code.
export function languageOptions(codes) {
  return codes.map((code) => {
    const option = document.createElement("option");
    option.value = code;
    const own = new Intl.DisplayNames([code], { type: "language" }).of(code);
    const here = languageName(code);
    option.textContent = own && own !== here ? `${here} (${own})` : here;
    return option;
  });
}

// A <select> of the interface locales, each in its own language, that switches the page.
export function localeSwitch(select) {
  select.replaceChildren(...LOCALES.map((code) => {
    const option = document.createElement("option");
    option.value = code;
    option.lang = code;
    option.textContent = new Intl.DisplayNames([code], { type: "language" }).of(code);
    return option;
  }));
  select.value = locale;
  select.addEventListener("change", () => switchLocale(select.value));
}
