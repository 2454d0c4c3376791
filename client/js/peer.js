// The browser's one RTCPeerConnection with the server. The server is always the offerer (docs/architecture.md):
// every offer is answered here, at any time, one after another. Our publishing slots are the first audio and video
// m-lines the offer does not list in `offer.tracks`; every listed m-line carries another participant's media.

const ICE_GATHERING_LIMIT_MS = 10_000; // the server waits negotiation_timeout_s (20 s by default) for an answer

function isStopped(transceiver) {
  return transceiver.stopped === true || transceiver.currentDirection === "stopped";
}

// Resolves when ICE gathering is complete (no trickle ICE: candidates travel inside the answer), or after a limit, so
// a slow STUN/TURN server delays the answer instead of losing it.
function iceGatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(finish, ICE_GATHERING_LIMIT_MS);
    function finish() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") finish();
    }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

// Events: "tracks" (which remote tracks belong to whom may have changed), "state" (detail: connectionState).
export class RoomPeer extends EventTarget {
  constructor({ iceServers, sendAnswer, localTrack }) {
    super();
    this.sendAnswer = sendAnswer;
    this.localTrack = localTrack; // (kind) => MediaStreamTrack | null, read at every negotiation
    this.owners = new Map(); // mid -> {participant_id, kind}
    this.queue = Promise.resolve();
    this.closed = false;
    this.pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
    this.pc.addEventListener("track", () => this.dispatchEvent(new Event("tracks")));
    this.pc.addEventListener("connectionstatechange", () => {
      this.dispatchEvent(new CustomEvent("state", { detail: this.pc.connectionState }));
    });
  }

  // Offers are applied strictly in arrival order, even if one arrives while the previous answer is being prepared.
  handleOffer(offer) {
    const next = this.queue.then(() => this.answer(offer));
    this.queue = next.catch(() => {}); // a failed offer must not block later ones
    return next;
  }

  async answer({ sdp, tracks }) {
    if (this.closed) return;
    const pc = this.pc;
    await pc.setRemoteDescription({ type: "offer", sdp });
    this.owners = new Map(Object.entries(tracks || {}));
    const publishing = {};
    for (const transceiver of pc.getTransceivers()) {
      if (isStopped(transceiver) || transceiver.mid === null) continue;
      const kind = transceiver.receiver.track.kind;
      if (this.owners.has(transceiver.mid)) {
        transceiver.direction = "recvonly";
      } else if (!publishing[kind]) {
        publishing[kind] = transceiver;
      } else {
        transceiver.direction = "inactive"; // a slot the server freed when someone left; it may reuse it later
      }
    }
    for (const [kind, transceiver] of Object.entries(publishing)) {
      const track = this.localTrack(kind);
      if (transceiver.sender.track !== track) await transceiver.sender.replaceTrack(track);
      // Without a device the slot stays unused, so the server publishes nothing for it.
      transceiver.direction = track ? "sendonly" : "inactive";
    }
    await pc.setLocalDescription(await pc.createAnswer());
    await iceGatheringComplete(pc);
    if (this.closed) return;
    this.sendAnswer(pc.localDescription.sdp);
    this.dispatchEvent(new Event("tracks"));
  }

  // participant id -> {audio?: MediaStreamTrack, video?: MediaStreamTrack} for the media the server sends us now.
  remoteTracks() {
    const byParticipant = new Map();
    for (const transceiver of this.pc.getTransceivers()) {
      const owner = this.owners.get(transceiver.mid);
      if (!owner || isStopped(transceiver)) continue;
      const entry = byParticipant.get(owner.participant_id) || {};
      entry[owner.kind] = transceiver.receiver.track;
      byParticipant.set(owner.participant_id, entry);
    }
    return byParticipant;
  }

  close() {
    this.closed = true;
    this.pc.close();
  }
}
