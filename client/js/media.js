// Camera and microphone: ask for both, fall back to whichever is available, and say plainly what is missing.

import { t } from "./i18n.js";

// What went wrong with one device, in plain words (a function giving them in the interface's current language, so that
// a page can write them again in another); room.js adds what the person can still do.
const WORDS = {
  audio: {
    missing: () => t("media.no_microphone"),
    blocked: () => t("media.microphone_blocked"),
    notFound: () => t("media.microphone_not_found"),
    busy: () => t("media.microphone_busy"),
    failed: (name) => t("media.microphone_failed", { error: name }),
  },
  video: {
    missing: () => t("media.no_camera"),
    blocked: () => t("media.camera_blocked"),
    notFound: () => t("media.camera_not_found"),
    busy: () => t("media.camera_busy"),
    failed: (name) => t("media.camera_failed", { error: name }),
  },
};

function describe(kind, error) {
  const words = WORDS[kind];
  if (!error) return words.missing;
  if (error.name === "NotAllowedError" || error.name === "SecurityError") return words.blocked;
  if (error.name === "NotFoundError" || error.name === "OverconstrainedError") return words.notFound;
  if (error.name === "NotReadableError" || error.name === "AbortError") return words.busy;
  return () => words.failed(error.name);
}

// Which of the devices work, in a sentence (nothing when none does).
export function devicesReady(audio, video) {
  if (audio && video) return t("join.devices_ready");
  if (audio) return t("join.microphone_ready");
  if (video) return t("join.camera_ready");
  return "";
}

async function tryGet(constraints) {
  try {
    return { stream: await navigator.mediaDevices.getUserMedia(constraints), error: null };
  } catch (error) {
    return { stream: null, error };
  }
}

// Returns { stream, audio, video, messages } where audio/video are MediaStreamTracks or null, and each message is a
// function that gives its words in the interface's current language.
export async function getLocalMedia({ testMode = false } = {}) {
  const audioConstraints = testMode
    ? { echoCancellation: false, noiseSuppression: false, autoGainControl: false }
    : { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  const videoConstraints = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30, max: 30 } };
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return {
      stream: new MediaStream(), audio: null, video: null,
      messages: [() => t("media.insecure")],
    };
  }
  const both = await tryGet({ audio: audioConstraints, video: videoConstraints });
  if (both.stream) {
    return { stream: both.stream, audio: both.stream.getAudioTracks()[0] || null, video: both.stream.getVideoTracks()[0] || null, messages: [] };
  }
  const audioOnly = await tryGet({ audio: audioConstraints });
  const videoOnly = await tryGet({ video: videoConstraints });
  const stream = new MediaStream();
  const audio = audioOnly.stream ? audioOnly.stream.getAudioTracks()[0] : null;
  const video = videoOnly.stream ? videoOnly.stream.getVideoTracks()[0] : null;
  if (audio) stream.addTrack(audio);
  if (video) stream.addTrack(video);
  const messages = [];
  if (!audio) messages.push(describe("audio", audioOnly.error || both.error));
  if (!video) messages.push(describe("video", videoOnly.error || both.error));
  return { stream, audio, video, messages };
}
