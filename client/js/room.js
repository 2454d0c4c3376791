// The room page: the join form (name, consent, device check), then the call (video grid, controls, captions,
// transcript, facilitator, statements). When the signaling connection drops, the page rejoins by itself and the server
// replays what it missed. The signaling may go to another server node than the page's: the one hosting the room (the
// page's server says which with "room_elsewhere"). Signaling protocol: docs/architecture.md; message shapes:
// server/core/events.py.
import { CaptionsView } from "./captions.js";
import { FacilitatorView } from "./facilitator.js";
import { chooseLocale, currentLocale, languageName, languageOptions, localeSwitch, setupI18n, t } from "./i18n.js";
import { LevelMonitor } from "./levels.js";
import { devicesReady, getLocalMedia } from "./media.js";
import { RoomPeer } from "./peer.js";
import { Signaling } from "./signaling.js";
import { StatementsView } from "./statements.js";
import { VideoGrid } from "./tiles.js";
import { Words } from "./translated.js";

const roomId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const roomApi = `/api/rooms/${encodeURIComponent(roomId)}`;
const $ = (id) => document.getElementById(id);
const PREVIEW = "preview"; // level-monitor key of the join page's microphone meter
// Rejoining after a lost connection: waits of 0.5, 1, 2, 4, 8, 8... s (each shortened by a random up to half) between
// attempts, for 2 minutes.
const REJOIN_FIRST_DELAY_MS = 500;
const REJOIN_MAX_DELAY_MS = 8_000;
const REJOIN_GIVE_UP_MS = 120_000;
const REJOIN_ATTEMPT_LIMIT_MS = 10_000; // an attempt with no welcome by then is given up for the next one
// "room_elsewhere" hops followed in a row (from the page's server to the room's node); more means the servers disagree.
const MAX_NODE_HOPS = 3;

// /r/{room}?observe: a moderator observes (signed in): sees and hears the room, is not a participant, sends nothing.
const observing = new URLSearchParams(location.search).has("observe");

const state = {
  config: { ice_servers: [], test_mode: false },
  room: null, // GET /api/rooms/{id}
  media: { stream: new MediaStream(), audio: null, video: null, messages: [] },
  signaling: null,
  node: null, // base URL of the server node the signaling goes to; null: this page's server
  nodeHops: 0, // room_elsewhere answers followed since the last fresh start from this page's server
  peer: null,
  name: "", // as typed on the join form (a rejoin sends it again)
  language: null, // the language this participant speaks and reads (a rejoin sends it again)
  participantId: null, // a new one after each rejoin (a deliberation's participant keeps theirs)
  credential: null, // a deliberation's room: the participant credential its lobby gave this browser
  readCredential: null, // reads the room's history and transcript: the lobby's, or a stand-alone room's welcome's
  resumeToken: null, // from the latest welcome: rejoin with it after a lost connection
  lastSeq: 0, // seq of the latest room event received (they arrive in increasing order): the replay starts after it
  reconnect: null, // while rejoining: {attempt, timer, giveUp}
  participants: new Map(), // id -> {participant_id, name, audio, video}
  grid: new VideoGrid($("video-grid")),
  captions: null,
  facilitator: null,
  statements: null,
  joined: false,
  leaving: false,
  alertTimer: null,
};

// The words this script wrote on the page, written again in another interface language. A text given as a function
// (calling t) is rewritten; a plain string (from the server, or nothing) is not.
const words = new Words();

const levels = new LevelMonitor({
  onSpeaking: (key, speaking) => {
    if (key !== PREVIEW) state.grid.setSpeaking(key, "level", speaking);
  },
  onLevel: (key, rms) => {
    // Square root: speech (RMS 0.02-0.2) fills a useful part of the bar.
    if (key === PREVIEW) $("mic-meter").style.width = `${Math.min(100, Math.sqrt(rms) * 220)}%`;
  },
});

// What to tell people about an error from the server (codes: server/core/events.py ErrorCode), in the interface's
// language; the server's own words (in English) for the codes whose message carries particulars (e.g. why a name
// cannot be used).
function errorWords(message) {
  switch (message.code) {
    case "room_full": {
      const capacity = (message.params && message.params.count) || (state.room ? state.room.max_participants : null);
      return capacity ? t("room.error_full", { count: capacity }) : message.message;
    }
    case "name_taken":
    case "name_reserved":
    case "bad_name":
      return nameRefusal(message) || message.message;
    case "rate_limited":
      return t("room.error_rate_limited", { seconds: (message.params && message.params.seconds) || 1 });
    case "consent_required":
      return t("room.error_consent_required");
    case "credential_required":
      return t("room.error_credential_required");
    case "join_timeout":
      return t("room.error_join_timeout");
    case "unsupported_language": {
      const offered = ((message.params && message.params.offered) || "").split(",").filter(Boolean);
      if (!offered.length) return message.message;
      const names = new Intl.ListFormat(currentLocale(), { type: "disjunction" }).format(offered.map(languageName));
      return t("room.error_unsupported_language", { languages: names });
    }
    case "unknown_room":
      return t("room.error_unknown_room");
    case "not_your_room":
      return t("room.error_not_your_room");
    case "deliberation_closed":
      return t("room.error_deliberation_closed");
    case "joined_elsewhere":
      return t("room.error_joined_elsewhere");
    case "statement_locked":
      return t("room.error_statement_locked");
    case "statement_changed":
      return t("room.error_statement_changed");
    case "negotiation_timeout":
      return t("room.error_negotiation_timeout");
    case "media_failed":
      return t("room.error_media_failed");
    case "reconnected":
      return t("room.error_reconnected");
    case "room_elsewhere":
      return t("room.error_room_elsewhere");
    case "removed":
      return t("room.error_removed");
    case "moved":
      return t("room.error_moved");
    case "room_ended":
      return t("room.error_room_ended");
    default:
      return message.message;
  }
}

// Why a display name was refused (reason and params from the server: server/names.py, server/rooms.py), or null
// for a reason this page does not know (then the server's English words are shown).
function nameRefusal({ code, reason, params = {} }) {
  if (code === "name_taken") {
    return reason === "looks_alike" ? t("room.error_name_looks_alike", params) : t("room.error_name_taken", params);
  }
  if (code === "name_reserved") {
    return reason === "reserved_word" ? t("room.error_name_reserved_word", params) : t("room.error_name_reserved", params);
  }
  switch (reason) {
    case "direction_control": return t("room.error_name_direction_control", params);
    case "tag_character": return t("room.error_name_tag_character", params);
    case "blank_character": return t("room.error_name_blank_character", params);
    case "refused_character": return t("room.error_name_refused_character", params);
    case "format_character": return t("room.error_name_format_character", params);
    case "invisible": return t("room.error_name_invisible");
    case "empty": return t("room.error_name_empty");
    case "too_long": return t("room.error_name_too_long", params);
    case "starts_with_mark": return t("room.error_name_starts_with_mark");
    case "stacked_marks": return t("room.error_name_stacked_marks", params);
    default: return null;
  }
}

// The same as a function, for words.set: written again in another interface language.
function errorText(message) {
  return () => errorWords(message);
}

// ---------------------------------------------------------------------------------------------------------------------
// Before joining

async function init() {
  await setupI18n();
  localeSwitch($("locale-switch"));
  labelMeter();
  try {
    const [configResponse, roomResponse] = await Promise.all([fetch("/api/config"), fetch(roomApi)]);
    if (configResponse.ok) state.config = await configResponse.json();
    if (!roomResponse.ok) {
      const status = roomResponse.status;
      showRoomError(status === 404 ? errorText({ code: "unknown_room" }) : () => t("room.load_failed", { status }));
      return;
    }
    state.room = await roomResponse.json();
  } catch {
    showRoomError(() => t("ui.unreachable"));
    return;
  }
  words.set($("room-title"), state.room.title);
  words.set(document.querySelector("title"), `${state.room.title} · Moot`);
  const exports = { vtt: "transcript.vtt", srt: "transcript.srt", csv: "transcript.csv", json: "transcript.json",
    md: "report.md" };
  for (const [ext, file] of Object.entries(exports)) {
    for (const id of [`download-${ext}`, `left-${ext}`]) {
      $(id).href = `${roomApi}/${file}`;
      $(id).addEventListener("click", (event) => {
        event.preventDefault();
        download(file);
      });
    }
  }
  $("rejoin").href = location.pathname + location.search;
  fillLanguages();
  if (observing) {
    // No name, consent, camera or microphone: the observer only receives. The server checks the moderator's sign-in.
    $("display-name").value = "Moderator";
    $("name-row").hidden = true;
    $("consent-block").hidden = true;
    $("consent").checked = true;
    $("language-row").hidden = true;
    $("start-with").hidden = true;
    $("preview").closest(".preview-row").hidden = true;
    words.set($("joining-as"), () => t("room.observe_intro"));
    $("joining-as").hidden = false;
    words.set($("join-button"), () => t("room.observe_button"));
    words.set($("device-status"), "");
    updateJoinButton();
    return;
  }
  if (state.room.deliberation_id) {
    // A deliberation's room: its lobby gave this browser a credential, which says who joins (name and consent
    // were given there).
    const key = `moot:credential:${state.room.deliberation_id}`;
    state.credential = localStorage.getItem(key);
    if (!state.credential) {
      showRoomError(() => t("room.deliberation_only"));
      return;
    }
    $("display-name").value = localStorage.getItem(`${key}:name`) || "Participant";
    $("display-name").closest("form").classList.add("from-lobby");
    $("name-row").hidden = true;
    $("consent-block").hidden = true;
    $("consent").checked = true;
    const name = $("display-name").value;
    words.set($("joining-as"), () => t("room.joining_as", { name }));
    $("joining-as").hidden = false;
  } else {
    const savedName = localStorage.getItem("moot:name");
    if (savedName) $("display-name").value = savedName;
  }
  updateJoinButton();
  await checkDevices();
}

function showRoomError(message) {
  words.set($("room-error"), message);
  $("room-error").hidden = false;
  $("join-form").hidden = true;
  words.set($("room-title"), "Moot");
}

// The microphone meter's tooltip.
function labelMeter() {
  words.set(document.querySelector(".meter"), () => t("join.microphone_level"), "title");
}

async function checkDevices() {
  words.set($("device-status"), () => t("join.checking_devices"));
  $("retry-devices").hidden = true;
  for (const track of state.media.stream.getTracks()) track.stop();
  state.media = await getLocalMedia({ testMode: state.config.test_mode });
  const { audio, video, messages } = state.media;
  $("preview").srcObject = video ? new MediaStream([video]) : null;
  $("preview").closest(".preview-box").classList.toggle("no-video", !video);
  levels.watch(PREVIEW, audio);
  words.set($("device-status"), () => [
    devicesReady(audio, video),
    ...messages.map((message) => message()),
    !audio && video && t("join.camera_only"),
    audio && !video && t("join.microphone_only"),
    !audio && !video && t("join.no_devices"),
  ].filter(Boolean).join(" "));
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
  words.set($("join-hint"), () => (!hasName && !agreed ? t("join.hint_both")
    : !hasName ? t("join.hint_name")
      : !agreed ? t("join.hint_consent")
        : ""));
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
  if (!state.credential) localStorage.setItem("moot:name", name);
  $("join-error").hidden = true;
  $("join-button").disabled = true;
  setStatus(() => t("room.connecting"));
  state.name = name;
  state.language = $("language").value || null;
  localStorage.setItem("moot:language", state.language || "");
  state.node = null; // start at this page's server: it knows where the room lives
  state.nodeHops = 0;
  await connectAndJoin();
}

async function connectAndJoin() {
  const signaling = openSignaling();
  try {
    await signaling.connect();
  } catch {
    if (state.signaling !== signaling) return;
    joinFailed(state.node ? () => t("room.node_unreachable") : () => t("ui.unreachable_retry"));
    return;
  }
  signaling.send(joinMessage());
}

// A new signaling connection, which becomes the current one: the events of earlier ones are ignored from then on (e.g.
// after "name taken" the person fixes the name and joins again, or a rejoin attempt was given up).
function openSignaling() {
  const signaling = new Signaling(roomId, state.node);
  state.signaling = signaling;
  signaling.addEventListener("message", (event) => state.signaling === signaling && onMessage(event.detail));
  signaling.addEventListener("close", () => state.signaling === signaling && onClosed());
  return signaling;
}

function joinMessage(resume = null) {
  if (observing) return { type: "join", name: "Moderator", consent: true, audio: false, video: false, observe: true };
  const message = { type: "join", name: state.name, consent: true, audio: micOn(), video: camOn() };
  if (state.language) message.language = state.language;
  if (resume) message.resume = resume;
  if (state.credential) message.credential = state.credential;
  return message;
}

function joinFailed(message) {
  words.set($("join-error"), message);
  $("join-error").hidden = false;
  setStatus("");
  updateJoinButton();
}

function setStatus(text, warning = false) {
  words.set($("connection-status"), text);
  $("connection-status").classList.toggle("warning", warning);
}

function onMessage(message) {
  if (message.type === "welcome") return state.reconnect ? onRejoined(message) : onWelcome(message);
  if (message.type === "error") return onError(message);
  if (!state.joined) return undefined;
  if (message.seq > 0) state.lastSeq = message.seq; // room events only: replies such as offers carry no seq
  switch (message.type) {
    case "offer":
      return state.peer.handleOffer(message).catch((error) => {
        const reason = `${error.name || "Error"}: ${error.message}`;
        showAlert(() => t("room.media_setup_failed", { error: reason }));
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
      if (message.participant_id === state.participantId && message.by === "moderator" && micOn()) {
        state.media.audio.enabled = false; // a moderator muted us: the microphone goes off here too
        updateControls();
        showAlert(() => t("room.muted_by_moderator"), false);
      }
      return renderTiles();
    }
    case "voice.activity":
      return state.grid.setSpeaking(message.participant_id, "voice", message.speaking);
    case "caption.partial":
      return state.captions.partial(message);
    case "caption.final":
      return state.captions.final(message);
    case "caption.translated":
      return state.captions.translated(message);
    case "ai.translated":
      return state.facilitator.translated(message);
    case "stage.changed":
      return state.facilitator.stage(message);
    case "ai.message":
      return state.facilitator.message(message);
    case "balance.update":
      return state.facilitator.speaking(message);
    case "room.observers":
      return showObservers(message.count);
    case "facilitator.control":
      return state.facilitator.control(message);
    case "moderator.message":
      return state.facilitator.moderatorMessage(message);
    case "help.taken":
      if (message.participant_id === state.participantId) {
        words.set($("help-status"), () => t("room.help_taken"));
        $("help-status").hidden = false;
      }
      return undefined;
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
  acceptWelcome(message);
  showObservers(message.observers || 0);
  if (observing) {
    for (const id of ["toggle-mic", "toggle-cam", "call-moderator", "statement-form"]) $(id).hidden = true;
    words.set($("observer-notice"), () => t("room.observing"));
    $("observer-notice").hidden = false;
  }
  state.captions = new CaptionsView({
    live: $("live-captions"), transcript: $("transcript"), announcer: $("captions-announcer"), jump: $("transcript-jump"),
    reading: state.language, text: t,
  });
  $("reading-language").value = state.language || "";
  $("reading-language").closest("label").hidden = observing;
  const send = (m) => state.signaling.send(m);
  state.facilitator = new FacilitatorView({
    panel: $("facilitator"), stageName: $("stage-name"), stageTime: $("stage-time"),
    messages: $("ai-messages"), balance: $("balance"), send, reading: state.language, text: t,
  });
  state.statements = new StatementsView({
    list: $("statements"), form: $("statement-form"), input: $("statement-text"), send, participantId: state.participantId,
    text: t,
  });
  levels.unwatch(PREVIEW);
  $("join-panel").hidden = true;
  $("room-view").hidden = false;
  setStatus(() => t("room.connecting"));
  updateControls();
  renderTiles();
  $("toggle-mic").focus();
  loadHistory();
}

// What every welcome (the first, and each after a rejoin) sets: who we are, who is here, and a new peer connection
// (the server then sends a new offer; our microphone and camera tracks stay the same).
function acceptWelcome(message) {
  state.participantId = message.participant_id;
  state.readCredential = state.credential || message.credential || state.readCredential;
  state.resumeToken = message.resume_token || null;
  state.participants = new Map(message.participants.map((p) => [p.participant_id, p]));
  if (state.peer) state.peer.close();
  const iceServers = message.ice_servers && message.ice_servers.length ? message.ice_servers : state.config.ice_servers;
  const peer = new RoomPeer({
    iceServers,
    sendAnswer: (sdp) => state.signaling.send({ type: "answer", sdp }),
    localTrack: (kind) => (kind === "audio" ? state.media.audio : state.media.video),
  });
  state.peer = peer;
  peer.addEventListener("tracks", renderTiles);
  peer.addEventListener("state", (event) => {
    if (state.peer !== peer || state.reconnect) return; // while rejoining the status says so
    setStatus(connectionWords(event.detail));
  });
}

// What the status line says for the media connection's state.
function connectionWords(connectionState) {
  switch (connectionState) {
    case "connecting":
      return () => t("room.connecting");
    case "connected":
      return () => t("room.connected");
    case "disconnected":
      return () => t("ui.reconnecting");
    case "failed":
      return () => t("room.media_lost");
    default:
      return "";
  }
}

// Back in the room after a lost connection. The views keep what they show (a new one would wipe the transcript): the
// server replays the room events after state.lastSeq, the history fills in the rest, and the views ignore duplicates.
function onRejoined(message) {
  stopReconnecting();
  acceptWelcome(message);
  state.statements.setParticipantId(state.participantId);
  setStatus(() => t("room.connecting"));
  renderTiles();
  loadHistory();
}

function readHeaders() {
  return state.readCredential ? { "X-Moot-Participant": state.readCredential } : {};
}

// The transcript as a file: fetched with this participant's credential (a plain link cannot send it), then saved.
async function download(name) {
  try {
    const response = await fetch(`${roomApi}/${name}`, { headers: readHeaders() });
    if (!response.ok) throw new Error(t("staff.http_error", { status: response.status }));
    const url = URL.createObjectURL(await response.blob());
    const link = document.createElement("a");
    link.href = url;
    link.download = `moot-${roomId}-${name}`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (error) {
    showAlert(() => t("room.download_failed", { reason: error.message }));
  }
}

// What happened before we joined. Live events keep arriving meanwhile; the views ignore duplicates.
async function loadHistory() {
  const load = async (path, apply) => {
    try {
      const response = await fetch(`${roomApi}/${path}`, { headers: readHeaders() });
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
  if (message.code === "room_elsewhere" && message.location && state.nodeHops < MAX_NODE_HOPS) {
    followRoom(message.location);
    return;
  }
  if (message.code === "moved" && message.location && /^[a-z0-9]{4,32}$/.test(message.location)) {
    // A moderator moved us to another room of the deliberation: our credential admits us there.
    leave(errorText(message));
    location.assign(`/r/${message.location}`);
    return;
  }
  if (message.code === "room_moved" && state.joined) {
    // This server lost the room (another node may host it now): as after a lost connection, rejoin with resume.
    state.signaling.close();
    if (state.reconnect) rejoinLater();
    else startReconnecting();
    return;
  }
  const text = errorText(message);
  if (state.reconnect) {
    // The rejoin was refused (e.g. the room filled up, or someone took the name meanwhile): stop trying.
    leave(() => t("room.rejoin_refused", { reason: text() }));
    return;
  }
  if (!state.joined) {
    joinFailed(text);
    if (["name_taken", "name_reserved", "bad_name"].includes(message.code)) $("display-name").focus();
    if (message.fatal) state.signaling.close();
    return;
  }
  if (message.fatal) leave(text);
  else showAlert(text, message.code !== "media_failed");
}

// The room lives on another server node: join (or rejoin) there. The page, its API calls and its history stay with
// this page's server (every node serves them); only the signaling connection, which carries the media, moves.
function followRoom(node) {
  state.nodeHops += 1;
  state.node = node;
  state.signaling.close();
  if (state.reconnect) rejoinAttempt();
  else connectAndJoin();
}

// The languages one may speak and read here (the deliberation's, else the interface's), each named in the interface's
// language and in its own; preselected: the last one chosen in this browser, else the interface's, else the first.
function fillLanguages() {
  const offered = state.room.languages && state.room.languages.length ? state.room.languages : ["en"];
  for (const select of [$("language"), $("reading-language")]) select.replaceChildren(...languageOptions(offered));
  const saved = localStorage.getItem("moot:language");
  const guess = [saved, currentLocale(), chooseLocale(null)].find((code) => code && offered.includes(code));
  $("language").value = guess || offered[0];
}

// The reader picks another language in the room: the server is told (translations into it start), the lines already
// shown switch to it where a translation exists.
$("reading-language").addEventListener("change", () => {
  const language = $("reading-language").value;
  state.language = language;
  localStorage.setItem("moot:language", language);
  state.signaling.send({ type: "language", language });
  state.captions.setReading(language);
  state.facilitator.setReading(language);
  showAlert(t("room.language_changed", { language: languageName(language) }));
});

// Another interface language: the words scripts wrote are written again.
document.addEventListener("moot:locale", () => {
  words.rewrite();
  if (!state.room) return;
  const chosen = $("language").value;
  fillLanguages();
  $("language").value = chosen;
  $("reading-language").value = state.language || chosen;
  updateJoinButton();
  if (state.captions) state.captions.setReading(state.language);
  if (state.facilitator) state.facilitator.setReading(state.language);
  if (state.joined) {
    showObservers(state.observers || 0);
    updateControls();
    renderTiles();
    state.captions.relabel();
    state.facilitator.relabel();
    state.statements.relabel();
  }
});

// "A moderator is observing": shown to everyone in the room while one is (an observer sees its own line instead).
function showObservers(count) {
  state.observers = count;
  if (observing) return;
  $("observer-notice").textContent = t("room.observers", { count });
  $("observer-notice").hidden = count === 0;
}

function showAlert(text, autoHide = true) {
  clearTimeout(state.alertTimer);
  words.set($("room-alert"), text);
  $("room-alert").hidden = false;
  if (autoHide) state.alertTimer = setTimeout(() => ($("room-alert").hidden = true), 15_000);
}

// The signaling connection ended without our asking (a fatal error from the server makes us leave first).
function onClosed() {
  if (state.leaving) return;
  if (state.reconnect) rejoinLater(); // this attempt failed
  else if (state.joined) startReconnecting();
  else if ($("join-error").hidden) joinFailed(() => t("room.closed_before_join"));
}

function leave(reason) {
  if (state.leaving) return;
  state.leaving = true;
  stopReconnecting();
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
  words.set($("left-reason"), reason || "");
  $("left-heading").focus();
  setStatus("");
}

// ---------------------------------------------------------------------------------------------------------------------
// Rejoining after a lost connection: each attempt is a new connection whose join carries the resume token of the last
// welcome and the seq of the last room event received; the server replays the room events after it.

function startReconnecting() {
  state.reconnect = {
    attempt: 0,
    timer: null,
    giveUp: setTimeout(() => leave(() => t("room.connection_lost")), REJOIN_GIVE_UP_MS),
  };
  setStatus(() => t("ui.reconnecting"), true);
  rejoinLater();
}

// Exponential backoff with jitter, so that the clients of a room do not all come back at the same moment.
function rejoinLater() {
  const reconnect = state.reconnect;
  clearTimeout(reconnect.timer);
  const delay = Math.min(REJOIN_MAX_DELAY_MS, REJOIN_FIRST_DELAY_MS * 2 ** reconnect.attempt);
  reconnect.attempt += 1;
  reconnect.timer = setTimeout(rejoin, delay * (0.5 + Math.random() / 2));
}

// Each attempt starts at this page's server, not at the node the room was on: that node may be gone, and whichever
// node answers knows where the room lives now (after a dead node's lease expires, the node that answers takes it).
function rejoin() {
  state.node = null;
  state.nodeHops = 0;
  rejoinAttempt();
}

function rejoinAttempt() {
  const reconnect = state.reconnect;
  const signaling = openSignaling();
  clearTimeout(reconnect.timer);
  reconnect.timer = setTimeout(() => {
    signaling.close(); // no answer and no error: give this attempt up
    rejoinLater();
  }, REJOIN_ATTEMPT_LIMIT_MS);
  const resume = state.resumeToken ? { token: state.resumeToken, after_seq: state.lastSeq } : null;
  signaling.connect().then(
    () => signaling.send(joinMessage(resume)),
    () => {}, // the "close" event that follows a failed connection schedules the next attempt
  );
}

function stopReconnecting() {
  if (!state.reconnect) return;
  clearTimeout(state.reconnect.timer);
  clearTimeout(state.reconnect.giveUp);
  state.reconnect = null;
}

// ---------------------------------------------------------------------------------------------------------------------
// Video grid

function renderTiles() {
  if (!state.joined || state.leaving) return;
  const selfId = state.participantId;
  const me = state.participants.get(selfId);
  const people = observing ? [] : [{
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
// says: the device's name, its on and off words (which agree with it in some languages), and what says it is missing.
function updateControl(button, present, on, says) {
  button.disabled = !present;
  button.setAttribute("aria-pressed", String(on));
  button.querySelector(".state").textContent = !present ? "" : on ? says.on : says.off;
  button.querySelector(".label").textContent = present ? says.label : says.none;
}

function updateControls() {
  updateControl($("toggle-mic"), !!state.media.audio, micOn(), { label: t("room.microphone"),
    on: t("room.microphone_on"), off: t("room.microphone_off"), none: t("room.no_microphone") });
  updateControl($("toggle-cam"), !!state.media.video, camOn(), { label: t("room.camera"),
    on: t("room.camera_on"), off: t("room.camera_off"), none: t("room.no_camera") });
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
$("leave").addEventListener("click", () => leave(() => t("room.you_left")));
$("call-moderator").addEventListener("click", () => {
  const form = $("help-form");
  form.hidden = !form.hidden;
  $("call-moderator").setAttribute("aria-expanded", String(!form.hidden));
  if (!form.hidden) $("help-note").focus();
});
$("help-cancel").addEventListener("click", () => {
  $("help-form").hidden = true;
  $("call-moderator").setAttribute("aria-expanded", "false");
  $("call-moderator").focus();
});
$("help-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (!state.signaling || !state.joined) return;
  state.signaling.send({ type: "help.request", note: $("help-note").value.trim() });
  $("help-form").hidden = true;
  $("help-note").value = "";
  $("call-moderator").setAttribute("aria-expanded", "false");
  words.set($("help-status"), () => t("room.help_called"));
  $("help-status").hidden = false;
});
window.addEventListener("pagehide", () => {
  if (state.signaling && state.joined && !state.leaving) state.signaling.send({ type: "leave" });
});

init();
