// The video grid: one tile per participant with a name label, mute badges and the active-speaker highlight.
// Video plays muted in a <video>; remote audio plays in its own <audio>, so a paused or hidden video never silences
// anyone. Our own tile is muted (never play our microphone back) and mirrored like a looking glass. Its words are in
// the interface's language: render again after a switch.

import { personName } from "./badges.js";
import { t } from "./i18n.js";

function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  return words.slice(0, 2).map((w) => w[0].toUpperCase()).join("") || "?";
}

function sameTracks(element, track) {
  const current = element.srcObject ? element.srcObject.getTracks() : [];
  return track ? current.length === 1 && current[0] === track : current.length === 0;
}

function play(element, track) {
  if (sameTracks(element, track)) return;
  element.srcObject = track ? new MediaStream([track]) : null;
  // play() rejects when autoplay is refused; the Join click normally counts as the needed user gesture.
  if (track) element.play().catch(() => {});
}

export class VideoGrid {
  constructor(list) {
    this.list = list;
    this.speaking = new Map(); // participant id -> Set of sources ("voice", "level") saying they speak
  }

  tile(id) {
    return this.list.querySelector(`[data-participant="${CSS.escape(id)}"]`);
  }

  ensureTile(id, isSelf) {
    let tile = this.tile(id);
    if (tile) return tile;
    tile = document.createElement("li");
    tile.className = "tile";
    tile.dataset.participant = id;
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.muted = true;
    if (isSelf) video.classList.add("mirror");
    const avatar = document.createElement("span");
    avatar.className = "avatar";
    avatar.setAttribute("aria-hidden", "true");
    const label = document.createElement("span");
    label.className = "name";
    const badge = document.createElement("span");
    badge.className = "muted-badge";
    tile.append(video, avatar, label, badge);
    if (!isSelf) {
      const audio = document.createElement("audio");
      audio.autoplay = true;
      tile.append(audio);
    }
    this.list.append(tile);
    return tile;
  }

  // people: [{id, name, isSelf, audio, video (booleans: sending or muted), tracks: {audio?, video?}}], self first.
  render(people) {
    const present = new Set();
    for (const person of people) {
      present.add(person.id);
      const tile = this.ensureTile(person.id, person.isSelf);
      tile.querySelector(".name").replaceChildren(personName(person.name), person.isSelf ? ` ${t("tiles.you")}` : "");
      tile.querySelector(".avatar").textContent = initials(person.name);
      play(tile.querySelector("video"), person.tracks.video || null);
      const audio = tile.querySelector("audio");
      if (audio) play(audio, person.tracks.audio || null);
      tile.classList.toggle("no-video", !person.tracks.video || person.video === false);
      const off = [];
      if (person.audio === false) off.push(t("tiles.microphone_off"));
      if (person.video === false) off.push(t("tiles.camera_off"));
      tile.querySelector(".muted-badge").textContent = off.join(", ");
      this.applySpeaking(person.id);
    }
    for (const tile of [...this.list.children]) {
      if (!present.has(tile.dataset.participant)) {
        this.speaking.delete(tile.dataset.participant);
        tile.remove();
      }
    }
    this.list.dataset.count = String(this.list.children.length);
  }

  setSpeaking(id, source, speaking) {
    const sources = this.speaking.get(id) || new Set();
    if (speaking) sources.add(source);
    else sources.delete(source);
    this.speaking.set(id, sources);
    this.applySpeaking(id);
  }

  applySpeaking(id) {
    const tile = this.tile(id);
    if (tile) tile.classList.toggle("speaking", (this.speaking.get(id) || new Set()).size > 0);
  }
}
