// The AI facilitator panel: current stage with time left, the facilitator's messages (always labelled as AI), and
// the speaking-time balance of the group. Every message here carries a role badge by its event type (an AI message,
// or a moderator's pause/resume), never by a name. A message written in another language than the reader's is shown in
// the reader's when its translation arrives (ai.translated): the facilitator's own words in that language, or a machine
// translation labelled so, with the original one click away. The panel's own words are in the interface's language:
// relabel() writes them again after a switch.

import { personName, roleBadge } from "./badges.js";
import { baseLanguage } from "./i18n.js";
import { markTranslation, Words } from "./translated.js";

function minutesSeconds(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

export class FacilitatorView {
  constructor({ panel, stageName, stageTime, messages, balance, send, reading = null, text = (key) => key }) {
    Object.assign(this, { panel, stageName, stageTime, messages, balance, send, text });
    this.reading = baseLanguage(reading);
    this.shown = new Map(); // message_id -> {event, text, pointTexts}
    this.translations = new Map(); // message_id -> Map(language -> ai.translated event)
    this.showOriginal = new Set();
    this.endsAt = null;
    this.seen = new Set();
    this.clockOffset = 0; // server time minus local time, from event timestamps
    this.timer = setInterval(() => this.renderTime(), 1000);
    this.words = new Words();
    this.lastBalance = null;
    this.lastStage = null;
  }

  // Another interface language: the panel's words in it.
  relabel() {
    this.words.rewrite();
    this.renderTime();
    if (this.lastBalance) this.speaking(this.lastBalance);
  }

  // Who wrote an AI message, for its badge's tooltip.
  origin(generatedBy) {
    if (generatedBy === "rules") return this.text("facilitator.by_rules");
    if (generatedBy.startsWith("quotes:")) return this.text("facilitator.by_quotes");
    return this.text("facilitator.by_model", { model: generatedBy.replace(/^llm:/, "") });
  }

  _sync(event) {
    if (typeof event.ts === "number") this.clockOffset = event.ts - Date.now() / 1000;
  }

  stage(event) {
    this._sync(event);
    this.paused = Boolean(event.paused);
    this.panel.classList.toggle("paused", this.paused);
    this.panel.hidden = false;
    this.lastStage = event;
    this.renderStageName();
    this.endsAt = event.ends_at;
    this.renderTime();
  }

  // The stage's title in the reader's language where the template has it (else as the room's facilitator says it).
  renderStageName() {
    const event = this.lastStage;
    if (!event) return;
    const title = (event.titles && event.titles[this.reading]) || event.title;
    this.stageName.textContent = title;
    this.stageName.lang = title === event.title ? "" : this.reading;
  }

  renderTime() {
    if (this.endsAt === null) return;
    if (this.paused) {
      this.stageTime.textContent = this.text("facilitator.paused");
      return;
    }
    const left = minutesSeconds(this.endsAt - (Date.now() / 1000 + this.clockOffset));
    this.stageTime.textContent = this.text("facilitator.time_left", { time: left });
  }

  load(messages) {
    for (const m of messages) this.message(m, false);
  }

  message(event, live = true) {
    if (this.seen.has(event.message_id)) return;
    this.seen.add(event.message_id);
    if (live) this._sync(event);
    this.panel.hidden = false;
    const item = document.createElement("li");
    item.dataset.kind = event.kind;
    const badge = roleBadge("ai");
    this.words.set(badge, () => this.origin(event.generated_by), "title");
    const label = document.createElement("span");
    label.className = "visually-hidden";
    this.words.set(label, () => `${this.text("facilitator.says")} `);
    const text = document.createElement("span");
    text.className = "ai-text";
    item.append(badge, label, text);
    const pointTexts = [];
    if (event.points && event.points.length) {
      this.words.set(text, () => this.text("facilitator.summary"));
      const points = document.createElement("ul");
      points.className = "summary-points";
      for (const point of event.points) {
        const li = document.createElement("li");
        const strong = document.createElement("strong");
        strong.textContent = `${point.label}: `;
        const pointText = document.createElement("span");
        pointText.textContent = point.text;
        pointTexts.push(pointText);
        li.append(strong, pointText, " ");
        const flag = document.createElement("button");
        flag.type = "button";
        flag.className = "flag";
        this.words.set(flag, () => this.text("facilitator.flag"));
        flag.addEventListener("click", () => {
          this.send({ type: "summary.flag", message_id: event.message_id, point: event.points.indexOf(point) });
          this.words.set(flag, () => this.text("facilitator.flagged"));
          flag.disabled = true;
        });
        point.sources.forEach((utteranceId, i) => {
          const link = document.createElement("a");
          link.href = `#utterance-${utteranceId}`;
          link.textContent = `[${i + 1}]`;
          this.words.set(link, () => this.text("facilitator.show_source"), "title");
          link.addEventListener("click", (e) => {
            e.preventDefault();
            this.showSource(utteranceId);
          });
          li.append(link, " ");
        });
        li.append(flag);
        points.append(li);
      }
      item.append(points);
    } else {
      text.textContent = event.text;
    }
    if (event.review === "approved" || event.review === "edited") {
      const review = document.createElement("span");
      review.className = "ai-review";
      this.words.set(review, () => (event.review === "edited" ? this.text("facilitator.edited")
        : this.text("facilitator.approved")));
      item.append(" ", review);
    }
    this.messages.append(item);
    this.shown.set(event.message_id, { event, item, text, pointTexts });
    this.render(event.message_id);
    this.messages.scrollTop = this.messages.scrollHeight;
  }

  translated(event) {
    let known = this.translations.get(event.message_id);
    if (!known) this.translations.set(event.message_id, known = new Map());
    known.set(baseLanguage(event.language), event);
    if (baseLanguage(event.language) === this.reading) this.render(event.message_id);
  }

  setReading(language) {
    this.reading = baseLanguage(language);
    this.showOriginal.clear();
    this.renderStageName();
    for (const messageId of this.shown.keys()) this.render(messageId);
  }

  // The message in the reader's language when a translation is here (unless they asked for the original).
  render(messageId) {
    const shown = this.shown.get(messageId);
    if (!shown) return;
    const { event, item, text, pointTexts } = shown;
    const written = baseLanguage(event.language);
    const translation = written !== this.reading ? this.translations.get(messageId)?.get(this.reading) : null;
    const useTranslation = Boolean(translation) && !this.showOriginal.has(messageId);
    const language = useTranslation ? this.reading : written;
    if (!event.points || !event.points.length) text.textContent = useTranslation ? translation.text : event.text;
    pointTexts.forEach((element, i) => {
      element.textContent = useTranslation && translation.points[i] ? translation.points[i] : event.points[i].text;
    });
    for (const element of [text, ...pointTexts]) {
      if (language) element.lang = language; else element.removeAttribute("lang");
    }
    if (!translation) return;
    markTranslation(item, (note, toggle) => text.after(" ", note, " ", toggle), {
      translated: useTranslation, machine: translation.machine, text: this.text, id: messageId,
      showOriginal: this.showOriginal, render: () => this.render(messageId),
    });
  }

  // Scroll the transcript to the line a summary point draws on, and highlight it.
  showSource(utteranceId) {
    const line = document.querySelector(`#transcript li[data-utterance="${CSS.escape(utteranceId)}"]`);
    if (!line) return;
    line.scrollIntoView({ block: "center" });
    line.classList.add("highlight");
    line.tabIndex = -1;
    line.focus();
    setTimeout(() => line.classList.remove("highlight"), 3000);
  }

  // A moderator paused or resumed the facilitator: say so where its messages appear.
  control(event) {
    this.panel.hidden = false;
    this.paused = event.action === "pause";
    this.panel.classList.toggle("paused", this.paused);
    const item = document.createElement("li");
    item.className = "control";
    const text = document.createElement("span");
    const paused = this.paused;
    this.words.set(text, () => (paused ? this.text("facilitator.paused_by_moderator")
      : this.text("facilitator.resumed_by_moderator")));
    item.append(roleBadge("moderator"), text);
    this.messages.append(item);
    this.messages.scrollTop = this.messages.scrollHeight;
  }

  // A moderator's message to this room (or to every room: broadcast), shown with the moderator badge.
  moderatorMessage(event) {
    this.panel.hidden = false;
    const item = document.createElement("li");
    item.className = "control moderator-message";
    const text = document.createElement("span");
    text.textContent = event.text;
    item.append(roleBadge("moderator"), text);
    if (event.broadcast) {
      const scope = document.createElement("span");
      scope.className = "hint";
      this.words.set(scope, () => ` ${this.text("facilitator.to_every_room")}`);
      item.append(scope);
    }
    this.messages.append(item);
    this.messages.scrollTop = this.messages.scrollHeight;
  }

  speaking(event) {
    this.lastBalance = event;
    const total = event.speakers.reduce((sum, s) => sum + s.seconds, 0) || 1;
    this.balance.replaceChildren();
    for (const s of [...event.speakers].sort((a, b) => b.seconds - a.seconds)) {
      const row = document.createElement("div");
      row.className = "balance-row";
      const name = personName(s.name);
      const bar = document.createElement("span");
      bar.className = "balance-bar";
      bar.setAttribute("role", "img");
      const share = Math.round((100 * s.seconds) / total);
      bar.setAttribute("aria-label", this.text("facilitator.speaking_share", { name: s.name, share }));
      const fill = document.createElement("span");
      fill.style.width = `${share}%`;
      bar.append(fill);
      const time = document.createElement("span");
      time.textContent = minutesSeconds(s.seconds);
      row.append(name, bar, time);
      this.balance.append(row);
    }
  }
}
