// The signaling WebSocket: JSON messages with a "type" (see docs/architecture.md and server/core/events.py).
// Events: "message" (detail: the decoded message) and "close" (detail: {code}), which fires when the connection ends
// or could not be made, but not after close() was called here.
// `node` is the base URL of the server node to connect to (another node's, when the room lives there: the server says
// so with the error "room_elsewhere"); by default, the server this page came from.
export class Signaling extends EventTarget {
  constructor(roomId, node = null) {
    super();
    const base = new URL(node || location.origin);
    const scheme = base.protocol === "https:" ? "wss" : "ws";
    const prefix = base.pathname.replace(/\/+$/, ""); // a node behind a proxy may live under a path
    this.url = `${scheme}://${base.host}${prefix}/ws/rooms/${encodeURIComponent(roomId)}`;
    this.ws = null;
    this.closedHere = false;
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
        if (this.closedHere) return;
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
    this.closedHere = true;
    if (this.ws) this.ws.close();
  }
}
