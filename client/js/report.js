// The cross-room report on the review page: built by a background job on the server (this page starts it and follows
// its progress), then shown: opinion groups with their representative statements, statements agreed across groups
// and those that divide (bar charts with text alternatives), themes named by quotes (each source opens in its room's
// transcript), and participation per room. It prints cleanly (app.css has a print stylesheet).
// Rendered with Preact + htm (vendored); text only through JSX.

import { html, useEffect, useState } from "/static/vendor/htm-preact-standalone.module.js";
import { currentLocale, formatDateTime, t } from "/static/js/i18n.js";
import { ErrorLine, api } from "/static/js/staff.js";

const GROUP_NAMES = "ABCDEFGH";
const groupName = (id) => t("report.group", { name: GROUP_NAMES[id] || id });
// Numbers in the locale's way of writing them ("50%", "50 %"; "0.75", "0,75").
const percent = (share) => new Intl.NumberFormat(currentLocale(), { style: "percent", maximumFractionDigits: 0 })
  .format(share);
const decimal = (value, digits) => new Intl.NumberFormat(currentLocale(), {
  minimumFractionDigits: digits, maximumFractionDigits: digits }).format(value);
// The alias the server gives everyone (as in the transcript and exports, not translated); Polis numbers from 0,
// aliases from 1.
const alias = (polisNumber) => `Participant ${polisNumber + 1}`;

// One horizontal bar per opinion group: the share of the group that agrees.
function GroupBars({ score }) {
  const groups = Object.entries(score.group_agree || {}).sort(([a], [b]) => Number(a) - Number(b));
  if (!groups.length) return null;
  const label = groups.map(([g, share]) => `${groupName(Number(g))} ${t("report.percent_agree", {
    percent: percent(share) })}`).join(", ");
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

// A statement's figures: "#3, 12 votes, 75% agree, groups 40% apart".
function scoreNote(score, measure) {
  return [`#${score.statement_id}`, t("report.count_votes", { count: score.votes }),
    t("report.percent_agree", { percent: percent(score.agree) }), measure(score)].filter(Boolean).join(", ");
}

function StatementList({ id, scores, measure }) {
  if (!scores.length) return html`<p class="hint">${t("moderate.none")}</p>`;
  return html`
    <ol class="review-list report-statements" id=${id}>
      ${scores.map((s) => html`
        <li key=${s.statement_id}>
          <p>${s.text} <span class="hint">(${scoreNote(s, measure)})</span></p>
          <${GroupBars} score=${s} />
        </li>`)}
    </ol>`;
}

// How big a theme is and how it was named: "3 contributions from 2 people in 1 room; named by ...".
function themeNote(theme) {
  const size = [t("report.contributions", { count: theme.size }), t("report.from_people", { count: theme.speakers }),
    t("report.in_rooms", { count: theme.rooms.length })].join(" ");
  const naming = theme.named_by.startsWith("llm:") ? t("report.named_by_llm", { model: theme.named_by.slice(4) })
    : t("report.named_by_quote");
  return `${size}; ${naming}`;
}

function Themes({ themes, note, onOpen }) {
  if (!themes.length) return html`<p class="hint">${note || t("report.no_themes")}</p>`;
  return html`
    <ol class="review-list" id="report-themes">
      ${themes.map((theme, i) => html`
        <li key=${i}>
          <p><strong>${theme.named_by.startsWith("llm:") ? theme.label : t("moderate.quoted", { text: theme.label })}</strong>
            ${" "}<span class="hint">(${themeNote(theme)})</span></p>
          <details>
            <summary>${t("report.sources")}</summary>
            <ul>
              ${theme.sources.map((s) => html`
                <li key=${s.source_id}>${s.speaker} (${s.kind}): ${s.text}
                  ${s.kind === "utterance" && html` <button type="button" class="link-button"
                    onClick=${() => onOpen(s.room_id, s.source_id)}>${t("review.open_in_context")}</button>`}</li>`)}
            </ul>
          </details>
        </li>`)}
    </ol>`;
}

function Participation({ rooms }) {
  return html`
    <table class="report-table" id="report-participation">
      <caption>${t("report.participation_caption")}</caption>
      <thead><tr><th scope="col">${t("report.col_room")}</th><th scope="col">${t("report.col_people")}</th>
        <th scope="col">${t("report.col_spoke")}</th><th scope="col">${t("report.col_lines")}</th>
        <th scope="col">${t("statements.heading")}</th><th scope="col">${t("report.col_votes")}</th>
        <th scope="col">${t("report.col_balance")}</th></tr></thead>
      <tbody>
        ${rooms.map((r) => html`
          <tr key=${r.room_id}><th scope="row">${r.title}</th><td>${r.participants}</td><td>${r.speakers}</td>
            <td>${r.utterances}</td><td>${r.statements}</td><td>${r.votes}</td>
            <td>${r.balance === null ? "–" : html`${decimal(r.balance, 2)} <${Meter} value=${r.balance}
              label=${t("report.balance_label", { balance: decimal(r.balance, 2) })} />`}</td></tr>`)}
      </tbody>
    </table>`;
}

function Report({ report, onOpen }) {
  const o = report.opinions;
  return html`
    <div class="report">
      <p class="hint">${t("report.built", { when: formatDateTime(report.generated_at),
        voters: t("report.count_voters", { count: o.participants }),
        statements: t("report.count_statements", { count: o.statements }),
        votes: t("report.count_votes", { count: o.votes }),
        grouped: t("report.placed_in_groups", { count: o.groups.length, placed: o.clustered }),
        rule: t("report.min_votes_rule", { count: o.min_votes }) })}
        ${" "}${t("report.computed_with")}</p>
      ${o.note && html`<p class="warning">${o.note}</p>`}
      <h3>${t("report.groups_heading")}</h3>
      ${o.groups.length === 0 ? html`<p class="hint">${t("moderate.none")}</p>` : html`
        <ul class="review-list" id="report-groups">
          ${o.groups.map((g) => html`
            <li key=${g.group_id}><strong>${groupName(g.group_id)}</strong> (${t("report.members", {
              count: g.members.length })} ${g.members.map(alias).join(", ")})
              ${g.representative.length > 0 && html`
                <ul>${g.representative.map((r) => html`<li key=${r.statement_id}>${r.repful_for === "agree"
                  ? t("report.agrees_more", { count: r.in_group, total: r.of_group })
                  : t("report.disagrees_more", { count: r.in_group, total: r.of_group })} ${r.text}</li>`)}</ul>`}
            </li>`)}
        </ul>`}
      <h3>${t("report.consensus_heading")}</h3>
      <${StatementList} id="report-consensus" scores=${o.ranked_consensus.slice(0, 5)}
        measure=${(s) => (s.group_informed_consensus === null ? ""
          : t("report.consensus_measure", { value: decimal(s.group_informed_consensus, 3) }))} />
      <h3>${t("report.divisive_heading")}</h3>
      <${StatementList} id="report-divisive" scores=${o.ranked_divisive.slice(0, 5)}
        measure=${(s) => (s.divide === null ? "" : t("report.divide_measure", { percent: percent(s.divide) }))} />
      <h3>${t("report.themes_heading")}</h3>
      <${Themes} themes=${report.themes} note=${report.themes_note} onOpen=${onOpen} />
      <h3>${t("report.participation_heading")}</h3>
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
      <h2 id="report-heading">${t("report.heading")}</h2>
      <p class="hint">${t("report.intro")}</p>
      <div class="button-row">
        <button type="button" id="build-report" onClick=${build} disabled=${running}>
          ${state && state.report ? t("report.build_again") : t("report.build")}</button>
        ${state && state.report && html`<button type="button" onClick=${() => window.print()}
          >${t("report.print")}</button>`}
      </div>
      <${ErrorLine} text=${error} />
      ${running && html`<p role="status" id="report-progress">${t("report.progress", { step: state.step + 1,
        steps: state.steps, name: state.step_name })}</p>`}
      ${state && state.status === "failed" && html`<${ErrorLine} text=${t("report.failed", { error: state.error })} />`}
      ${state && state.report && html`<${Report} report=${state.report} onOpen=${onOpen} />`}
    </section>`;
}
