// Beside a text shown in translation: the "machine translation" label and the button that switches between the
// translation and the original. Made once per element (found again by class), updated on every render. The button
// puts `id` in (or takes it out of) `showOriginal`, the reader's set of lines shown as said, and calls `render`.
// Below: Words, the interface words scripts wrote, written again in another interface language.
export function markTranslation(container, insert, { translated, machine, text, id, showOriginal, render }) {
  const onToggle = () => {
    if (showOriginal.has(id)) showOriginal.delete(id);
    else showOriginal.add(id);
    render();
  };
  let note = container.querySelector(".mt-label");
  let toggle = container.querySelector(".mt-toggle");
  if (!note) {
    note = document.createElement("span");
    note.className = "mt-label";
    toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "mt-toggle";
    toggle.addEventListener("click", () => toggle.onToggle());
    insert(note, toggle);
  }
  toggle.onToggle = onToggle;
  note.textContent = translated && machine ? text("captions.machine_translation") : "";
  note.hidden = !(translated && machine);
  toggle.textContent = translated ? text("captions.show_original") : text("captions.show_translation");
}

export function unmarkTranslation(container) {
  container.querySelector(".mt-label")?.remove();
  container.querySelector(".mt-toggle")?.remove();
}

// Words a script wrote in the interface's language, kept so that they can be written again when the reader switches
// language ("moot:locale"): set(element, words) writes words() (a function calling t) now and on every rewrite(); a
// plain string is written once and not rewritten (text from the server, or nothing). attribute: set that attribute
// (e.g. "title", "aria-label") instead of the text. The element's own data-i18n mark gives way, as the script now owns
// its text.
export class Words {
  constructor() {
    this.entries = new Map(); // element -> Map(attribute ("" for the text) -> words)
  }

  set(element, words, attribute = "") {
    const known = this.entries.get(element) || new Map();
    if (typeof words === "function") known.set(attribute, words);
    else known.delete(attribute);
    if (known.size) this.entries.set(element, known);
    else this.entries.delete(element);
    if (attribute === "") delete element.dataset.i18n;
    if (attribute === "aria-label") delete element.dataset.i18nLabel;
    write(element, attribute, typeof words === "function" ? words() : words);
  }

  rewrite() {
    for (const [element, known] of this.entries) {
      for (const [attribute, words] of known) write(element, attribute, words());
    }
  }
}

function write(element, attribute, text) {
  if (attribute === "") element.textContent = text;
  else element.setAttribute(attribute, text);
}
