// The signaling WebSocket: JSON messages with a "type" (see docs/architecture.md and server/events.py).
export class Signaling extends EventTarget {
  constructor(roomId) {
    super();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    this.url = `${scheme}://${location.host}/ws/rooms/${encodeURIComponent(roomId)}`;
    this.ws = null;
  }

  connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener("error", () => reject(new Error("could not connect")), { once: true });
      ws.addEventListener("message", (event) => {
        let message;
        try {
          message = JSON.parse(event.data);
        } catch {
          return; // the server only sends JSON; ignore anything else
        }
        this.dispatchEvent(new CustomEvent("message", { detail: message }));
      });
      ws.addEventListener("close", (event) => {
        this.dispatchEvent(new CustomEvent("close", { detail: { code: event.code } }));
      });
    });
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
    }
  }

  close() {
    if (this.ws) this.ws.close();
  }
}
