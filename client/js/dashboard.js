// The moderators' live dashboard (/dashboard/{deliberation id}): every room of a deliberation at a glance, pushed by
// the server over a WebSocket (a snapshot, then the rooms that changed): who is in each room and how their connection
// is (packet loss, round trip, no audio), the stage and its time left, whether the AI is paused, speaking-time
// balance, calls for a moderator (take them here), AI messages waiting for approval, flags and the latest captions.
// Step in from here: message one room or all, pause or resume the AI in one room or all; the room's own controls
// (/moderate/{room}) for approving AI messages and reading flags. Reconnects by itself with a fresh snapshot.
// Rendered with Preact + htm (vendored); text only through JSX, its words from the locale files (i18n.js): a switch of
// the interface language re-renders every card. Each render's time is kept in window.mootDashboard (the dashboard
// benchmark reads it).

import {
  Component, html, useEffect, useLayoutEffect, useMemo, useRef, useState,
} from "/static/vendor/htm-preact-standalone.module.js";
import { currentLocale, t } from "/static/js/i18n.js";
import { ErrorLine, SignIn, StepIn, api, startStaffPage, useSignedIn, withElements } from "/static/js/staff.js";

const deliberationId = decodeURIComponent(location.pathname.split("/").pop());
// renders: [performance.now() when done, ms from the message's arrival to the DOM updated], one per rendered message.
const stats = { messages: 0, renders: [], worstRenderMs: 0, cards: 0, connected: false };
window.mootDashboard = stats;

function clock(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

// A participant's connection alert ({code, value} from the server) in the interface's words.
function alertWords(alert) {
  if (alert.code === "connection_failed") return t("dashboard.alert_connection_failed");
  if (alert.code === "connection_disconnected") return t("dashboard.alert_disconnected");
  if (alert.code === "no_audio") return t("dashboard.alert_no_audio", { seconds: alert.value });
  if (alert.code === "packet_loss") return t("dashboard.alert_packet_loss", { percent: alert.value });
  if (alert.code === "round_trip") return t("dashboard.alert_round_trip", { ms: alert.value });
  return alert.code;
}

// Room titles in the interface language's order, numbers by value ("Room 2" before "Room 10").
function byTitle(a, b) {
  return a.title.localeCompare(b.title, currentLocale(), { numeric: true });
}

// The live connection: rooms by id, the deliberation, the clock offset to the server, and the connection state.
function useLiveRooms(enabled) {
  const [state, setState] = useState({ rooms: new Map(), deliberation: null, offset: 0, status: "connecting",
    refused: "", received: 0 });
  useEffect(() => {
    if (!enabled) return undefined;
    let socket = null;
    let retry = null;
    let attempt = 0;
    let stopped = false;
    let ping = null;
    const connect = () => {
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      socket = new WebSocket(`${scheme}://${location.host}/ws/deliberations/${encodeURIComponent(deliberationId)}/dashboard`);
      socket.onmessage = (event) => {
        let message;
        try {
          message = JSON.parse(event.data);
        } catch {
          return;
        }
        stats.messages += 1;
        if (stats.pendingSince === undefined && (message.type === "snapshot" || message.type === "rooms")) {
          stats.pendingSince = performance.now(); // the oldest change not yet shown
        }
        if (message.type === "snapshot") {
          attempt = 0;
          stats.connected = true;
          setState((s) => ({ ...s, rooms: new Map(message.rooms.map((card) => [card.room_id, card])),
            deliberation: message.deliberation, offset: message.server_time - Date.now() / 1000, status: "live",
            received: s.received + 1 }));
        } else if (message.type === "rooms") {
          setState((s) => {
            const rooms = new Map(s.rooms);
            for (const card of message.rooms) rooms.set(card.room_id, card);
            return { ...s, rooms, received: s.received + 1 };
          });
        } else if (message.type === "error") {
          stopped = message.code !== "bad_origin" ? stopped : true;
          setState((s) => ({ ...s, refused: message.code, status: "refused" }));
        }
      };
      socket.onclose = (event) => {
        stats.connected = false;
        if (stopped || [4401, 4403, 4404].includes(event.code)) {
          setState((s) => ({ ...s, status: "refused", refused: s.refused || String(event.code) }));
          return;
        }
        attempt += 1;
        const wait = Math.min(15, 2 ** Math.min(attempt - 1, 4)) * (0.75 + Math.random() / 2);
        setState((s) => ({ ...s, status: "reconnecting", retryIn: Math.ceil(wait) }));
        retry = setTimeout(connect, wait * 1000);
      };
    };
    connect();
    ping = setInterval(() => {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "ping" }));
    }, 20000);
    return () => {
      stopped = true;
      clearTimeout(retry);
      clearInterval(ping);
      if (socket) socket.close();
    };
  }, [enabled]);
  return state;
}

function useNow(offset) {
  const [now, setNow] = useState(Date.now() / 1000 + offset);
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now() / 1000 + offset), 1000);
    return () => clearInterval(timer);
  }, [offset]);
  return now;
}

// One participant: connection health and speaking share; a moderator's actions (mute, move, remove) behind a
// disclosure so the card stays easy to scan.
function Person({ person, most, roomId, rooms, onError, onDone }) {
  const share = most > 0 ? Math.round((person.speaking_s / most) * 100) : 0;
  const media = `${person.audio ? t("dashboard.mic_on") : t("dashboard.mic_off")}, ${
    person.video ? t("dashboard.camera_on") : t("dashboard.camera_off")}`;
  const numbers = [person.loss !== null ? t("dashboard.loss", { percent: Math.round(person.loss * 100) }) : null,
    person.rtt_ms !== null ? t("dashboard.rtt", { ms: Math.round(person.rtt_ms) }) : null].filter(Boolean).join(" · ");
  const [confirmRemove, setConfirmRemove] = useState(false);
  const others = rooms.filter((r) => r.id !== roomId);
  const act = async (action, body, said) => {
    const r = await api("POST", `/api/rooms/${roomId}/participants/${person.participant_id}/${action}`, body);
    if (r.ok) onDone(said);
    else onError(r.error);
  };
  const move = (event) => {
    event.preventDefault();
    const to = event.target.to.value;
    const title = (others.find((r) => r.id === to) || {}).title || t("dashboard.another_room");
    act("move", { to_room: to }, t("dashboard.moving", { name: person.name, room: title }));
  };
  return html`
    <li class=${person.alerts.length ? "person alert" : "person"}>
      <span class="person-name"><bdi>${person.name}</bdi></span>
      <span class="hint"> ${media}${numbers ? ` · ${numbers}` : ""}</span>
      ${person.alerts.map((alert) => html`<span key=${alert.code} class="badge-alert"> ${alertWords(alert)}</span>`)}
      <span class="speaking-track" role="img" aria-label=${t("dashboard.spoke", { time: clock(person.speaking_s) })}>
        <span class="speaking-bar" style=${{ width: `${share}%` }}></span></span>
      <details class="person-actions">
        <summary>${withElements(t("dashboard.act_on"), { name: html`<bdi>${person.name}</bdi>` })}</summary>
        <div class="button-row">
          ${person.audio && html`<button type="button" onClick=${() => act("mute", undefined,
            t("dashboard.muted", { name: person.name }))}>${t("dashboard.mute")}</button>`}
          ${!confirmRemove && html`<button type="button" class="danger" onClick=${() => setConfirmRemove(true)}>
            ${t("dashboard.remove")}</button>`}
          ${confirmRemove && html`<button type="button" class="danger" onClick=${() => act("remove", undefined,
            t("dashboard.removed", { name: person.name }))}>${withElements(t("dashboard.remove_for_good"),
            { name: html`<bdi>${person.name}</bdi>` })}</button>
            <button type="button" onClick=${() => setConfirmRemove(false)}>${t("dashboard.keep")}</button>`}
        </div>
        ${others.length > 0 && html`
          <form class="copy-row" onSubmit=${move}>
            <label for=${`move-${person.participant_id}`}>${t("dashboard.move_to")}</label>
            <select id=${`move-${person.participant_id}`} name="to">
              ${others.map((r) => html`<option key=${r.id} value=${r.id}>${r.title}</option>`)}
            </select>
            <button type="submit">${t("dashboard.move")}</button>
          </form>`}
      </details>
    </li>`;
}

// The time left in a stage, ticking by itself (only this text re-renders every second, not the whole dashboard).
function TimeLeft({ endsAt, offset }) {
  const now = useNow(offset);
  return ` · ${t("dashboard.time_left", { time: clock(endsAt - now) })}`;
}

function StageLine({ card, offset }) {
  if (!card.stage) {
    return html`<p class="stage-line">${card.ai_paused ? t("dashboard.ai_paused") : t("dashboard.no_stage")}</p>`;
  }
  return html`<p class="stage-line">${card.stage.title}${card.ai_paused || card.stage.paused
    ? ` · ${t("dashboard.ai_paused")}`
    : html`<${TimeLeft} endsAt=${card.stage.ends_at} offset=${offset} />`}</p>`;
}

// A card re-renders only when its room changed (the server sends a new card object then), the clock offset did, or the
// interface language.
class Room extends Component {
  shouldComponentUpdate(next) {
    return next.card !== this.props.card || next.offset !== this.props.offset || next.rooms !== this.props.rooms
      || next.locale !== this.props.locale;
  }

  render(props) {
    return html`<${RoomCard} ...${props} />`;
  }
}

function RoomCard({ card, offset, rooms, onError, onDone }) {
  const most = Math.max(0, ...card.participants.map((p) => p.speaking_s));
  const [messageOpen, setMessageOpen] = useState(false);
  const [confirmEnd, setConfirmEnd] = useState(false);
  const end = async () => {
    setConfirmEnd(false);
    const r = await api("POST", `/api/rooms/${card.room_id}/end`);
    if (r.ok) onDone(t("dashboard.room_ended", { room: card.title }));
    else onError(r.error);
  };
  const take = async (call) => {
    const r = await api("POST", `/api/rooms/${card.room_id}/help-requests/${call.request_id}/take`);
    if (r.ok) onDone(t("dashboard.call_taken", { name: call.participant_name, room: card.title }));
    else onError(r.error);
  };
  const facilitator = async (action) => {
    const r = await api("POST", `/api/rooms/${card.room_id}/facilitator/${action}`);
    if (r.ok && action === "pause") onDone(t("dashboard.ai_paused_in", { room: card.title }));
    else if (r.ok) onDone(t("dashboard.ai_resumed_in", { room: card.title }));
    else onError(r.error);
  };
  const send = async (event) => {
    event.preventDefault();
    const text = event.target.text.value.trim();
    if (!text) return;
    const r = await api("POST", `/api/rooms/${card.room_id}/messages`, { text });
    if (!r.ok) {
      onError(r.error);
      return;
    }
    event.target.reset();
    setMessageOpen(false);
    onDone(t("dashboard.message_sent", { room: card.title }));
  };
  const headingId = `room-${card.room_id}-heading`;
  return html`
    <article class=${card.alerts ? "card room-card needs-attention" : "card room-card"} aria-labelledby=${headingId}
      data-room=${card.room_id}>
      <h2 id=${headingId}>${card.title}
        ${card.alerts > 0 && html`<span class="count"> · ${t("dashboard.alerts", { count: card.alerts })}</span>`}
      </h2>
      <${StageLine} card=${card} offset=${offset} />
      ${card.help.length > 0 && html`
        <ul class="help-calls" aria-label=${t("dashboard.help_calls")}>
          ${card.help.map((call) => html`
            <li key=${call.request_id} class="help-call">
              ${withElements(call.note ? t("dashboard.calls_with_note") : t("dashboard.calls"),
                { name: html`<strong><bdi>${call.participant_name}</bdi></strong>`, note: call.note })}
              ${" "}<button type="button" class="link-button" onClick=${() => take(call)}
                aria-label=${t("dashboard.take_call", { name: call.participant_name })}>${t("dashboard.take")}</button>
            </li>`)}
        </ul>`}
      <h3 class="visually-hidden">${t("dashboard.participants")}</h3>
      ${card.participants.length
        ? html`<ul class="people">${card.participants.map((p) => html`<${Person} key=${p.participant_id} person=${p}
            most=${most} roomId=${card.room_id} rooms=${rooms} onError=${onError} onDone=${onDone} />`)}</ul>`
        : html`<p class="hint">${t("dashboard.nobody")}</p>`}
      <p class="hint room-counters">
        ${card.queued_ai > 0 ? html`<a href=${`/moderate/${card.room_id}`}>${t("dashboard.queued_ai",
          { count: card.queued_ai })}</a>` : t("dashboard.no_queued_ai")}
        ${" · "}${card.flags > 0 ? html`<a href=${`/moderate/${card.room_id}`}>${t("dashboard.flags",
          { count: card.flags })}</a>` : t("dashboard.no_flags")}
        ${card.observers > 0 ? ` · ${t("dashboard.observing", { count: card.observers })}` : ""}
        ${card.status_at === null && card.participants.length > 0 ? ` · ${t("dashboard.health_unknown")}` : ""}
      </p>
      ${card.captions.length > 0 && html`
        <h3 class="visually-hidden">${t("dashboard.latest_captions")}</h3>
        <ul class="latest-captions">
          ${card.captions.map((line) => html`<li key=${line.utterance_id}><strong><bdi>${line.speaker}</bdi></strong>:
            ${" "}${line.text}</li>`)}
        </ul>`}
      <div class="button-row">
        <button type="button" onClick=${() => setMessageOpen(!messageOpen)} aria-expanded=${messageOpen}>
          ${t("dashboard.message_room")}</button>
        ${card.ai_paused
          ? html`<button type="button" onClick=${() => facilitator("resume")}>${t("dashboard.resume_ai")}</button>`
          : html`<button type="button" onClick=${() => facilitator("pause")}>${t("dashboard.pause_ai")}</button>`}
        <a class="button-link" href=${`/r/${card.room_id}?observe`} target="_blank" rel="noopener">
          ${t("dashboard.observe")}</a>
        <a class="button-link" href=${`/moderate/${card.room_id}`}>${t("dashboard.room_controls")}</a>
        ${!confirmEnd && html`<button type="button" class="danger" onClick=${() => setConfirmEnd(true)}>
          ${t("dashboard.end_room")}</button>`}
      </div>
      ${confirmEnd && html`
        <p class="warning" role="alert">${t("dashboard.end_warning", { room: card.title })}</p>
        <div class="button-row">
          <button type="button" class="danger" onClick=${end}>${t("dashboard.end_named", { room: card.title })}</button>
          <button type="button" onClick=${() => setConfirmEnd(false)}>${t("dashboard.keep_going")}</button>
        </div>`}
      ${messageOpen && html`
        <form class="message-form" onSubmit=${send}>
          <label for=${`message-${card.room_id}`}>${t("dashboard.message_label", { room: card.title })}</label>
          <textarea id=${`message-${card.room_id}`} name="text" rows="2" maxlength="1000"></textarea>
          <button type="submit">${t("dashboard.send")}</button>
        </form>`}
    </article>`;
}

function Dashboard({ locale }) {
  const [me, setMe] = useSignedIn();
  const live = useLiveRooms(Boolean(me));
  const [error, setError] = useState("");
  const [done, setDone] = useState("");
  const [attentionOnly, setAttentionOnly] = useState(false);
  const rendered = useRef(0);
  const roomKey = [...live.rooms.values()].map((c) => `${c.room_id}\u0000${c.title}`).sort().join("\u0001");
  // The list of rooms to move people to: the same array while the rooms stay the same (cards compare it).
  const roomChoices = useMemo(() => [...live.rooms.values()].map((c) => ({ id: c.room_id, title: c.title }))
    .sort(byTitle), [roomKey, locale]);
  const showError = (text) => { setDone(""); setError(text); };
  const showDone = (text) => { setError(""); setDone(text); };
  useLayoutEffect(() => {
    if (stats.pendingSince !== undefined && live.received !== rendered.current) {
      rendered.current = live.received;
      const ms = performance.now() - stats.pendingSince;
      stats.pendingSince = undefined;
      if (stats.renders.length < 100000) stats.renders.push([performance.now(), ms]);
      stats.worstRenderMs = Math.max(stats.worstRenderMs, ms);
      stats.cards = live.rooms.size;
    }
  });
  if (me === undefined) return html`<p class="hint">${t("ui.loading")}</p>`;
  if (me === null) return html`<${SignIn} onSignedIn=${setMe} />`;
  if (live.status === "refused") {
    const why = live.refused === "sign_in" || live.refused === "4401" ? t("dashboard.session_ended")
      : t("dashboard.refused");
    return html`<${ErrorLine} text=${why} />`;
  }
  const cards = [...live.rooms.values()].sort(byTitle);
  const shown = attentionOnly ? cards.filter((c) => c.alerts > 0 || c.queued_ai > 0) : cards;
  const alerts = cards.reduce((n, c) => n + c.alerts, 0);
  const people = cards.reduce((n, c) => n + c.participants.length, 0);
  return html`
    <section aria-labelledby="dashboard-heading">
      <h1 id="dashboard-heading">${live.deliberation ? live.deliberation.title : t("dashboard.title")}</h1>
      <p class=${live.status === "live" ? "status" : "status warning"} role="status" id="live-status">
        ${live.status === "live" ? t("dashboard.live") : live.status === "connecting" ? t("dashboard.connecting")
          : t("dashboard.connection_lost", { seconds: live.retryIn })}
        ${" · "}${t("dashboard.rooms", { count: cards.length })} · ${t("dashboard.people", { count: people })}
        ${" · "}<span id="alert-total">${t("dashboard.alerts", { count: alerts })}</span>
      </p>
      <${ErrorLine} text=${error} />
      ${done && html`<p role="status" id="dashboard-result">${done}</p>`}
      ${live.deliberation && live.deliberation.status !== "closed" && html`
        <${StepIn} deliberation=${live.deliberation} onError=${setError} />`}
      <p><label><input type="checkbox" checked=${attentionOnly}
        onChange=${(event) => setAttentionOnly(event.target.checked)} /> ${t("dashboard.attention_only")}</label>
        ${" · "}<a href=${`/review/${deliberationId}`}>${t("dashboard.review")}</a></p>
      <div class="room-grid" id="rooms">
        ${shown.map((card) => html`<${Room} key=${card.room_id} card=${card} offset=${live.offset} rooms=${roomChoices}
          locale=${locale} onError=${showError} onDone=${showDone} />`)}
      </div>
      ${cards.length === 0 && live.status === "live" && html`<p class="hint">${t("dashboard.no_rooms")}</p>`}
    </section>`;
}

startStaffPage(Dashboard, document.getElementById("main"));
