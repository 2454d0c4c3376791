// Who is speaking: role badges for the AI facilitator and moderators, plain text for participants.
//
// A role badge is an element (a filled pill with a drawn icon and a word) chosen from an event's structured fields
// (its type, `ai_generated`), never from a name. A participant's name is only ever text in a <bdi class="person-name">
// (isolated, so a right-to-left name cannot reorder what is around it), so nothing a participant types can produce a
// badge; the server also refuses names that read as the facilitator or a moderator (server/names.py). The badge's word
// is in the interface's language, and changes with it.

import { t } from "./i18n.js";

const SVG = "http://www.w3.org/2000/svg";

const ROLES = {
  ai: {
    className: "ai-badge",
    label: () => t("badges.ai"),
    icon: "M8 .5l1.9 5.6L15.5 8l-5.6 1.9L8 15.5l-1.9-5.6L.5 8l5.6-1.9z", // a four-pointed spark
  },
  moderator: {
    className: "moderator-badge",
    label: () => t("badges.moderator"),
    icon: "M8 .8l6 2.3v4.4c0 3.6-2.5 6.5-6 7.7-3.5-1.2-6-4.1-6-7.7V3.1z", // a shield
  },
};

// role: "ai" or "moderator"; title: an optional tooltip saying more (e.g. which model wrote the message).
export function roleBadge(role, title = "") {
  const { className, label, icon } = ROLES[role];
  const badge = document.createElement("span");
  badge.className = `role-badge ${className}`;
  badge.dataset.role = role;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", icon);
  svg.append(path);
  const text = document.createElement("span");
  text.className = "role-badge-word";
  text.textContent = label();
  badge.append(svg, text);
  if (title) badge.title = title;
  return badge;
}

// Another interface language: every badge on the page says its role in it.
document.addEventListener("moot:locale", () => {
  for (const badge of document.querySelectorAll(".role-badge[data-role]")) {
    const role = Object.hasOwn(ROLES, badge.dataset.role) ? ROLES[badge.dataset.role] : null;
    const word = badge.querySelector(".role-badge-word");
    if (role && word) word.textContent = role.label();
  }
});

// A participant's name as plain text. extraClass adds the caller's own class (e.g. "speaker").
export function personName(name, extraClass = "") {
  const element = document.createElement("bdi");
  element.className = extraClass ? `person-name ${extraClass}` : "person-name";
  element.textContent = name;
  return element;
}
