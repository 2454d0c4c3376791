// The AI's codes in the interface's words, shared by the moderator's and the reviewer's pages: an AI message's kind,
// a safety flag's category, a language-model call's outcome and latency (an unknown code is shown as it is).

import { currentLocale, t } from "./i18n.js";

export function kindName(kind) {
  switch (kind) {
    case "stage_intro": return t("moderate.kind_stage_intro");
    case "question": return t("moderate.kind_question");
    case "time": return t("moderate.kind_time");
    case "greeting": return t("moderate.kind_greeting");
    case "invite": return t("moderate.kind_invite");
    case "balance": return t("moderate.kind_balance");
    case "silence": return t("moderate.kind_silence");
    case "summary": return t("moderate.kind_summary");
    case "statements": return t("moderate.kind_statements");
    case "results": return t("moderate.kind_results");
    case "closing": return t("moderate.kind_closing");
    case "safety": return t("moderate.kind_safety");
    default: return kind;
  }
}

export function categoryName(category) {
  if (category === "abuse") return t("moderate.category_abuse");
  if (category === "off_topic") return t("moderate.category_off_topic");
  return category;
}

export function outcomeName(outcome) {
  return outcome === "ok" ? t("moderate.call_ok") : t("moderate.call_fallback", { outcome });
}

// A call's latency in seconds, with the locale's decimal separator ("1.5 s", "1,5 s").
export function seconds(value) {
  const number = new Intl.NumberFormat(currentLocale(), { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  return t("moderate.seconds", { seconds: number.format(value) });
}
