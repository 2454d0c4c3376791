// Camera and microphone: ask for both, fall back to whichever is available, and say plainly what is missing.

// What went wrong with one device, in plain words; room.js adds what the person can still do.
function describe(kind, error) {
  const device = kind === "audio" ? "microphone" : "camera";
  if (!error) return `No ${device} is available.`;
  if (error.name === "NotAllowedError" || error.name === "SecurityError") {
    return `Your ${device} is blocked for this page (to use it, allow it in your browser's site settings, then try again).`;
  }
  if (error.name === "NotFoundError" || error.name === "OverconstrainedError") {
    return `No ${device} was found.`;
  }
  if (error.name === "NotReadableError" || error.name === "AbortError") {
    return `Your ${device} is in use by another application or could not be started.`;
  }
  return `Your ${device} could not be started (${error.name}).`;
}

async function tryGet(constraints) {
  try {
    return { stream: await navigator.mediaDevices.getUserMedia(constraints), error: null };
  } catch (error) {
    return { stream: null, error };
  }
}

// Returns { stream, audio, video, messages } where audio/video are MediaStreamTracks or null.
export async function getLocalMedia({ testMode = false } = {}) {
  const audioConstraints = testMode
    ? { echoCancellation: false, noiseSuppression: false, autoGainControl: false }
    : { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  const videoConstraints = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30, max: 30 } };
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return {
      stream: new MediaStream(), audio: null, video: null,
      messages: ["This browser cannot use a camera or microphone on this page (it needs a secure https:// address)."],
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
