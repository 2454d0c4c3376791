// The cross-room report on the review page: built by a background job on the server (this page starts it and follows
// its progress), then shown: opinion groups with their representative statements, statements agreed across groups
// and those that divide (bar charts with text alternatives), themes named by quotes (each source opens in its room's
// transcript), and participation per room. It prints cleanly (app.css has a print stylesheet).
// Rendered with Preact + htm (vendored); text only through JSX.

import { html, useEffect, useState } from "/static/vendor/htm-preact-standalone.module.js";
import { ErrorLine, api } from "/static/js/staff.js";

const GROUP_NAMES = "ABCDEFGH";
const groupName = (id) => `Group ${GROUP_NAMES[id] || id}`;
const percent = (share) => `${Math.round(share * 100)}%`;
const alias = (polisNumber) => `Participant ${polisNumber + 1}`; // Polis numbers from 0, aliases from 1

// One horizontal bar per opinion group: the share of the group that agrees.
function GroupBars({ score }) {
  const groups = Object.entries(score.group_agree || {}).sort(([a], [b]) => Number(a) - Number(b));
  if (!groups.length) return null;
  const label = groups.map(([g, share]) => `${groupName(Number(g))} ${percent(share)} agree`).join(", ");
  const rowHeight = 14;
  return html`
    <svg class="group-bars" role="img" aria-label=${label} width="220" height=${groups.length * rowHeight}
      viewBox=${`0 0 220 ${groups.length * rowHeight}`}>
      ${groups.map(([g, share], i) => html`
        <g key=${g}>
          <text x="0" y=${i * rowHeight + 11} class="bar-label">${GROUP_NAMES[Number(g)] || g}</text>
          <rect x="16" y=${i * rowHeight + 2} width="160" height="10" class="bar-track"></rect>
          <rect x="16" y=${i * rowHeight + 2} width=${Math.max(1, 160 * share)} height="10"
            class=${`bar-fill group-${Number(g) % 8}`}></rect>
          <text x="182" y=${i * rowHeight + 11} class="bar-label">${percent(share)}</text>
        </g>`)}
    </svg>`;
}

// A small bar for a share between 0 and 1 (its value is also written next to it).
function Meter({ value, label }) {
  return html`<svg class="meter-bar" role="img" aria-label=${label} width="80" height="10" viewBox="0 0 80 10">
    <rect x="0" y="0" width="80" height="10" class="bar-track"></rect>
    <rect x="0" y="0" width=${Math.max(1, 80 * value)} height="10" class="bar-fill"></rect></svg>`;
}

function StatementList({ id, scores, measure }) {
  if (!scores.length) return html`<p class="hint">None.</p>`;
  return html`
    <ol class="review-list report-statements" id=${id}>
      ${scores.map((s) => html`
        <li key=${s.statement_id}>
          <p>${s.text} <span class="hint">(#${s.statement_id}, ${s.votes} votes, ${percent(s.agree)} agree${measure(s)})</span></p>
          <${GroupBars} score=${s} />
        </li>`)}
    </ol>`;
}

function Themes({ themes, note, onOpen }) {
  if (!themes.length) return html`<p class="hint">${note || "No themes."}</p>`;
  return html`
    <ol class="review-list" id="report-themes">
      ${themes.map((t, i) => html`
        <li key=${i}>
          <p><strong>${t.named_by.startsWith("llm:") ? t.label : `“${t.label}”`}</strong> <span class="hint">(${t.size} contributions from ${t.speakers}
            ${t.speakers === 1 ? "person" : "people"} in ${t.rooms.length} room${t.rooms.length === 1 ? "" : "s"};
            ${t.named_by.startsWith("llm:") ? `named by a language model (${t.named_by.slice(4)}): check it against the
            sources` : "named by its most central quote"})</span></p>
          <details>
            <summary>Sources</summary>
            <ul>
              ${t.sources.map((s) => html`
                <li key=${s.source_id}>${s.speaker} (${s.kind}): ${s.text}
                  ${s.kind === "utterance" && html` <button type="button" class="link-button"
                    onClick=${() => onOpen(s.room_id, s.source_id)}>open in context</button>`}</li>`)}
            </ul>
          </details>
        </li>`)}
    </ol>`;
}

function Participation({ rooms }) {
  return html`
    <table class="report-table" id="report-participation">
      <caption>Participation per room (balance: 1 when everyone spoke as long, towards 0 when one person did)</caption>
      <thead><tr><th scope="col">Room</th><th scope="col">People</th><th scope="col">Spoke</th>
        <th scope="col">Lines</th><th scope="col">Statements</th><th scope="col">Votes</th>
        <th scope="col">Balance</th></tr></thead>
      <tbody>
        ${rooms.map((r) => html`
          <tr key=${r.room_id}><th scope="row">${r.title}</th><td>${r.participants}</td><td>${r.speakers}</td>
            <td>${r.utterances}</td><td>${r.statements}</td><td>${r.votes}</td>
            <td>${r.balance === null ? "–" : html`${r.balance.toFixed(2)} <${Meter} value=${r.balance}
              label=${`speaking balance ${r.balance.toFixed(2)} of 1`} />`}</td></tr>`)}
      </tbody>
    </table>`;
}

function Report({ report, onOpen }) {
  const o = report.opinions;
  return html`
    <div class="report">
      <p class="hint">Built ${new Date(report.generated_at * 1000).toLocaleString()}: ${o.participants} voters,
        ${" "}${o.statements} statements, ${o.votes} votes; ${o.clustered} placed in ${o.groups.length} opinion
        ${" "}group${o.groups.length === 1 ? "" : "s"} (those with at least ${o.min_votes} votes, Polis' rule).
        Computed with red-dwarf, the Polis community's implementation of Polis' method.</p>
      ${o.note && html`<p class="warning">${o.note}</p>`}
      <h3>Opinion groups</h3>
      ${o.groups.length === 0 ? html`<p class="hint">None.</p>` : html`
        <ul class="review-list" id="report-groups">
          ${o.groups.map((g) => html`
            <li key=${g.group_id}><strong>${groupName(g.group_id)}</strong> (${g.members.length} people:
              ${" "}${g.members.map(alias).join(", ")})
              ${g.representative.length > 0 && html`
                <ul>${g.representative.map((r) => html`<li key=${r.statement_id}>${r.repful_for === "agree"
                  ? "Agrees more than others" : "Disagrees more than others"} (${r.in_group} of ${r.of_group}):
                  ${" "}${r.text}</li>`)}</ul>`}
            </li>`)}
        </ul>`}
      <h3>Agreed across groups</h3>
      <${StatementList} id="report-consensus" scores=${o.ranked_consensus.slice(0, 5)}
        measure=${(s) => (s.group_informed_consensus === null ? "" : `, group-informed consensus ${s.group_informed_consensus.toFixed(3)}`)} />
      <h3>Dividing the groups</h3>
      <${StatementList} id="report-divisive" scores=${o.ranked_divisive.slice(0, 5)}
        measure=${(s) => (s.divide === null ? "" : `, groups ${percent(s.divide)} apart`)} />
      <h3>Themes across rooms</h3>
      <${Themes} themes=${report.themes} note=${report.themes_note} onOpen=${onOpen} />
      <h3>Participation</h3>
      <${Participation} rooms=${report.rooms} />
    </div>`;
}

export function CrossRoomReport({ deliberationId, onOpen }) {
  const [state, setState] = useState(null);
  const [error, setError] = useState("");
  const url = `/api/deliberations/${encodeURIComponent(deliberationId)}/report`;
  const refresh = async () => {
    const r = await api("GET", url);
    if (r.ok) setState(r.data);
    else setError(r.error);
  };
  useEffect(() => {
    refresh();
  }, []);
  useEffect(() => {
    // While the job runs, follow its progress (a background job on the server: this only reads its state).
    if (!state || state.status !== "running") return undefined;
    const timer = setTimeout(refresh, 1500);
    return () => clearTimeout(timer);
  }, [state]);
  const build = async () => {
    setError("");
    const r = await api("POST", url);
    if (r.ok || r.status === 409) await refresh();
    else setError(r.error);
  };
  const running = state && state.status === "running";
  return html`
    <section class="card" aria-labelledby="report-heading" id="cross-room-report">
      <h2 id="report-heading">Cross-room report</h2>
      <p class="hint">Where people agree across groups and where they divide, the themes of every room, and how
        evenly people took part.</p>
      <div class="button-row">
        <button type="button" id="build-report" onClick=${build} disabled=${running}>
          ${state && state.report ? "Build it again" : "Build the report"}</button>
        ${state && state.report && html`<button type="button" onClick=${() => window.print()}>Print or save as
          PDF</button>`}
      </div>
      <${ErrorLine} text=${error} />
      ${running && html`<p role="status" id="report-progress">Building: step ${state.step + 1} of ${state.steps},
        ${" "}${state.step_name}…</p>`}
      ${state && state.status === "failed" && html`<${ErrorLine} text=${`The report could not be built: ${state.error}`} />`}
      ${state && state.report && html`<${Report} report=${state.report} onOpen=${onOpen} />`}
    </section>`;
}
