// Live captions (provisional while someone speaks) and the transcript (final captions, in order).

const MAX_LIVE = 4;

function formatClock(seconds) {
  const date = new Date(seconds * 1000);
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export class CaptionsView {
  constructor({ live, transcript, announcer }) {
    this.live = live;
    this.transcript = transcript;
    this.announcer = announcer;
    this.liveItems = new Map(); // utterance_id -> element
    this.seenFinals = new Set();
    this.follow = true;
    transcript.addEventListener("scroll", () => {
      const nearBottom = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 40;
      this.follow = nearBottom;
    });
  }

  _liveItem(utteranceId, speaker) {
    let item = this.liveItems.get(utteranceId);
    if (!item) {
      item = document.createElement("p");
      item.className = "caption provisional";
      item.dataset.utterance = utteranceId;
      const who = document.createElement("span");
      who.className = "speaker";
      who.textContent = `${speaker}: `;
      const committed = document.createElement("span");
      committed.className = "committed";
      const tentative = document.createElement("span");
      tentative.className = "tentative";
      item.append(who, committed, tentative);
      this.live.append(item);
      this.liveItems.set(utteranceId, item);
      while (this.live.children.length > MAX_LIVE) {
        const oldest = this.live.firstElementChild;
        this.liveItems.delete(oldest.dataset.utterance);
        oldest.remove();
      }
    }
    return item;
  }

  partial(event) {
    if (this.seenFinals.has(event.utterance_id)) return;
    const item = this._liveItem(event.utterance_id, event.speaker_name);
    item.querySelector(".committed").textContent = event.committed;
    item.querySelector(".tentative").textContent = (event.committed ? " " : "") + event.tentative;
  }

  final(event) {
    if (this.seenFinals.has(event.utterance_id)) return;
    this.seenFinals.add(event.utterance_id);
    const item = this._liveItem(event.utterance_id, event.speaker_name);
    item.className = "caption final";
    item.querySelector(".committed").textContent = event.text;
    item.querySelector(".tentative").textContent = "";
    this.appendLine(event);
    this.announcer.textContent = `${event.speaker_name}: ${event.text}`;
  }

  appendLine(caption) {
    const line = document.createElement("li");
    line.dataset.utterance = caption.utterance_id;
    const time = document.createElement("time");
    time.dateTime = new Date(caption.start * 1000).toISOString();
    time.textContent = formatClock(caption.start);
    const who = document.createElement("strong");
    who.textContent = caption.speaker_name;
    const text = document.createElement("span");
    text.textContent = caption.text;
    line.append(time, " ", who, " ", text);
    this.transcript.append(line);
    if (this.follow) this.transcript.scrollTop = this.transcript.scrollHeight;
  }

  load(captions) {
    for (const caption of captions) {
      if (this.seenFinals.has(caption.utterance_id)) continue;
      this.seenFinals.add(caption.utterance_id);
      this.appendLine(caption);
    }
  }
}
