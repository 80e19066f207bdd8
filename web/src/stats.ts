// My statistics over the last 30 days: averages, consistency, sleep debt, best and worst
// nights, and the weekday pattern.

import { api, type SleepStats } from "./api";
import { h, hours } from "./dom";

export const DAYS = 30;

export async function statsPage(): Promise<HTMLElement> {
  const since = new Date(Date.now() - (DAYS - 1) * 86_400_000).toISOString().slice(0, 10);
  const stats = await api.stats(since);
  const page = h("section", { "aria-labelledby": "stats-title" }, h("h1", { id: "stats-title" }, "My statistics"));
  page.append(h("p", {}, `${stats.startDate} to ${stats.endDate}: ${stats.nightsLogged ?? 0} nights recorded.`));
  if (!stats.nightsLogged) {
    page.append(h("p", {}, "Record a night to see your statistics."));
    return page;
  }
  page.append(figures(stats), weekdays(stats));
  return page;
}

function figures(s: SleepStats): HTMLElement {
  const rows: [string, string][] = [
    ["Average night", hours(s.averageDuration ?? "0s")],
    ["Median night", hours(s.medianDuration ?? "0s")],
    ["Usual bedtime", s.averageBedtime?.time ?? "–"],
    ["Usual wake time", s.averageWakeTime?.time ?? "–"],
    ["Consistency", `${s.consistencyScore ?? 0} of 100 (bedtimes spread over ${Math.round(s.bedtimeSpreadMinutes ?? 0)} min)`],
    ["Sleep goal", hours(s.sleepGoal ?? "0s")],
    ["Sleep debt", `${hours(s.sleepDebt ?? "0s")} (${s.nightsBelowGoal ?? 0} nights below the goal)`],
    ["Streak", `${s.currentStreak ?? 0} nights in a row at the goal now; ${s.longestStreak ?? 0} at most`],
    ["Best night", s.bestNight ? `${s.bestNight.sleepDate}, ${hours(s.bestNight.duration)}` : "–"],
    ["Worst night", s.worstNight ? `${s.worstNight.sleepDate}, ${hours(s.worstNight.duration)}` : "–"],
    ["Average quality", s.averageQuality ? s.averageQuality.toFixed(1) : "not rated"],
  ];
  return h("dl", { class: "figures" }, ...rows.flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}

function weekdays(s: SleepStats): HTMLElement {
  return h(
    "table",
    { class: "board" },
    h("caption", {}, "By weekday of the sleep date"),
    h("thead", {}, h("tr", {}, ...["Weekday", "Nights", "Average", "Quality"].map((t) => h("th", { scope: "col" }, t)))),
    h(
      "tbody",
      {},
      ...(s.weekdays ?? []).map((d) =>
        h(
          "tr",
          {},
          h("th", { scope: "row" }, d.weekday[0].toUpperCase() + d.weekday.slice(1)),
          h("td", {}, String(d.nights ?? 0)),
          h("td", {}, d.nights ? hours(d.averageDuration ?? "0s") : "–"),
          h("td", {}, d.averageQuality ? d.averageQuality.toFixed(1) : "–"),
        ),
      ),
    ),
  );
}
