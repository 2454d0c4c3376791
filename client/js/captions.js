// Live captions (provisional while someone speaks) and the transcript (final captions, in speaking order).
//
// Each line shows in the reader's language: a machine translation (caption.translated, made once per language for
// the whole room) replaces the original as soon as it arrives, labelled "machine translation", with the original one
// click away (and back). Every text carries its `lang` attribute.
// A partial caption has `committed` words, which never change for that utterance, and `tentative` words, which may;
// the two are styled differently and the whole line is marked provisional until its one final caption arrives.
// Where the room translates provisional captions too (MOOT_MT_PARTIALS), a reader of another language sees the latest
// translation of the words so far instead (it stays until the final's translation replaces it).
// Screen readers hear finals only (through a polite live region), never the stream of partial updates.
// Speakers' names are plain text (badges.js personName).

import { personName } from "./badges.js";
import { baseLanguage, formatTime } from "./i18n.js";
import { markTranslation, unmarkTranslation } from "./translated.js";

const MAX_LIVE = 4; // caption lines kept in the live pane
const FOLLOW_SLACK_PX = 40; // "at the bottom" tolerance for auto-scrolling the transcript

function span(className, text = "") {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  return element;
}

export class CaptionsView {
  // live: the live captions pane; transcript: an <ol>; announcer: a polite live region; jump: a button shown when new
  // lines arrive while the reader has scrolled up (optional); reading: the reader's language (null: as spoken);
  // text: the interface's words (t(key, params) from i18n.js).
  constructor({ live, transcript, announcer, jump = null, reading = null, text = (key) => key }) {
    Object.assign(this, { live, transcript, announcer, jump, text });
    this.reading = baseLanguage(reading);
    this.liveItems = new Map(); // utterance_id -> element
    this.seenFinals = new Set();
    this.originals = new Map(); // utterance_id -> {text, language}
    this.translations = new Map(); // utterance_id -> Map(language -> {text, backend})
    this.partials = new Map(); // utterance_id -> the latest caption.partial (until its final)
    this.partialTranslations = new Map(); // utterance_id -> Map(language -> text), until its final
    this.showOriginal = new Set(); // utterance ids the reader switched back to the original
    this.follow = true; // auto-scroll unless the reader scrolled up
    transcript.addEventListener("scroll", () => {
      this.follow = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < FOLLOW_SLACK_PX;
      if (this.follow && this.jump) this.jump.hidden = true;
    });
    if (jump) {
      jump.addEventListener("click", () => {
        this.follow = true;
        this.scrollToEnd();
        jump.hidden = true;
        transcript.focus();
      });
    }
  }

  liveItem(utteranceId, speaker) {
    let item = this.liveItems.get(utteranceId);
    if (item) return item;
    item = document.createElement("p");
    item.className = "caption provisional";
    item.dataset.utterance = utteranceId;
    const status = span("visually-hidden status", `${this.text("captions.still_speaking")} `);
    const who = span("speaker");
    who.append(personName(speaker), ": ");
    item.append(who, status, span("committed"), span("tentative"));
    this.live.append(item);
    this.liveItems.set(utteranceId, item);
    while (this.live.children.length > MAX_LIVE) {
      const oldest = this.live.firstElementChild;
      this.liveItems.delete(oldest.dataset.utterance);
      oldest.remove();
    }
    return item;
  }

  partial(event) {
    if (this.seenFinals.has(event.utterance_id)) return;
    this.liveItem(event.utterance_id, event.speaker_name);
    this.partials.set(event.utterance_id, event);
    this.renderPartial(event.utterance_id);
  }

  // A provisional line: the latest translation of it into the reader's language if there is one, else as spoken.
  renderPartial(utteranceId) {
    const item = this.liveItems.get(utteranceId);
    const event = this.partials.get(utteranceId);
    if (!item || !event || this.seenFinals.has(utteranceId)) return;
    const committed = item.querySelector(".committed");
    const tentative = item.querySelector(".tentative");
    const translation = this.partialTranslations.get(utteranceId)?.get(this.reading);
    if (translation) {
      committed.textContent = translation;
      committed.lang = this.reading;
      tentative.textContent = "";
      item.dataset.translated = "true";
      return;
    }
    committed.textContent = event.committed;
    if (event.language) committed.lang = event.language; else committed.removeAttribute("lang");
    tentative.textContent = (event.committed && event.tentative ? " " : "") + event.tentative;
    delete item.dataset.translated;
  }

  final(event) {
    if (this.seenFinals.has(event.utterance_id)) return;
    this.seenFinals.add(event.utterance_id);
    this.partials.delete(event.utterance_id);
    this.originals.set(event.utterance_id, { text: event.text, language: event.language });
    const item = this.liveItem(event.utterance_id, event.speaker_name);
    item.className = "caption final";
    item.querySelector(".status").remove();
    item.querySelector(".tentative").textContent = "";
    this.appendLine(event);
    this.render(event.utterance_id);
    const shown = this.shown(event.utterance_id);
    if (!shown.translated) this.announcer.textContent = `${event.speaker_name}: ${event.text}`;
  }

  // A machine translation of a caption (every language's arrives; the reader's is shown). A provisional one shows on
  // its live line until the final's translation comes.
  translated(event) {
    if (event.partial) {
      if (this.seenFinals.has(event.utterance_id)) return;
      let partials = this.partialTranslations.get(event.utterance_id);
      if (!partials) this.partialTranslations.set(event.utterance_id, partials = new Map());
      partials.set(baseLanguage(event.language), event.text);
      if (baseLanguage(event.language) === this.reading) this.renderPartial(event.utterance_id);
      return;
    }
    let known = this.translations.get(event.utterance_id);
    if (!known) this.translations.set(event.utterance_id, known = new Map());
    known.set(baseLanguage(event.language), { text: event.text, backend: event.backend });
    if (baseLanguage(event.language) !== this.reading) return;
    this.render(event.utterance_id);
    const line = this.transcript.querySelector(`li[data-utterance="${CSS.escape(event.utterance_id)}"]`);
    const speaker = line ? line.querySelector(".speaker")?.textContent : null;
    if (speaker) this.announcer.textContent = `${speaker}: ${event.text}`;
  }

  // The reader chose another language: every line shows in it where a translation exists (or arrives).
  setReading(language) {
    this.reading = baseLanguage(language);
    this.showOriginal.clear();
    for (const utteranceId of this.originals.keys()) this.render(utteranceId);
    for (const utteranceId of this.partials.keys()) this.renderPartial(utteranceId);
  }

  // What a line shows now: the translation into the reader's language, unless the reader asked for the original or
  // it was spoken in that language.
  shown(utteranceId) {
    const original = this.originals.get(utteranceId);
    const translation = this.translations.get(utteranceId)?.get(this.reading);
    const spokenInIt = original && baseLanguage(original.language) === this.reading;
    if (translation && !spokenInIt && !this.showOriginal.has(utteranceId)) {
      return { text: translation.text, language: this.reading, translated: true, available: true };
    }
    return { text: original ? original.text : "", language: original?.language || null, translated: false,
      available: Boolean(translation && !spokenInIt) };
  }

  render(utteranceId) {
    const shown = this.shown(utteranceId);
    const item = this.liveItems.get(utteranceId);
    const spokenInIt = baseLanguage(this.originals.get(utteranceId)?.language) === this.reading;
    const provisional = spokenInIt ? null : this.partialTranslations.get(utteranceId)?.get(this.reading);
    if (item && item.classList.contains("final") && !shown.translated && !shown.available && provisional) {
      // (its final's translation is on its way: the live line keeps the provisional one rather than flick back)
      item.querySelector(".committed").textContent = provisional;
      item.querySelector(".committed").lang = this.reading;
    } else if (item && item.classList.contains("final")) {
      this.fill(item, ".committed", utteranceId, shown);
      if (shown.translated) this.partialTranslations.delete(utteranceId);
    }
    const line = this.transcript.querySelector(`li[data-utterance="${CSS.escape(utteranceId)}"]`);
    if (line) this.fill(line, ".text", utteranceId, shown);
  }

  fill(container, selector, utteranceId, shown) {
    const text = container.querySelector(selector);
    text.textContent = shown.text;
    if (shown.language) text.lang = shown.language; else text.removeAttribute("lang");
    if (!shown.available) {
      unmarkTranslation(container);
      return;
    }
    markTranslation(container, (note, toggle) => container.append(" ", note, " ", toggle), {
      translated: shown.translated, machine: true, text: this.text, id: utteranceId, showOriginal: this.showOriginal,
      render: () => this.render(utteranceId),
    });
  }

  // Transcript lines stay in speaking order: history loaded from the API can arrive after the first live finals.
  appendLine(caption) {
    const line = document.createElement("li");
    line.dataset.utterance = caption.utterance_id;
    line.dataset.start = String(caption.start);
    const time = document.createElement("time");
    time.dateTime = new Date(caption.start * 1000).toISOString();
    time.textContent = formatTime(caption.start);
    line.append(time, " ", personName(caption.speaker_name, "speaker"), " ", span("text", caption.text));
    const later = [...this.transcript.children].find((li) => Number(li.dataset.start) > caption.start);
    this.transcript.insertBefore(line, later || null);
    if (this.follow) this.scrollToEnd();
    else if (this.jump) this.jump.hidden = false;
  }

  // Another interface language: the interface's words and the times in it (the "machine translation" labels follow
  // setReading).
  relabel() {
    const stillSpeaking = `${this.text("captions.still_speaking")} `;
    for (const status of this.live.querySelectorAll(".status")) status.textContent = stillSpeaking;
    for (const line of this.transcript.children) {
      const time = line.querySelector("time");
      if (time) time.textContent = formatTime(Number(line.dataset.start));
    }
  }

  scrollToEnd() {
    this.transcript.scrollTop = this.transcript.scrollHeight;
  }

  // Finals already stored when we joined (GET /api/rooms/{id}/transcript), with their translations.
  load(captions) {
    for (const caption of captions) {
      if (this.seenFinals.has(caption.utterance_id)) continue;
      this.seenFinals.add(caption.utterance_id);
      this.originals.set(caption.utterance_id, { text: caption.text, language: caption.language });
      const known = new Map();
      for (const [language, text] of Object.entries(caption.translations || {})) known.set(language, { text });
      this.translations.set(caption.utterance_id, known);
      this.appendLine(caption);
      this.render(caption.utterance_id);
    }
  }
}
