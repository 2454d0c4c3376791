// The room page: join form (name, consent, device check), then the call: video grid, controls, captions, transcript.
import { CaptionsView } from "./captions.js";
import { FacilitatorView } from "./facilitator.js";
import { getLocalMedia } from "./media.js";
import { Signaling } from "./signaling.js";
import { StatementsView } from "./statements.js";

const roomId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const $ = (id) => document.getElementById(id);

const ERROR_TEXT = {
  unknown_room: "This room does not exist. Check the link you were given.",
  room_full: null, // the server's message names the capacity
  name_taken: null,
  consent_required: null,
  negotiation_timeout: "Your browser did not finish connecting to the room in time.",
};

const state = {
  config: { ice_servers: [], test_mode: false },
  media: { stream: new MediaStream(), audio: null, video: null, messages: [] },
  signaling: null,
  pc: null,
  participantId: null,
  participants: new Map(), // id -> {name, audio, video}
  trackOwners: {}, // mid -> {participant_id, kind}
  captions: null,
  facilitator: null,
  statements: null,
  joined: false,
  leaving: false,
};

// ---------------------------------------------------------------------------------------------------------------------
// Before joining

async function init() {
  try {
    const [configResponse, roomResponse] = await Promise.all([
      fetch("/api/config"),
      fetch(`/api/rooms/${encodeURIComponent(roomId)}`),
    ]);
    state.config = await configResponse.json();
    if (!roomResponse.ok) {
      showRoomError(ERROR_TEXT.unknown_room);
      return;
    }
    const room = await roomResponse.json();
    $("room-title").textContent = room.title;
    document.title = `${room.title} · Moot`;
  } catch {
    showRoomError("The server could not be reached. Check your connection and reload the page.");
    return;
  }
  $("download-vtt").href = `/api/rooms/${encodeURIComponent(roomId)}/transcript.vtt`;
  $("download-json").href = `/api/rooms/${encodeURIComponent(roomId)}/transcript.json`;
  $("rejoin").href = location.pathname;
  const savedName = localStorage.getItem("moot:name");
  if (savedName) $("display-name").value = savedName;
  updateJoinButton();
  await checkDevices();
}

function showRoomError(message) {
  const box = $("room-error");
  box.textContent = message;
  box.hidden = false;
  $("join-form").hidden = true;
}

async function checkDevices() {
  $("device-status").textContent = "Checking your camera and microphone…";
  for (const track of state.media.stream.getTracks()) track.stop();
  state.media = await getLocalMedia({ testMode: state.config.test_mode });
  $("preview").srcObject = state.media.video ? state.media.stream : null;
  const ok = [];
  if (state.media.audio) ok.push("microphone");
  if (state.media.video) ok.push("camera");
  const lines = [];
  if (ok.length) lines.push(`Your ${ok.join(" and ")} ${ok.length > 1 ? "are" : "is"} ready.`);
  lines.push(...state.media.messages);
  if (!ok.length) lines.push("You can join without them: you will see and hear the others.");
  $("device-status").textContent = lines.join(" ");
  $("device-status").classList.toggle("warning", state.media.messages.length > 0);
  $("retry-devices").hidden = state.media.messages.length === 0;
}

function updateJoinButton() {
  const ready = $("display-name").value.trim().length > 0 && $("consent").checked;
  $("join-button").disabled = !ready;
}

$("display-name").addEventListener("input", updateJoinButton);
$("consent").addEventListener("change", updateJoinButton);
$("retry-devices").addEventListener("click", checkDevices);
$("join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  join();
});

// ---------------------------------------------------------------------------------------------------------------------
// Joining and signaling

async function join() {
  const name = $("display-name").value.trim().replace(/\s+/g, " ");
  if (!name || !$("consent").checked) return;
  localStorage.setItem("moot:name", name);
  $("join-error").hidden = true;
  $("join-button").disabled = true;
  setStatus("Connecting…");
  const signaling = new Signaling(roomId);
  state.signaling = signaling;
  signaling.addEventListener("message", (event) => onMessage(event.detail));
  signaling.addEventListener("close", () => onClosed());
  try {
    await signaling.connect();
  } catch {
    joinFailed("The server could not be reached. Check your connection and try again.");
    return;
  }
  signaling.send({ type: "join", name, consent: true, audio: !!state.media.audio, video: !!state.media.video });
}

function joinFailed(message) {
  const box = $("join-error");
  box.textContent = message;
  box.hidden = false;
  $("join-button").disabled = false;
  setStatus("");
}

function setStatus(text) {
  $("connection-status").textContent = text;
}

async function onMessage(message) {
  switch (message.type) {
    case "welcome":
      return onWelcome(message);
    case "offer":
      return onOffer(message);
    case "error":
      return onError(message);
    case "participant.joined":
      state.participants.set(message.participant.participant_id, message.participant);
      return renderTiles();
    case "participant.left":
      state.participants.delete(message.participant_id);
      return renderTiles();
    case "participant.media": {
      const p = state.participants.get(message.participant_id);
      if (p) Object.assign(p, { audio: message.audio, video: message.video });
      return renderTiles();
    }
    case "voice.activity":
      return setSpeaking(message.participant_id, message.speaking);
    case "caption.partial":
      return state.captions.partial(message);
    case "caption.final":
      return state.captions.final(message);
    case "stage.changed":
      return state.facilitator.stage(message);
    case "ai.message":
      return state.facilitator.message(message);
    case "balance.update":
      return state.facilitator.speaking(message);
    case "statement.added":
      return state.statements.added(message);
    case "statement.edited":
      return state.statements.edited(message);
    case "vote.tally":
      return state.statements.tally(message);
    default:
      return undefined;
  }
}

function onWelcome(message) {
  state.joined = true;
  state.participantId = message.participant_id;
  for (const p of message.participants) state.participants.set(p.participant_id, p);
  const iceServers = message.ice_servers && message.ice_servers.length ? message.ice_servers : state.config.ice_servers;
  state.pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
  state.pc.addEventListener("track", () => renderTiles());
  state.pc.addEventListener("connectionstatechange", () => {
    const s = state.pc.connectionState;
    setStatus(s === "connected" ? "Connected" : s === "failed" ? "Connection lost" : s === "connecting" ? "Connecting…" : "");
  });
  state.captions = new CaptionsView({ live: $("live-captions"), transcript: $("transcript"), announcer: $("captions-announcer") });
  state.facilitator = new FacilitatorView({
    panel: $("facilitator"), stageName: $("stage-name"), stageTime: $("stage-time"),
    messages: $("ai-messages"), balance: $("balance"), send: (m) => state.signaling.send(m),
  });
  state.statements = new StatementsView({
    list: $("statements"), form: $("statement-form"), input: $("statement-text"),
    send: (m) => state.signaling.send(m), participantId: state.participantId,
  });
  $("join-panel").hidden = true;
  $("room-view").hidden = false;
  updateControls();
  renderTiles();
  loadTranscript();
}

async function loadTranscript() {
  try {
    const response = await fetch(`/api/rooms/${encodeURIComponent(roomId)}/transcript`);
    if (response.ok) state.captions.load((await response.json()).captions);
    const ai = await fetch(`/api/rooms/${encodeURIComponent(roomId)}/ai-messages`);
    if (ai.ok) state.facilitator.load(await ai.json());
    const statements = await fetch(`/api/rooms/${encodeURIComponent(roomId)}/statements`);
    if (statements.ok) state.statements.load(await statements.json());
  } catch {
    /* the live events still arrive; the history is a convenience */
  }
}

// The server is always the offerer. Our publishing slots are the first audio and video m-lines it does not list in
// offer.tracks; every listed m-line carries someone else's media.
async function onOffer(message) {
  const pc = state.pc;
  state.trackOwners = message.tracks || {};
  await pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
  const used = new Set();
  for (const transceiver of pc.getTransceivers()) {
    const kind = transceiver.receiver.track.kind;
    if (transceiver.mid in state.trackOwners) {
      transceiver.direction = "recvonly";
      continue;
    }
    if (used.has(kind)) {
      transceiver.direction = "inactive";
      continue;
    }
    used.add(kind);
    const local = kind === "audio" ? state.media.audio : state.media.video;
    if (local && transceiver.sender.track !== local) await transceiver.sender.replaceTrack(local);
    transceiver.direction = local ? "sendonly" : "inactive";
  }
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  await iceGatheringComplete(pc);
  state.signaling.send({ type: "answer", sdp: pc.localDescription.sdp });
  renderTiles();
}

function iceGatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", done);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 5000); // answer with what we have rather than never
  });
}

function onError(message) {
  const text = ERROR_TEXT[message.code] || message.message;
  if (!state.joined) {
    joinFailed(text);
    if (message.fatal) state.signaling.close();
    return;
  }
  if (message.fatal) {
    leave(text);
  } else {
    setStatus(text);
  }
}

function onClosed() {
  if (state.joined && !state.leaving) leave("The connection to the room was lost.");
}

function leave(reason) {
  if (state.leaving) return;
  state.leaving = true;
  if (state.signaling) {
    state.signaling.send({ type: "leave" });
    state.signaling.close();
  }
  if (state.pc) state.pc.close();
  for (const track of state.media.stream.getTracks()) track.stop();
  $("room-view").hidden = true;
  $("join-panel").hidden = true;
  $("left-panel").hidden = false;
  $("left-reason").textContent = reason || "";
  setStatus("");
}

// ---------------------------------------------------------------------------------------------------------------------
// Video grid

function remoteTracksByParticipant() {
  const byParticipant = new Map();
  if (!state.pc) return byParticipant;
  for (const transceiver of state.pc.getTransceivers()) {
    const owner = state.trackOwners[transceiver.mid];
    if (!owner || transceiver.currentDirection === "inactive") continue;
    const entry = byParticipant.get(owner.participant_id) || {};
    entry[owner.kind] = transceiver.receiver.track;
    byParticipant.set(owner.participant_id, entry);
  }
  return byParticipant;
}

function tileFor(participantId, name, isSelf) {
  const grid = $("video-grid");
  let tile = grid.querySelector(`[data-participant="${CSS.escape(participantId)}"]`);
  if (!tile) {
    tile = document.createElement("li");
    tile.className = "tile";
    tile.dataset.participant = participantId;
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    video.muted = isSelf; // never play our own microphone back
    if (isSelf) video.classList.add("mirror");
    const label = document.createElement("span");
    label.className = "name";
    const muted = document.createElement("span");
    muted.className = "muted-badge";
    tile.append(video, label, muted);
    grid.append(tile);
  }
  tile.querySelector(".name").textContent = isSelf ? `${name} (you)` : name;
  return tile;
}

function attach(tile, tracks) {
  const video = tile.querySelector("video");
  const current = video.srcObject ? video.srcObject.getTracks() : [];
  const wanted = tracks.filter(Boolean);
  const same = current.length === wanted.length && wanted.every((t) => current.includes(t));
  if (!same) video.srcObject = wanted.length ? new MediaStream(wanted) : null;
  tile.classList.toggle("no-video", !wanted.some((t) => t.kind === "video"));
}

function renderTiles() {
  if (!state.joined) return;
  const grid = $("video-grid");
  const me = state.participants.get(state.participantId);
  const selfTile = tileFor(state.participantId, me ? me.name : $("display-name").value, true);
  attach(selfTile, [state.media.video]);
  updateMutedBadge(selfTile, { audio: micOn(), video: camOn() });
  const remote = remoteTracksByParticipant();
  const present = new Set([state.participantId]);
  for (const [id, p] of state.participants) {
    if (id === state.participantId) continue;
    present.add(id);
    const tile = tileFor(id, p.name, false);
    const tracks = remote.get(id) || {};
    attach(tile, [tracks.video, tracks.audio]);
    updateMutedBadge(tile, p);
  }
  for (const tile of [...grid.children]) {
    if (!present.has(tile.dataset.participant)) tile.remove();
  }
  grid.dataset.count = String(grid.children.length);
}

function updateMutedBadge(tile, p) {
  const parts = [];
  if (p.audio === false) parts.push("microphone off");
  if (p.video === false) parts.push("camera off");
  tile.querySelector(".muted-badge").textContent = parts.join(", ");
}

function setSpeaking(participantId, speaking) {
  const tile = $("video-grid").querySelector(`[data-participant="${CSS.escape(participantId)}"]`);
  if (tile) tile.classList.toggle("speaking", speaking);
}

// ---------------------------------------------------------------------------------------------------------------------
// Controls

const micOn = () => !!(state.media.audio && state.media.audio.enabled);
const camOn = () => !!(state.media.video && state.media.video.enabled);

function updateControls() {
  const mic = $("toggle-mic");
  const cam = $("toggle-cam");
  mic.disabled = !state.media.audio;
  cam.disabled = !state.media.video;
  mic.setAttribute("aria-pressed", String(micOn()));
  cam.setAttribute("aria-pressed", String(camOn()));
  mic.textContent = !state.media.audio ? "No microphone" : micOn() ? "Microphone on" : "Microphone off";
  cam.textContent = !state.media.video ? "No camera" : camOn() ? "Camera on" : "Camera off";
}

function toggle(kind) {
  const track = kind === "audio" ? state.media.audio : state.media.video;
  if (!track) return;
  track.enabled = !track.enabled; // a disabled track sends silence / black frames; the slot stays negotiated
  updateControls();
  state.signaling.send({ type: "media", audio: micOn(), video: camOn() });
  renderTiles();
}

$("toggle-mic").addEventListener("click", () => toggle("audio"));
$("toggle-cam").addEventListener("click", () => toggle("video"));
$("leave").addEventListener("click", () => leave("You left the room. The transcript is kept."));
window.addEventListener("pagehide", () => {
  if (state.signaling) state.signaling.send({ type: "leave" });
});

init();
