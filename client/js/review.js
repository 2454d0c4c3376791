// Reviewing a deliberation (/review/{id}), for its organiser and moderators: search what was said in all its rooms
// (each result opens the line in its room's transcript), and per room the transcript, statements with their votes,
// AI messages, flags, the AI call log and the moderator actions, everyone by alias; downloads of every export.
// Rendered with Preact + htm (vendored); text only through JSX, never as HTML.

import { html, useEffect, useState } from "/static/vendor/htm-preact-standalone.module.js";
import { formatDateTime, languageName, t } from "/static/js/i18n.js";
import { categoryName, kindName, outcomeName, seconds } from "/static/js/ai_words.js";
import { CrossRoomReport } from "/static/js/report.js";
import { ErrorLine, SignIn, api, startStaffPage, useSignedIn } from "/static/js/staff.js";

const deliberationId = decodeURIComponent(location.pathname.split("/").pop());

function clock(seconds) {
  const s = Math.max(0, seconds);
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(Math.floor(s % 60)).padStart(2, "0")}`;
}

// A statement's votes: "2 agree, 0 disagree, 1 pass".
function tally({ agree, disagree, pass }) {
  return [t("review.votes_agree", { count: agree }), t("review.votes_disagree", { count: disagree }),
    t("review.votes_pass", { count: pass })].join(", ");
}

function Search({ rooms, onOpen }) {
  const [results, setResults] = useState(null);
  const [error, setError] = useState("");
  const submit = async (event) => {
    event.preventDefault();
    const q = event.target.q.value.trim();
    if (!q) return;
    const r = await api("GET", `/api/deliberations/${deliberationId}/search?q=${encodeURIComponent(q)}`);
    setError(r.ok ? "" : r.error);
    setResults(r.ok ? r.data : null);
  };
  return html`
    <section class="card" aria-labelledby="search-heading">
      <h2 id="search-heading">${t("review.search_heading")}</h2>
      <form class="copy-row" role="search" onSubmit=${submit}>
        <label for="search-q" class="visually-hidden">${t("review.search_label")}</label>
        <input id="search-q" name="q" type="text" maxlength="200" placeholder=${t("review.search_placeholder")} />
        <button type="submit">${t("review.search")}</button>
      </form>
      <${ErrorLine} text=${error} />
      ${results !== null && html`
        <p role="status" id="search-count">${t("review.search_count", { count: results.length })}</p>
        <ul class="review-list" id="search-results">
          ${results.map((hit) => html`
            <li key=${`${hit.room_id}/${hit.utterance_id}`}>
              <strong>${hit.speaker}</strong> ${t("review.search_in_room", { room: hit.room_title })} ${hit.text}
              ${" "}<button type="button" class="link-button" onClick=${() => onOpen(hit.room_id, hit.utterance_id)}
                aria-label=${t("review.open_in_transcript", { room: hit.room_title })}
                >${t("review.open_in_context")}</button>
            </li>`)}
        </ul>`}
    </section>`;
}

function Downloads({ room }) {
  const files = [["transcript.vtt", "WebVTT"], ["transcript.srt", "SRT"], ["transcript.csv", "CSV"],
    ["transcript.json", "JSON"], ["report.md", t("review.markdown_report")]];
  return html`
    <p class="downloads">${t("review.download_room")} ${files.map(([file, label], i) => html`
      ${i > 0 ? " · " : ""}<a key=${file} href=${`/api/rooms/${room}/${file}`} download>${label}</a>`)}</p>`;
}

function RoomReview({ room, line }) {
  const [review, setReview] = useState(null);
  const [error, setError] = useState("");
  useEffect(() => {
    setReview(null);
    api("GET", `/api/rooms/${room}/review`).then((r) => (r.ok ? setReview(r.data) : setError(r.error)));
  }, [room]);
  useEffect(() => {
    if (review && line) {
      const element = document.getElementById(`line-${line}`);
      if (element) {
        element.scrollIntoView({ block: "center" });
        element.focus();
      }
    }
  }, [review, line]);
  if (review === null) return html`${error ? html`<${ErrorLine} text=${error} />` : html`<p class="hint">${t("ui.loading")}</p>`}`;
  const origin = review.transcript.length ? review.transcript[0].start : 0;
  const lineNumber = Object.fromEntries(review.transcript.map((c, i) => [c.utterance_id, i + 1]));
  const openLine = (event, uid) => { // an AI message's source: its line in the transcript above
    event.preventDefault();
    const element = document.getElementById(`line-${uid}`);
    if (element) {
      element.scrollIntoView({ block: "center" });
      element.focus();
    }
  };
  const flags = [...review.safety_flags.map((f) => ({ ...f, what: `${categoryName(f.category)} (${f.detected_by})` })),
    ...review.summary_flags.map((f) => ({ ...f, what: t("review.summary_point_disputed", { number: f.point + 1 }) }))];
  return html`
    <section aria-labelledby="room-heading">
      <h2 id="room-heading">${review.room.title}</h2>
      <${Downloads} room=${room} />
      <div class="card">
        <h3>${t("transcript.heading")}</h3>
        ${review.transcript.length === 0 ? html`<p class="hint">${t("review.nothing_said")}</p>` : html`
          <ol class="lines review-transcript">
            ${review.transcript.map((c) => html`
              <li key=${c.utterance_id} id=${`line-${c.utterance_id}`} tabindex="-1"
                class=${c.utterance_id === line ? "highlight" : ""}>
                <time>${clock(c.start - origin)}</time> <span class="speaker">${c.speaker_name}</span>
                ${c.language ? html` <span class="hint">(${languageName(c.language)})</span>` : ""}: <span lang=${c.language || null}>${c.text}</span>
                ${Object.entries(c.translations || {}).map(([language, text]) => html`
                  <div class="translation"><span class="hint">${languageName(language)},
                    ${" "}${t("captions.machine_translation")}:</span>
                    <span lang=${language}>${text}</span></div>`)}
              </li>`)}
          </ol>`}
      </div>
      <div class="card">
        <h3>${t("review.statements_heading")}</h3>
        ${review.statements.length === 0 ? html`<p class="hint">${t("review.no_statements")}</p>` : html`
          <ul class="review-list" id="review-statements">
            ${review.statements.map((s) => html`
              <li key=${s.statement_id}>${s.text} <span class="hint">(${s.author})</span>:
                ${` ${tally(s.tally)}`}</li>`)}
          </ul>`}
      </div>
      <div class="card">
        <h3>${t("review.ai_messages_heading")}</h3>
        ${review.ai_messages.length === 0 ? html`<p class="hint">${t("moderate.none")}</p>` : html`
          <ul class="review-list">
            ${review.ai_messages.map((m) => html`
              <li key=${m.message_id}><span class="hint">${kindName(m.kind)}${m.review ? `, ${m.review}` : ""}
                ${m.generated_by ? `, ${m.generated_by}` : ""}</span>: ${m.points && m.points.length
                ? html`${m.text.split("\n")[0]}
                  <ul class="ai-points">${m.points.map((p, i) => html`
                    <li key=${i}>${p.label}: ${p.text}
                      ${p.sources.length > 0 && html` <span class="hint">(${t("review.draws_on")}${p.sources.map(
                        (uid, j) => html`
                        ${j > 0 ? "," : ""} <a href=${`#line-${uid}`} onClick=${(event) => openLine(event, uid)}
                          >${t("review.line_number", { number: lineNumber[uid] ?? "?" })}</a>`)})</span>`}</li>`)}</ul>`
                : m.text}
                ${!(m.points && m.points.length) && m.sources && m.sources.length > 0 && html` <span class="hint"
                  >(${t("review.draws_on_lines", { count: m.sources.length })} ${m.sources.map((uid, j) => html`
                  ${j > 0 ? "," : ""} <a href=${`#line-${uid}`} onClick=${(event) => openLine(event, uid)}>${lineNumber[uid]
                  ?? "?"}</a>`)})</span>`}
              </li>`)}
          </ul>`}
        ${review.rejected_ai_messages.length > 0 && html`
          <p class="hint">${t("review.rejected_messages", { count: review.rejected_ai_messages.length })}</p>`}
      </div>
      <div class="card">
        <h3>${t("moderate.flags_heading")}</h3>
        ${flags.length === 0 ? html`<p class="hint">${t("moderate.none")}</p>` : html`
          <ul class="review-list">${flags.map((f, i) => html`
            <li key=${i}>${f.participant_id}: ${f.what}${f.reason ? ` (${f.reason})` : ""}${f.note ? `: ${f.note}` : ""}
            </li>`)}</ul>`}
      </div>
      <div class="card">
        <h3>${t("review.moderator_actions_heading")}</h3>
        ${review.moderator_actions.length === 0 ? html`<p class="hint">${t("moderate.none")}</p>` : html`
          <ul class="review-list" id="moderator-actions">${review.moderator_actions.map((a, i) => html`
            <li key=${i}><time>${formatDateTime(a.at)}</time> ${a.who || t("review.deleted_account")}: ${a.action}
              ${a.detail ? html` <span class="hint">(${a.detail})</span>` : ""}</li>`)}</ul>`}
      </div>
      <div class="card">
        <h3>${t("review.ai_calls_heading")}</h3>
        ${review.llm_calls.length === 0 ? html`<p class="hint">${t("moderate.none")}</p>`
          : review.llm_calls.map((call, i) => html`
          <details key=${i}>
            <summary>${formatDateTime(call.at)}: ${call.purpose}, ${call.model}, ${seconds(call.latency_s)},
              ${" "}${outcomeName(call.outcome)}
            </summary>
            ${call.messages.map((m, j) => html`<p key=${j}><strong>${m.role}</strong>: ${m.content}</p>`)}
            <p><strong>${t("review.output")}</strong>: ${call.output}</p>
          </details>`)}
      </div>
    </section>`;
}

function Review() {
  const [deliberation, setDeliberation] = useState(null);
  const [rooms, setRooms] = useState([]);
  const [error, setError] = useState("");
  const [selected, setSelected] = useState({ room: null, line: null });
  useEffect(() => {
    api("GET", `/api/deliberations/${encodeURIComponent(deliberationId)}`).then((r) => (r.ok ? setDeliberation(r.data)
      : setError(r.status === 404 ? t("review.not_found") : r.error)));
    api("GET", `/api/deliberations/${encodeURIComponent(deliberationId)}/lobby`).then((r) => {
      if (r.ok) {
        setRooms(r.data.rooms);
        if (r.data.rooms.length) setSelected((s) => (s.room ? s : { room: r.data.rooms[0].room_id, line: null }));
      }
    });
  }, []);
  if (deliberation === null) return html`<section class="narrow wide">
    ${error ? html`<${ErrorLine} text=${error} />` : html`<p class="hint">${t("ui.loading")}</p>`}</section>`;
  const polis = ["comments.csv", "votes.csv", "participants-votes.csv", "summary.csv"];
  return html`
    <section class="narrow wide" aria-labelledby="review-heading">
      <p><a href=${`/organise/${deliberation.id}`}>${t("review.deliberation_page")}</a></p>
      <h1 id="review-heading">${t("review.heading", { title: deliberation.title })}</h1>
      <p class="hint">${t("review.alias_hint")}</p>
      <p class="downloads">${t("review.polis_downloads")} ${polis.map((file, i) => html`
        ${i > 0 ? " · " : ""}<a key=${file} href=${`/api/deliberations/${deliberation.id}/polis/${file}`}
          download>${file}</a>`)}</p>
      <${Search} rooms=${rooms} onOpen=${(room, line) => setSelected({ room, line })} />
      <${CrossRoomReport} deliberationId=${deliberation.id} onOpen=${(room, line) => setSelected({ room, line })} />
      ${rooms.length === 0 ? html`<p class="hint">${t("review.no_rooms")}</p>` : html`
        <nav aria-label=${t("review.rooms")} class="button-row">
          ${rooms.map((r) => html`<button key=${r.room_id} type="button" aria-pressed=${selected.room === r.room_id}
            onClick=${() => setSelected({ room: r.room_id, line: null })}>${r.title}</button>`)}
        </nav>`}
      ${selected.room && html`<${RoomReview} key=${selected.room} room=${selected.room} line=${selected.line} />`}
    </section>`;
}

function App() {
  const [me, setMe] = useSignedIn();
  if (me === undefined) return html`<p class="hint">${t("ui.loading")}</p>`;
  if (me === null) return html`<${SignIn} onSignedIn=${setMe} />`;
  return html`<${Review} />`;
}

startStaffPage(App, document.getElementById("main"));
