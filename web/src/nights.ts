// My nights: "last night" in two taps, a chart of the last weeks, and the list.

import uPlot from "uplot";
import { api, ApiError, type SleepEntry, type User } from "./api";
import { clearErrors, clock, field, h, hours, showError, values } from "./dom";

const CHARTED = 28;

export async function nightsPage(me: User): Promise<HTMLElement> {
  const page = h("section", { "aria-labelledby": "nights-title" });
  const listed = await api.myNights("", CHARTED);
  const nights = listed.sleepEntries ?? [];
  const list = h("ol", { class: "nights", "aria-label": "Your nights, newest first" });
  const chart = h("figure", { class: "chart" });
  const redraw = (all: SleepEntry[]) => {
    all.sort((a, b) => Date.parse(b.startTime) - Date.parse(a.startTime));
    list.replaceChildren(...all.map((night) => nightItem(night, () => remove(night))));
    drawChart(chart, all, me);
  };
  let shown = nights;
  let next = listed.nextPageToken ?? "";
  const more = h("button", { type: "button", class: "secondary" }, "Older nights");
  more.hidden = !next;
  more.addEventListener("click", async () => {
    const older = await api.myNights(next, CHARTED);
    shown = [...shown, ...(older.sleepEntries ?? [])];
    next = older.nextPageToken ?? "";
    more.hidden = !next;
    redraw(shown);
  });
  const remove = async (night: SleepEntry) => {
    if (!confirm(`Delete the night of ${night.sleepDate}?`)) return;
    await api.deleteNight(night.id);
    shown = shown.filter((n) => n.id !== night.id);
    redraw(shown);
  };
  const form = lastNightForm(nights, (created) => {
    shown = [created, ...shown];
    redraw(shown);
  });
  page.append(
    h("h1", { id: "nights-title" }, "My nights"),
    form,
    h("h2", {}, `The last ${CHARTED} days`),
    chart,
    h("h2", {}, "Every night"),
    list,
    more,
  );
  redraw(shown);
  return page;
}

function lastNightForm(recent: SleepEntry[], recorded: (night: SleepEntry) => void): HTMLFormElement {
  const [start, end] = usualNight(recent);
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "last-night-title", novalidate: true },
    h("h2", { id: "last-night-title" }, "Last night"),
    h("p", { class: "form-error", role: "alert" }),
    h(
      "div",
      { class: "row" },
      field("startTime", "Fell asleep", { type: "datetime-local", value: start, required: true }),
      field("endTime", "Woke up", { type: "datetime-local", value: end, required: true }),
    ),
    field("quality", "Quality (1 to 5)", { type: "number", min: 1, max: 5, value: 3 }),
    field("tags", "Tags (separated by commas)", { placeholder: "caffeine, late dinner" }),
    field("note", "Note", { rows: 2 }, "textarea"),
    h("button", { type: "submit" }, "Record the night"),
  ) as HTMLFormElement;
  let requestId = crypto.randomUUID(); // one per night: a retried submit records it once
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const v = values(form);
    const missing = ["startTime", "endTime"].filter((name) => !v[name]);
    if (missing.length) {
      const fields = Object.fromEntries(missing.map((name) => [name, "Give a date and time."]));
      showError(form, new ApiError(400, "INVALID_ARGUMENT", "", fields));
      return;
    }
    try {
      const night = await api.createNight({
        startTime: new Date(v.startTime).toISOString(),
        endTime: new Date(v.endTime).toISOString(),
        quality: Number(v.quality),
        tags: v.tags.split(",").map((t) => t.trim()).filter(Boolean),
        note: v.note,
        requestId,
      });
      requestId = crypto.randomUUID();
      recorded(night);
    } catch (error) {
      // An overlap is about the night's times: shown beside when it began.
      showError(form, error, (e) => (e.status === "FAILED_PRECONDITION" ? "startTime" : ""));
    }
  });
  return form;
}

/** Last night at the times this person usually sleeps (their recent nights' medians). */
function usualNight(recent: SleepEntry[]): [string, string] {
  const minutesOf = (instant: string) => {
    const d = new Date(instant);
    return d.getHours() * 60 + d.getMinutes();
  };
  const median = (xs: number[], fallback: number) =>
    xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] : fallback;
  // Bedtimes after midnight count as late evening, so that the median of 23:30 and 00:30 is sane.
  const bed = median(recent.map((n) => (minutesOf(n.startTime) + 720) % 1440), 23 * 60 + 720) - 720;
  const wake = median(recent.map((n) => minutesOf(n.endTime)), 7 * 60);
  const now = new Date();
  const end = new Date(now.getFullYear(), now.getMonth(), now.getDate(), 0, wake);
  if (end > now) end.setDate(end.getDate() - 1); // not woken yet today: the night before
  const start = new Date(end.getFullYear(), end.getMonth(), end.getDate(), 0, bed);
  if (start >= end) start.setDate(start.getDate() - 1);
  return [local(start), local(end)];
}

function local(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function nightItem(night: SleepEntry, remove: () => void): HTMLElement {
  return h(
    "li",
    { class: "night" },
    h(
      "span",
      {},
      h("strong", {}, night.sleepDate),
      ` ${clock(night.startTime, night.timeZone)}–${clock(night.endTime, night.timeZone)}, `,
      hours(night.duration),
      night.quality ? `, quality ${night.quality}` : "",
      night.tags?.length ? ` · ${night.tags.join(", ")}` : "",
    ),
    h("button", { type: "button", class: "link", onclick: remove, "aria-label": `Delete the night of ${night.sleepDate}` }, "Delete"),
  );
}

function drawChart(place: HTMLElement, nights: SleepEntry[], me: User): void {
  place.replaceChildren();
  if (!nights.length) {
    place.append(h("p", {}, "Your nights will show here once you record one."));
    return;
  }
  // Every day of the last CHARTED, a gap where no night was recorded.
  const byDate = new Map<string, number>();
  for (const night of nights) {
    const hoursSlept = Number.parseFloat(night.duration) / 3600;
    byDate.set(night.sleepDate, (byDate.get(night.sleepDate) ?? 0) + hoursSlept);
  }
  const today = new Date();
  const days: number[] = [];
  const slept: (number | null)[] = [];
  for (let back = CHARTED - 1; back >= 0; back--) {
    const day = new Date(Date.UTC(today.getFullYear(), today.getMonth(), today.getDate() - back, 12));
    days.push(day.getTime() / 1000);
    slept.push(byDate.get(day.toISOString().slice(0, 10)) ?? null);
  }
  const goal = me.sleepGoal ? Number.parseFloat(me.sleepGoal) / 3600 : 8;
  const most = Math.max(goal, ...slept.map((x) => x ?? 0));
  const width = Math.max(280, Math.min(place.clientWidth || 640, 720));
  const plot = new uPlot(
    {
      width,
      height: 220,
      legend: { show: false },
      cursor: { show: false },
      scales: {
        x: { time: true, range: [days[0] - 43200, days[days.length - 1] + 43200] },
        y: { range: [0, Math.ceil(most) + 1] },
      },
      axes: [{}, { label: "hours" }],
      series: [
        {},
        { label: "slept", fill: "rgba(47, 68, 200, 0.55)", stroke: "#2f44c8", paths: uPlot.paths.bars!({ size: [0.7, 24] }) },
        { label: "goal", stroke: "#b3261e", dash: [6, 4], points: { show: false } },
      ],
    },
    [days, slept, days.map(() => goal)],
    place,
  );
  const recorded = slept.filter((x) => x !== null).length;
  place.append(
    h("figcaption", {}, `Hours slept each night of the last ${CHARTED} days (${recorded} recorded), against your goal of ${goal} hours (dashed).`),
  );
  plot.root.setAttribute("role", "img");
  plot.root.setAttribute("aria-label", `Hours of sleep on ${recorded} of the last ${CHARTED} nights`);
}
