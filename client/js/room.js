// The room page: the join form (name, consent, device check), then the call (video grid, controls, captions,
// transcript, facilitator, statements). Signaling protocol: docs/architecture.md; message shapes: server/events.py.
import { CaptionsView } from "./captions.js";
import { FacilitatorView } from "./facilitator.js";
import { LevelMonitor } from "./levels.js";
import { getLocalMedia } from "./media.js";
import { RoomPeer } from "./peer.js";
import { Signaling } from "./signaling.js";
import { StatementsView } from "./statements.js";
import { VideoGrid } from "./tiles.js";

const roomId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const roomApi = `/api/rooms/${encodeURIComponent(roomId)}`;
const $ = (id) => document.getElementById(id);
const PREVIEW = "preview"; // level-monitor key of the join page's microphone meter

const state = {
  config: { ice_servers: [], test_mode: false },
  room: null, // GET /api/rooms/{id}
  media: { stream: new MediaStream(), audio: null, video: null, messages: [] },
  signaling: null,
  peer: null,
  participantId: null,
  participants: new Map(), // id -> {participant_id, name, audio, video}
  grid: new VideoGrid($("video-grid")),
  captions: null,
  facilitator: null,
  statements: null,
  joined: false,
  leaving: false,
  alertTimer: null,
};

const levels = new LevelMonitor({
  onSpeaking: (key, speaking) => {
    if (key !== PREVIEW) state.grid.setSpeaking(key, "level", speaking);
  },
  onLevel: (key, rms) => {
    // Square root: speech (RMS 0.02-0.2) fills a useful part of the bar.
    if (key === PREVIEW) $("mic-meter").style.width = `${Math.min(100, Math.sqrt(rms) * 220)}%`;
  },
});

function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

// What to tell people about an error from the server (codes: server/events.py ErrorCode).
function errorText(message) {
  switch (message.code) {
    case "room_full": {
      const capacity = state.room ? state.room.max_participants : null;
      return capacity
        ? `This room is full (${plural(capacity, "person", "people")}). Try again later, or ask the organiser for another room.`
        : message.message;
    }
    case "unknown_room":
      return "This room does not exist. Check the link you were given.";
    case "negotiation_timeout":
      return "Your browser did not finish connecting to the room in time. Join again to retry.";
    case "media_failed":
      return "Your audio and video cannot reach the server: a firewall may be blocking them (the organiser can set up a TURN server). Captions and the transcript still work.";
    default:
      return message.message;
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Before joining

async function init() {
  try {
    const [configResponse, roomResponse] = await Promise.all([fetch("/api/config"), fetch(roomApi)]);
    if (configResponse.ok) state.config = await configResponse.json();
    if (!roomResponse.ok) {
      showRoomError(roomResponse.status === 404
        ? errorText({ code: "unknown_room" })
        : `The room could not be loaded (error ${roomResponse.status}). Reload the page to try again.`);
      return;
    }
    state.room = await roomResponse.json();
  } catch {
    showRoomError("The server could not be reached. Check your connection and reload the page.");
    return;
  }
  $("room-title").textContent = state.room.title;
  document.title = `${state.room.title} · Moot`;
  for (const [id, ext] of [["download-vtt", "vtt"], ["download-json", "json"], ["left-vtt", "vtt"], ["left-json", "json"]]) {
    $(id).href = `${roomApi}/transcript.${ext}`;
  }
  $("rejoin").href = location.pathname;
  const savedName = localStorage.getItem("moot:name");
  if (savedName) $("display-name").value = savedName;
  updateJoinButton();
  await checkDevices();
}

function showRoomError(message) {
  $("room-error").textContent = message;
  $("room-error").hidden = false;
  $("join-form").hidden = true;
  $("room-title").textContent = "Moot";
}

async function checkDevices() {
  $("device-status").textContent = "Checking your camera and microphone…";
  $("retry-devices").hidden = true;
  for (const track of state.media.stream.getTracks()) track.stop();
  state.media = await getLocalMedia({ testMode: state.config.test_mode });
  const { audio, video, messages } = state.media;
  $("preview").srcObject = video ? new MediaStream([video]) : null;
  $("preview").closest(".preview-box").classList.toggle("no-video", !video);
  levels.watch(PREVIEW, audio);
  const ready = [audio && "microphone", video && "camera"].filter(Boolean);
  const lines = [];
  if (ready.length) lines.push(`Your ${ready.join(" and ")} ${ready.length > 1 ? "are" : "is"} ready.`);
  lines.push(...messages);
  if (!audio && video) lines.push("You can still join with your camera only: others will see you but not hear you.");
  if (audio && !video) lines.push("You can still join with your microphone only: others will hear you but not see you.");
  if (!audio && !video) lines.push("You can still join without them: you will see and hear the others, and read the captions.");
  $("device-status").textContent = lines.join(" ");
  $("device-status").classList.toggle("warning", messages.length > 0);
  $("retry-devices").hidden = messages.length === 0;
  $("start-with").hidden = !audio && !video;
  $("start-mic").closest("label").hidden = !audio;
  $("start-cam").closest("label").hidden = !video;
  applyStartChoices();
}

// The "when I join" choices: a track that starts disabled sends silence or black until switched on.
function applyStartChoices() {
  if (state.media.audio) state.media.audio.enabled = $("start-mic").checked;
  if (state.media.video) state.media.video.enabled = $("start-cam").checked;
  $("preview").closest(".preview-box").classList.toggle("no-video", !camOn());
}

function updateJoinButton() {
  const hasName = $("display-name").value.trim().length > 0;
  const agreed = $("consent").checked;
  $("join-button").disabled = !(hasName && agreed);
  $("join-hint").textContent = !hasName && !agreed ? "Enter your name and tick the box above to join."
    : !hasName ? "Enter your name to join."
      : !agreed ? "Tick the box above to agree before joining."
        : "";
  $("join-hint").hidden = hasName && agreed;
}

$("display-name").addEventListener("input", updateJoinButton);
$("consent").addEventListener("change", updateJoinButton);
$("retry-devices").addEventListener("click", checkDevices);
$("start-mic").addEventListener("change", applyStartChoices);
$("start-cam").addEventListener("change", applyStartChoices);
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
  // Ignore a previous attempt's socket (e.g. after "name taken" the person fixes the name and joins again).
  signaling.addEventListener("message", (event) => state.signaling === signaling && onMessage(event.detail));
  signaling.addEventListener("close", () => state.signaling === signaling && onClosed());
  try {
    await signaling.connect();
  } catch {
    joinFailed("The server could not be reached. Check your connection and try again.");
    return;
  }
  signaling.send({ type: "join", name, consent: true, audio: micOn(), video: camOn() });
}

function joinFailed(message) {
  $("join-error").textContent = message;
  $("join-error").hidden = false;
  setStatus("");
  updateJoinButton();
}

function setStatus(text) {
  $("connection-status").textContent = text;
}

function onMessage(message) {
  if (message.type === "welcome") return onWelcome(message);
  if (message.type === "error") return onError(message);
  if (!state.joined) return undefined;
  switch (message.type) {
    case "offer":
      return state.peer.handleOffer(message).catch((error) => {
        showAlert(`Audio and video could not be set up (${error.name || "error"}: ${error.message}).`);
      });
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
      return state.grid.setSpeaking(message.participant_id, "voice", message.speaking);
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
    case "facilitator.control":
      return state.facilitator.control(message);
    case "statement.added":
      return state.statements.added(message);
    case "statement.edited":
      return state.statements.edited(message);
    case "vote.tally":
      return state.statements.tally(message);
    default:
      return undefined; // newer server events this client does not know yet
  }
}

function onWelcome(message) {
  state.joined = true;
  state.participantId = message.participant_id;
  for (const p of message.participants) state.participants.set(p.participant_id, p);
  const iceServers = message.ice_servers && message.ice_servers.length ? message.ice_servers : state.config.ice_servers;
  state.peer = new RoomPeer({
    iceServers,
    sendAnswer: (sdp) => state.signaling.send({ type: "answer", sdp }),
    localTrack: (kind) => (kind === "audio" ? state.media.audio : state.media.video),
  });
  state.peer.addEventListener("tracks", renderTiles);
  state.peer.addEventListener("state", (event) => {
    const labels = { connecting: "Connecting…", connected: "Connected", disconnected: "Reconnecting…", failed: "Media connection lost" };
    setStatus(labels[event.detail] || "");
  });
  state.captions = new CaptionsView({
    live: $("live-captions"), transcript: $("transcript"), announcer: $("captions-announcer"), jump: $("transcript-jump"),
  });
  const send = (m) => state.signaling.send(m);
  state.facilitator = new FacilitatorView({
    panel: $("facilitator"), stageName: $("stage-name"), stageTime: $("stage-time"),
    messages: $("ai-messages"), balance: $("balance"), send,
  });
  state.statements = new StatementsView({
    list: $("statements"), form: $("statement-form"), input: $("statement-text"), send, participantId: state.participantId,
  });
  levels.unwatch(PREVIEW);
  $("join-panel").hidden = true;
  $("room-view").hidden = false;
  setStatus("Connecting…");
  updateControls();
  renderTiles();
  $("toggle-mic").focus();
  loadHistory();
}

// What happened before we joined. Live events keep arriving meanwhile; the views ignore duplicates.
async function loadHistory() {
  const load = async (path, apply) => {
    try {
      const response = await fetch(`${roomApi}/${path}`);
      if (response.ok) apply(await response.json());
    } catch {
      /* the history is a convenience: live events still arrive */
    }
  };
  await Promise.all([
    load("transcript", (body) => state.captions.load(body.captions)),
    load("ai-messages", (messages) => state.facilitator.load(messages)),
    load("statements", (statements) => state.statements.load(statements)),
  ]);
}

function onError(message) {
  const text = errorText(message);
  if (!state.joined) {
    joinFailed(text);
    if (["name_taken", "name_reserved", "bad_name"].includes(message.code)) $("display-name").focus();
    if (message.fatal) state.signaling.close();
    return;
  }
  if (message.fatal) leave(text);
  else showAlert(text, message.code !== "media_failed");
}

function showAlert(text, autoHide = true) {
  clearTimeout(state.alertTimer);
  $("room-alert").textContent = text;
  $("room-alert").hidden = false;
  if (autoHide) state.alertTimer = setTimeout(() => ($("room-alert").hidden = true), 15_000);
}

function onClosed() {
  if (state.leaving) return;
  if (state.joined) leave("The connection to the room was lost.");
  else if ($("join-error").hidden) joinFailed("The room closed the connection before you could join. Try again.");
}

function leave(reason) {
  if (state.leaving) return;
  state.leaving = true;
  if (state.signaling) {
    state.signaling.send({ type: "leave" });
    state.signaling.close();
  }
  if (state.peer) state.peer.close();
  levels.close();
  for (const track of state.media.stream.getTracks()) track.stop();
  $("room-view").hidden = true;
  $("join-panel").hidden = true;
  $("left-panel").hidden = false;
  $("left-reason").textContent = reason || "";
  $("left-heading").focus();
  setStatus("");
}

// ---------------------------------------------------------------------------------------------------------------------
// Video grid

function renderTiles() {
  if (!state.joined || state.leaving) return;
  const selfId = state.participantId;
  const me = state.participants.get(selfId);
  const people = [{
    id: selfId, name: me ? me.name : $("display-name").value.trim(), isSelf: true,
    audio: state.media.audio ? micOn() : undefined, video: state.media.video ? camOn() : undefined,
    tracks: { video: state.media.video },
  }];
  const remote = state.peer ? state.peer.remoteTracks() : new Map();
  for (const [id, p] of state.participants) {
    if (id !== selfId) people.push({ id, name: p.name, isSelf: false, audio: p.audio, video: p.video, tracks: remote.get(id) || {} });
  }
  state.grid.render(people);
  // Audio levels for the speaking highlight: ours from the microphone, the others' from what we receive.
  const watched = new Set();
  for (const person of people) {
    const track = person.isSelf ? state.media.audio : person.tracks.audio;
    if (track) {
      levels.watch(person.id, track);
      watched.add(person.id);
    }
  }
  levels.keep(watched);
}

// ---------------------------------------------------------------------------------------------------------------------
// Controls

const micOn = () => !!(state.media.audio && state.media.audio.enabled);
const camOn = () => !!(state.media.video && state.media.video.enabled);

// Each toggle keeps its accessible name ("Microphone"); aria-pressed says whether it is on. The visible on/off word
// is for sighted people and hidden from assistive technology to avoid saying the state twice.
function updateControl(button, present, on, noDeviceText) {
  button.disabled = !present;
  button.setAttribute("aria-pressed", String(on));
  button.querySelector(".state").textContent = present ? (on ? "on" : "off") : "";
  button.querySelector(".label").textContent = present ? button.dataset.label : noDeviceText;
}

function updateControls() {
  updateControl($("toggle-mic"), !!state.media.audio, micOn(), "No microphone");
  updateControl($("toggle-cam"), !!state.media.video, camOn(), "No camera");
}

function toggle(kind) {
  const track = kind === "audio" ? state.media.audio : state.media.video;
  if (!track) return;
  track.enabled = !track.enabled; // a disabled track sends silence / black frames; the slot stays negotiated
  updateControls();
  state.signaling.send({ type: "media", audio: micOn(), video: camOn() });
  renderTiles();
}

$("toggle-mic").dataset.label = "Microphone";
$("toggle-cam").dataset.label = "Camera";
$("toggle-mic").addEventListener("click", () => toggle("audio"));
$("toggle-cam").addEventListener("click", () => toggle("video"));
$("leave").addEventListener("click", () => leave("You left the room."));
window.addEventListener("pagehide", () => {
  if (state.signaling && state.joined && !state.leaving) state.signaling.send({ type: "leave" });
});

init();
