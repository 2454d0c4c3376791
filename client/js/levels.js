// Audio levels through the Web Audio API: the microphone meter on the join page and the "is speaking" highlight
// from the sound of each participant's audio (the server's voice.activity events add to it, see tiles.js).

const INTERVAL_MS = 100;
const SPEAKING_RMS = 0.02; // RMS of a float signal in [-1, 1]; quiet speech is around 0.03, room noise below 0.01
const HANGOVER_MS = 600; // keep "speaking" through the short gaps between words

export class LevelMonitor {
  // onSpeaking(key, speaking) is called on changes; onLevel(key, rms) on every tick.
  constructor({ onSpeaking = () => {}, onLevel = () => {} } = {}) {
    this.onSpeaking = onSpeaking;
    this.onLevel = onLevel;
    this.context = null;
    this.watched = new Map(); // key -> {track, source, analyser, buffer, speaking, loudAt}
    this.timer = null;
  }

  ensureContext() {
    if (this.context) return this.context;
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return null;
    this.context = new Context();
    // A context made before any user gesture starts suspended; the first click or key press resumes it.
    const resume = () => this.context && this.context.state === "suspended" && this.context.resume();
    document.addEventListener("pointerdown", resume, { once: true, capture: true });
    document.addEventListener("keydown", resume, { once: true, capture: true });
    return this.context;
  }

  watch(key, track) {
    const current = this.watched.get(key);
    if (current && current.track === track) return;
    this.unwatch(key);
    if (!track) return;
    const context = this.ensureContext();
    if (!context) return;
    try {
      const source = context.createMediaStreamSource(new MediaStream([track]));
      const analyser = context.createAnalyser();
      analyser.fftSize = 1024;
      source.connect(analyser); // analysed only, never played: playback is the page's <audio> elements
      this.watched.set(key, { track, source, analyser, buffer: new Float32Array(analyser.fftSize), speaking: false, loudAt: 0 });
    } catch {
      return; // levels are a nicety; the server's voice activity still drives the highlight
    }
    if (!this.timer) this.timer = setInterval(() => this.tick(), INTERVAL_MS);
  }

  unwatch(key) {
    const entry = this.watched.get(key);
    if (!entry) return;
    entry.source.disconnect();
    this.watched.delete(key);
    if (entry.speaking) this.onSpeaking(key, false);
  }

  // Stop watching every key not in `keys`.
  keep(keys) {
    for (const key of [...this.watched.keys()]) if (!keys.has(key)) this.unwatch(key);
  }

  tick() {
    const now = performance.now();
    for (const [key, entry] of this.watched) {
      entry.analyser.getFloatTimeDomainData(entry.buffer);
      let sum = 0;
      for (const sample of entry.buffer) sum += sample * sample;
      const rms = Math.sqrt(sum / entry.buffer.length);
      const live = entry.track.readyState === "live" && entry.track.enabled;
      if (live && rms >= SPEAKING_RMS) entry.loudAt = now;
      const speaking = live && now - entry.loudAt < HANGOVER_MS;
      if (speaking !== entry.speaking) {
        entry.speaking = speaking;
        this.onSpeaking(key, speaking);
      }
      this.onLevel(key, live ? rms : 0);
    }
  }

  close() {
    for (const key of [...this.watched.keys()]) this.unwatch(key);
    clearInterval(this.timer);
    this.timer = null;
    if (this.context) this.context.close();
    this.context = null;
  }
}
