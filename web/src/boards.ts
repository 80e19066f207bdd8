// Leaderboards: a metric, a window and a scope; my own row highlighted, and where I stand.

import { api, type Leaderboard, type Standing, type User, type Window } from "./api";
import { h, hours } from "./dom";

const METRICS = {
  "total-duration": "Total sleep",
  nights: "Nights logged",
  "average-duration": "Average night",
  streak: "Nights in a row at my goal",
};
const WINDOWS = { daily: "Today", weekly: "This week", monthly: "This month", "all-time": "All time" };
const SCOPES = { global: "Everyone", following: "People I follow" };

export async function boardsPage(me: User): Promise<HTMLElement> {
  const chosen = { metric: "total-duration", window: "weekly", scope: "global" };
  const results = h("div", { "aria-live": "polite" });
  const controls = h("form", { class: "card controls", "aria-label": "Which board" });
  for (const [name, options] of [
    ["metric", METRICS],
    ["window", WINDOWS],
    ["scope", SCOPES],
  ] as const) {
    const select = h(
      "select",
      { id: `board-${name}`, name },
      ...Object.entries(options).map(([value, text]) =>
        h("option", { value, selected: value === chosen[name] }, text),
      ),
    ) as HTMLSelectElement;
    select.addEventListener("change", async () => {
      chosen[name] = select.value;
      await show();
    });
    controls.append(h("div", { class: "field" }, h("label", { for: `board-${name}` }, label(name)), select));
  }
  let asked = 0; // answers to an earlier choice that arrive late are not shown
  const show = async () => {
    const mine = ++asked;
    const [top, around] = await Promise.all([
      api.board(chosen.metric, chosen.window, chosen.scope),
      api.aroundMe(chosen.metric, chosen.window, chosen.scope),
    ]);
    if (mine === asked) results.replaceChildren(...boardView(top, around, me));
  };
  await show();
  return h("section", { "aria-labelledby": "boards-title" }, h("h1", { id: "boards-title" }, "Leaderboards"), controls, results);
}

function label(name: string): string {
  return name === "metric" ? "Ranked by" : name === "window" ? "When" : "Among";
}

function boardView(top: Leaderboard, around: Leaderboard, me: User): HTMLElement[] {
  const standings = top.standings ?? [];
  const shownIds = new Set(standings.map((s) => s.userId));
  const mine = (around.standings ?? []).filter((s) => !shownIds.has(s.userId));
  const rows = standings.map((s) => row(s, top.metric, me));
  if (mine.length) {
    rows.push(h("tr", { class: "gap" }, h("td", { colspan: 3 }, "…")) as HTMLTableRowElement);
    rows.push(...mine.map((s) => row(s, top.metric, me)));
  }
  const hidden = top.scope === "global" && me.nightsVisibleTo !== "everyone" && !me.showOnGlobalBoards;
  const where = around.me && around.me.rank !== "0"
    ? `You are number ${around.me.rank} on this board.`
    : hidden
      ? "You are not on the global boards: your nights are not shared with everyone. Settings can rank you here (your totals only)."
      : "You are not on this board yet: record nights in this window to appear.";
  return [
    h("p", { class: "window" }, windowText(top.window)),
    h("p", { role: "status" }, where),
    standings.length
      ? h(
          "table",
          { class: "board" },
          h("caption", {}, `${METRICS[top.metric as keyof typeof METRICS]}, ${WINDOWS[top.window.kind as keyof typeof WINDOWS].toLowerCase()}`),
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Rank"), h("th", { scope: "col" }, "Who"), h("th", { scope: "col" }, value(top.metric)))),
          h("tbody", {}, ...rows),
        )
      : h("p", {}, "Nobody is on this board yet."),
  ];
}

function row(s: Standing, metric: string, me: User): HTMLElement {
  const mine = s.userId === me.id;
  const shown =
    metric === "nights"
      ? s.nights
      : metric === "streak"
        ? (s.streak ?? "0")
        : hours(metric === "total-duration" ? s.totalDuration : s.averageDuration);
  return h(
    "tr",
    { class: mine ? "me" : undefined, "aria-current": mine ? "true" : undefined },
    h("td", {}, s.rank),
    h("td", {}, h("a", { href: `#/people/${encodeURIComponent(s.username)}` }, s.displayName || s.username), mine ? " (you)" : ""),
    h("td", {}, shown),
  );
}

function value(metric: string): string {
  if (metric === "streak") return "In a row";
  return metric === "nights" ? "Nights" : metric === "total-duration" ? "Slept" : "Per night";
}

/** The window's dates, and when a current one resets, in the person's own zone. */
export function windowText(window: Window): string {
  if (window.kind === "all-time") return "Every night ever recorded.";
  const span = window.startDate === window.endDate ? window.startDate : `${window.startDate} to ${window.endDate}`;
  if (!window.current || !window.endTime) return `${span} (${window.timeZone}).`;
  const resets = new Date(window.endTime).toLocaleString([], {
    weekday: "long",
    hour: "2-digit",
    minute: "2-digit",
    timeZone: window.timeZone,
  });
  return `${span}; resets ${resets} (${window.timeZone}).`;
}
