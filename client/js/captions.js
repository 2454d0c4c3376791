// Live captions (provisional while someone speaks) and the transcript (final captions, in speaking order).
//
// A partial caption has `committed` words, which never change for that utterance, and `tentative` words, which may;
// the two are styled differently and the whole line is marked provisional until its one final caption arrives.
// Screen readers hear finals only (through a polite live region), never the stream of partial updates.
// Speakers' names are plain text (badges.js personName).

import { personName } from "./badges.js";

const MAX_LIVE = 4; // caption lines kept in the live pane
const FOLLOW_SLACK_PX = 40; // "at the bottom" tolerance for auto-scrolling the transcript

function formatClock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function span(className, text = "") {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  return element;
}

export class CaptionsView {
  // live: the live captions pane; transcript: an <ol>; announcer: a polite live region; jump: a button shown when new
  // lines arrive while the reader has scrolled up (optional).
  constructor({ live, transcript, announcer, jump = null }) {
    Object.assign(this, { live, transcript, announcer, jump });
    this.liveItems = new Map(); // utterance_id -> element
    this.seenFinals = new Set();
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
    const status = span("visually-hidden status", "(still speaking) ");
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
    const item = this.liveItem(event.utterance_id, event.speaker_name);
    item.querySelector(".committed").textContent = event.committed;
    item.querySelector(".tentative").textContent = (event.committed && event.tentative ? " " : "") + event.tentative;
  }

  final(event) {
    if (this.seenFinals.has(event.utterance_id)) return;
    this.seenFinals.add(event.utterance_id);
    const item = this.liveItem(event.utterance_id, event.speaker_name);
    item.className = "caption final";
    item.querySelector(".status").remove();
    item.querySelector(".committed").textContent = event.text;
    item.querySelector(".tentative").textContent = "";
    this.appendLine(event);
    this.announcer.textContent = `${event.speaker_name}: ${event.text}`;
  }

  // Transcript lines stay in speaking order: history loaded from the API can arrive after the first live finals.
  appendLine(caption) {
    const line = document.createElement("li");
    line.dataset.utterance = caption.utterance_id;
    line.dataset.start = String(caption.start);
    const time = document.createElement("time");
    time.dateTime = new Date(caption.start * 1000).toISOString();
    time.textContent = formatClock(caption.start);
    line.append(time, " ", personName(caption.speaker_name, "speaker"), " ", span("text", caption.text));
    const later = [...this.transcript.children].find((li) => Number(li.dataset.start) > caption.start);
    this.transcript.insertBefore(line, later || null);
    if (this.follow) this.scrollToEnd();
    else if (this.jump) this.jump.hidden = false;
  }

  scrollToEnd() {
    this.transcript.scrollTop = this.transcript.scrollHeight;
  }

  // Finals already stored when we joined (GET /api/rooms/{id}/transcript).
  load(captions) {
    for (const caption of captions) {
      if (this.seenFinals.has(caption.utterance_id)) continue;
      this.seenFinals.add(caption.utterance_id);
      this.appendLine(caption);
    }
  }
}
