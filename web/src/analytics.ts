// Product analytics, for admins: traffic over time, top pages, and one event's counts and
// breakdown, all in a zone the admin chooses.

import uPlot from "uplot";
import { api } from "./api";
import { field, h } from "./dom";
import { chartWidth } from "./nights";

export async function analyticsPage(): Promise<HTMLElement> {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const form = h(
    "form",
    { class: "card controls", "aria-label": "What to show", novalidate: true },
    field("timeZone", "Time zone", { value: zone }, "input", "analytics-"),
    h(
      "div",
      { class: "field" },
      h("label", { for: "field-granularity" }, "Per"),
      h(
        "select",
        { id: "field-granularity", name: "granularity" },
        h("option", { value: "hour" }, "hour"),
        h("option", { value: "day", selected: true }, "day"),
      ),
    ),
    field("event", "Event", { value: "page_view" }, "input", "analytics-"),
    h("button", { type: "submit" }, "Show"),
  ) as HTMLFormElement;
  const results = h("div", { "aria-live": "polite" });
  const show = async () => {
    const v = Object.fromEntries(new FormData(form)) as Record<string, string>;
    const [traffic, pages, counts, breakdown] = await Promise.all([
      api.traffic(v.granularity, v.timeZone),
      api.topPages(v.timeZone),
      api.eventCounts(v.event, v.granularity, v.timeZone),
      api.breakdown(v.event, "page", v.timeZone),
    ]);
    const chart = h("figure", { class: "chart" });
    results.replaceChildren(
      h("h2", {}, "Traffic"),
      h("p", {}, `${traffic.uniqueVisitors ?? 0} visitors in ${traffic.sessions ?? 0} sessions.`),
      chart,
      table("Top pages", "Page", "Views", pages.rows ?? []),
      h("h2", {}, `"${v.event}" events`),
      h("p", {}, `${counts.total ?? 0} in all.`),
      table(`"${v.event}" by page`, "Page", "Events", breakdown.rows ?? []),
    );
    const points = traffic.points ?? [];
    if (points.length) {
      new uPlot(
        {
          width: chartWidth(),
          height: 200,
          legend: { show: true, live: false },
          cursor: { show: false },
          series: [
            {},
            { label: "page views", stroke: "#2f44c8", width: 2 },
            { label: "visitors", stroke: "#b3261e", width: 2 },
          ],
        },
        [
          points.map((p) => Date.parse(p.period.startTime) / 1000),
          points.map((p) => Number(p.pageViews ?? 0)),
          points.map((p) => Number(p.uniqueVisitors ?? 0)),
        ],
        chart,
      ).root.setAttribute("role", "img");
    }
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await show();
  });
  await show();
  return h(
    "section",
    { "aria-labelledby": "analytics-title" },
    h("h1", { id: "analytics-title" }, "Product analytics"),
    form,
    results,
  );
}

function table(caption: string, what: string, counted: string, rows: { value: string; count: string }[]) {
  return h(
    "table",
    { class: "board" },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, what), h("th", { scope: "col" }, counted))),
    h("tbody", {}, ...rows.map((r) => h("tr", {}, h("td", {}, r.value || "(none)"), h("td", {}, r.count)))),
  );
}
