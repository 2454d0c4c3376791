// Statements the group votes on: list with tallies and agree / disagree / pass buttons. A statement can be edited (by
// its author; anyone may edit the AI's) only until its first vote: after that its "Edit" button gives way to "Propose
// a revised version", which copies the text into the form to submit as a new statement. Every vote names the statement
// revision the voter read, so the server refuses a vote on a text that changed meanwhile; its refusals arrive as
// `error` messages, which room.js shows. The AI facilitator's statements are marked by `ai_generated` (a role badge),
// never by their author name.

import { personName, roleBadge } from "./badges.js";

const CHOICES = [["agree", "Agree"], ["disagree", "Disagree"], ["pass", "Pass"]];

export class StatementsView {
  constructor({ list, form, input, send, participantId }) {
    Object.assign(this, { list, form, input, send, participantId });
    this.items = new Map(); // statement_id -> {li, statement, editButton, reviseButton}
    this.myVotes = new Map();
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (text.length < 3) return;
      send({ type: "statement.add", text });
      input.value = "";
    });
  }

  // Our participant id changes when we rejoin after a lost connection. Statements already listed keep the buttons
  // they were given (the server decides who may edit).
  setParticipantId(participantId) {
    this.participantId = participantId;
  }

  load(statements) {
    for (const s of statements) {
      this.added(s);
      this.tally({ statement_id: s.statement_id, agree: s.tally.agree, disagree: s.tally.disagree, passed: s.tally.pass });
    }
  }

  added(statement) {
    if (this.items.has(statement.statement_id)) {
      this.edited(statement); // the listing may carry a newer revision than the event seen first
      return;
    }
    const li = document.createElement("li");
    li.dataset.statement = statement.statement_id;
    const text = document.createElement("p");
    text.className = "statement-text";
    text.textContent = statement.text;
    const meta = document.createElement("span");
    meta.className = "statement-meta";
    if (statement.shared) meta.append("From another room of this deliberation: vote on it too");
    else if (statement.ai_generated) meta.append(roleBadge("ai"), "Proposed by the AI facilitator");
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
    const item = { li, statement: { ...statement, revision: statement.revision ?? 0 }, editButton: null, reviseButton: null };
    if (!statement.shared && (statement.ai_generated || statement.author_id === this.participantId)) {
      item.editButton = document.createElement("button");
      item.editButton.type = "button";
      item.editButton.className = "edit-statement";
      item.editButton.textContent = "Edit";
      item.editButton.addEventListener("click", () => this.edit(statement.statement_id));
      item.reviseButton = document.createElement("button");
      item.reviseButton.type = "button";
      item.reviseButton.className = "revise-statement";
      item.reviseButton.textContent = "Propose a revised version";
      item.reviseButton.title = "People have voted on this statement, so it can no longer be edited";
      item.reviseButton.hidden = true;
      item.reviseButton.addEventListener("click", () => this.proposeRevision(statement.statement_id));
      votes.append(item.editButton, item.reviseButton);
    }
    li.append(text, meta, votes);
    this.list.append(li);
    this.items.set(statement.statement_id, item);
  }

  edit(statementId) {
    const item = this.items.get(statementId);
    const current = item.statement.text;
    const next = window.prompt("Edit the statement", current);
    const text = next === null ? "" : next.trim();
    if (text.length >= 3 && text !== current) {
      this.send({ type: "statement.edit", statement_id: statementId, text, revision: item.statement.revision });
    }
  }

  // Once people have voted, a change is a new statement: start one from this text.
  proposeRevision(statementId) {
    const item = this.items.get(statementId);
    this.input.value = item.statement.text;
    this.input.focus();
    this.input.setSelectionRange(this.input.value.length, this.input.value.length);
  }

  edited(event) {
    const item = this.items.get(event.statement_id);
    const revision = event.revision ?? 0;
    if (!item || revision <= item.statement.revision) return;
    item.statement.text = event.text;
    item.statement.revision = revision;
    item.li.querySelector(".statement-text").textContent = event.text;
    item.li.querySelector(".vote-row").setAttribute("aria-label", `Your vote on: ${event.text}`);
    // A vote of ours on the earlier text was refused by the server: show no choice until we vote on this one.
    this.myVotes.delete(event.statement_id);
    for (const button of item.li.querySelectorAll("button[data-choice]")) button.setAttribute("aria-pressed", "false");
  }

  vote(statementId, choice) {
    const item = this.items.get(statementId);
    this.myVotes.set(statementId, choice);
    this.send({ type: "vote", statement_id: statementId, choice, revision: item.statement.revision });
    for (const button of item.li.querySelectorAll("button[data-choice]")) {
      button.setAttribute("aria-pressed", String(button.dataset.choice === choice));
    }
  }

  tally(event) {
    const item = this.items.get(event.statement_id);
    if (!item) return;
    item.li.querySelector(".tally").textContent =
      `${event.agree} agree · ${event.disagree} disagree · ${event.passed} pass`;
    if (item.editButton) {
      const voted = event.agree + event.disagree + event.passed > 0;
      const hadFocus = document.activeElement === item.editButton;
      item.editButton.hidden = voted;
      item.reviseButton.hidden = !voted;
      if (voted && hadFocus) item.reviseButton.focus(); // keyboard users keep their place
    }
  }
}
