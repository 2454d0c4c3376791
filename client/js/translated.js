// Beside a text shown in translation: the "machine translation" label and the button that switches between the
// translation and the original. Made once per element (found again by class), updated on every render. The button
// puts `id` in (or takes it out of) `showOriginal`, the reader's set of lines shown as said, and calls `render`.
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
