// Statements the group votes on: list with tallies and agree / disagree / pass buttons. A statement can be edited (by
// its author; anyone may edit the AI's) only until its first vote: after that its "Edit" button gives way to "Propose
// a revised version", which copies the text into the form to submit as a new statement. Every vote names the statement
// revision the voter read, so the server refuses a vote on a text that changed meanwhile; its refusals arrive as
// `error` messages, which room.js shows. The AI facilitator's statements are marked by `ai_generated` (a role badge),
// never by their author name. The view's words are in the interface's language: relabel() writes them again after a
// switch.

import { personName, roleBadge } from "./badges.js";
import { Words } from "./translated.js";

// "Proposed by {name}" around the name's own element (a participant's name is never part of a message's text).
function aroundName(message, name) {
  const [before, after = ""] = message.split("{name}");
  return [before, name, after].filter((part) => part !== "");
}

export class StatementsView {
  constructor({ list, form, input, send, participantId, text = (key) => key }) {
    Object.assign(this, { list, form, input, send, participantId, text });
    this.items = new Map(); // statement_id -> {li, meta, votes, statement, editButton, reviseButton}
    this.myVotes = new Map();
    this.words = new Words();
    this.choices = [["agree", () => text("statements.agree")], ["disagree", () => text("statements.disagree")],
      ["pass", () => text("statements.pass")]];
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

  // Another interface language: every statement's words in it.
  relabel() {
    this.words.rewrite();
    for (const item of this.items.values()) this.writeMeta(item);
  }

  writeMeta({ statement, meta }) {
    if (statement.shared) meta.replaceChildren(this.text("statements.shared"));
    else if (statement.ai_generated) meta.replaceChildren(roleBadge("ai"), this.text("statements.by_ai"));
    else {
      const words = this.text("statements.by", { name: "{name}" });
      meta.replaceChildren(...aroundName(words, personName(statement.author_name)));
    }
  }

  // The vote buttons' group is named by the statement's (current) text.
  nameVotes(item) {
    this.words.set(item.votes, () => this.text("statements.vote_on", { text: item.statement.text }), "aria-label");
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
    const votes = document.createElement("div");
    votes.className = "vote-row";
    votes.setAttribute("role", "group");
    const item = { li, meta, votes, statement: { ...statement, revision: statement.revision ?? 0 }, editButton: null,
      reviseButton: null };
    this.writeMeta(item);
    this.nameVotes(item);
    for (const [choice, label] of this.choices) {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.choice = choice;
      this.words.set(button, label);
      button.setAttribute("aria-pressed", "false");
      button.addEventListener("click", () => this.vote(statement.statement_id, choice));
      votes.append(button);
    }
    const tally = document.createElement("span");
    tally.className = "tally statement-meta";
    tally.setAttribute("aria-live", "polite");
    votes.append(tally);
    if (!statement.shared && (statement.ai_generated || statement.author_id === this.participantId)) {
      item.editButton = document.createElement("button");
      item.editButton.type = "button";
      item.editButton.className = "edit-statement";
      this.words.set(item.editButton, () => this.text("statements.edit"));
      item.editButton.addEventListener("click", () => this.edit(statement.statement_id));
      item.reviseButton = document.createElement("button");
      item.reviseButton.type = "button";
      item.reviseButton.className = "revise-statement";
      this.words.set(item.reviseButton, () => this.text("statements.revise"));
      this.words.set(item.reviseButton, () => this.text("statements.revise_hint"), "title");
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
    const next = window.prompt(this.text("statements.edit_prompt"), current);
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
    this.nameVotes(item);
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
    const { agree, disagree, passed } = event;
    this.words.set(item.li.querySelector(".tally"), () => this.text("statements.tally", { agree, disagree, passed }));
    if (item.editButton) {
      const voted = event.agree + event.disagree + event.passed > 0;
      const hadFocus = document.activeElement === item.editButton;
      item.editButton.hidden = voted;
      item.reviseButton.hidden = !voted;
      if (voted && hadFocus) item.reviseButton.focus(); // keyboard users keep their place
    }
  }
}
