// Statements the group votes on: list with tallies, agree / disagree / pass buttons, own statements editable.
// The AI facilitator's statements are marked by `ai_generated` (a role badge), never by their author name.

import { personName, roleBadge } from "./badges.js";

const CHOICES = [["agree", "Agree"], ["disagree", "Disagree"], ["pass", "Pass"]];

export class StatementsView {
  constructor({ list, form, input, send, participantId }) {
    Object.assign(this, { list, form, input, send, participantId });
    this.items = new Map(); // statement_id -> {li, statement}
    this.myVotes = new Map();
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (text.length < 3) return;
      send({ type: "statement.add", text });
      input.value = "";
    });
  }

  load(statements) {
    for (const s of statements) {
      this.added(s);
      this.tally({ statement_id: s.statement_id, agree: s.tally.agree, disagree: s.tally.disagree, passed: s.tally.pass });
    }
  }

  added(statement) {
    if (this.items.has(statement.statement_id)) return;
    const li = document.createElement("li");
    li.dataset.statement = statement.statement_id;
    const text = document.createElement("p");
    text.className = "statement-text";
    text.textContent = statement.text;
    const meta = document.createElement("span");
    meta.className = "statement-meta";
    if (statement.ai_generated) meta.append(roleBadge("ai"), "Proposed by the AI facilitator");
    else meta.append("Proposed by ", personName(statement.author_name));
    const votes = document.createElement("div");
    votes.className = "vote-row";
    votes.setAttribute("role", "group");
    votes.setAttribute("aria-label", `Your vote on: ${statement.text}`);
    for (const [choice, label] of CHOICES) {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.choice = choice;
      button.textContent = label;
      button.setAttribute("aria-pressed", "false");
      button.addEventListener("click", () => this.vote(statement.statement_id, choice));
      votes.append(button);
    }
    const tally = document.createElement("span");
    tally.className = "tally statement-meta";
    tally.setAttribute("aria-live", "polite");
    votes.append(tally);
    if (statement.ai_generated || statement.author_id === this.participantId) {
      const editButton = document.createElement("button");
      editButton.type = "button";
      editButton.textContent = "Edit";
      editButton.addEventListener("click", () => {
        const current = this.items.get(statement.statement_id).statement.text;
        const next = window.prompt("Edit the statement", current);
        if (next && next.trim().length >= 3 && next.trim() !== current) {
          this.send({ type: "statement.edit", statement_id: statement.statement_id, text: next.trim() });
        }
      });
      votes.append(editButton);
    }
    li.append(text, meta, votes);
    this.list.append(li);
    this.items.set(statement.statement_id, { li, statement: { ...statement } });
  }

  edited(event) {
    const item = this.items.get(event.statement_id);
    if (!item) return;
    item.statement.text = event.text;
    item.li.querySelector(".statement-text").textContent = event.text;
  }

  vote(statementId, choice) {
    this.myVotes.set(statementId, choice);
    this.send({ type: "vote", statement_id: statementId, choice });
    const item = this.items.get(statementId);
    for (const button of item.li.querySelectorAll("button[data-choice]")) {
      button.setAttribute("aria-pressed", String(button.dataset.choice === choice));
    }
  }

  tally(event) {
    const item = this.items.get(event.statement_id);
    if (!item) return;
    item.li.querySelector(".tally").textContent =
      `${event.agree} agree · ${event.disagree} disagree · ${event.passed} pass`;
  }
}
