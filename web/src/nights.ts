// My nights: tonight live (going to sleep, awake), "last night" in two taps, a chart of the
// last weeks, and the list.

import uPlot from "uplot";
import { api, ApiError, type SleepEntry, type TrendPoint, type User } from "./api";
import { clearErrors, clock, field, h, hours, showError, values } from "./dom";
import { track } from "./track";
import { instantOf, minutesOf, wallOf } from "./zones";

const CHARTED = 28;

export async function nightsPage(me: User): Promise<HTMLElement> {
  const page = h("section", { "aria-labelledby": "nights-title" });
  const zone = me.timeZone || "UTC";
  const since = daysBefore(today(zone), CHARTED - 1);
  const [listed, trend, open] = await Promise.all([
    api.myNights("", CHARTED),
    api.trend(since),
    api.openNight(),
  ]);
  const nights = listed.sleepEntries ?? [];
  let points = trend.points ?? [];
  const list = h("ol", { class: "nights", "aria-label": "Your nights, newest first" });
  const chart = h("figure", { class: "chart" });
  const clockChart = h("figure", { class: "chart" });
  const redraw = (all: SleepEntry[]) => {
    all.sort((a, b) => Date.parse(b.startTime) - Date.parse(a.startTime));
    list.replaceChildren(...all.map((night) => nightItem(night, () => remove(night), changed)));
    drawChart(chart, all, me, points);
    drawClock(clockChart, all, zone);
  };
  const averages = async () => {
    // The statistics follow the nights a moment later; until they answer, the old averages.
    points = await api.trend(since).then((t) => t.points ?? [], () => points);
  };
  const changed = async (night: SleepEntry) => {
    shown = shown.map((n) => (n.id === night.id ? night : n));
    redraw(shown);
    await averages();
    redraw(shown);
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
    track("sleep_entry_deleted", "/nights");
    shown = shown.filter((n) => n.id !== night.id);
    redraw(shown);
  };
  const recorded = async (created: SleepEntry) => {
    shown = [created, ...shown];
    redraw(shown);
    await averages();
    redraw(shown);
  };
  const form = lastNightForm(nights, zone, recorded);
  page.append(
    h("h1", { id: "nights-title" }, "My nights"),
    tonightPanel(open, zone, recorded),
    form,
    h("h2", {}, `The last ${CHARTED} days`),
    chart,
    clockChart,
    h("h2", {}, "Every night"),
    list,
    more,
  );
  redraw(shown);
  return page;
}

/** Tonight, live: "Going to sleep" starts a night now; then "I'm awake" records it (or
"Cancel" drops it). The panel shows whichever applies, also after a reload. */
function tonightPanel(
  open: SleepEntry | undefined,
  zone: string,
  recorded: (night: SleepEntry) => Promise<void>,
): HTMLFormElement {
  const panel = h("form", { class: "card", "aria-labelledby": "tonight-title" }) as HTMLFormElement;
  let requestId = crypto.randomUUID(); // one per night: a retried tap starts it once
  const act = async (button: HTMLButtonElement, action: () => Promise<void>) => {
    clearErrors(panel);
    button.disabled = true;
    try {
      await action();
    } catch (error) {
      showError(panel, error);
    } finally {
      button.disabled = false;
    }
  };
  const show = (night: SleepEntry | undefined) => {
    const title = h("h2", { id: "tonight-title" }, "Tonight");
    const error = h("p", { class: "form-error", role: "alert" });
    if (!night) {
      const start = h("button", { type: "button" }, "Going to sleep") as HTMLButtonElement;
      start.addEventListener("click", () =>
        act(start, async () => {
          const started = await api.startNight(zone, requestId);
          requestId = crypto.randomUUID();
          track("sleep_entry_started", "/nights");
          show(started);
        }),
      );
      return panel.replaceChildren(title, error, start);
    }
    const awake = h("button", { type: "button" }, "I'm awake") as HTMLButtonElement;
    const cancel = h("button", { type: "button", class: "secondary" }, "Cancel") as HTMLButtonElement;
    awake.addEventListener("click", () =>
      act(awake, async () => {
        const finished = await api.finishNight(night.id);
        track("sleep_entry_finished", "/nights");
        show(undefined);
        await recorded(finished);
      }),
    );
    cancel.addEventListener("click", () =>
      act(cancel, async () => {
        await api.cancelNight(night.id);
        show(undefined);
      }),
    );
    panel.replaceChildren(
      title,
      h("p", { role: "status" }, `Asleep since ${clock(night.startTime, zone)}.`),
      error,
      h("div", { class: "row" }, awake, cancel),
    );
  };
  show(open);
  return panel;
}

function lastNightForm(
  recent: SleepEntry[],
  zone: string,
  recorded: (night: SleepEntry) => Promise<void>,
): HTMLFormElement {
  const [start, end] = usualNight(recent, zone);
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "last-night-title", novalidate: true },
    h("h2", { id: "last-night-title" }, "Last night"),
    h("p", { class: "hint" }, `Times in your zone, ${zone} (Settings changes it).`),
    h("p", { class: "form-error", role: "alert" }),
    ...nightFields({ start, end, quality: 3, tags: [] }),
    h("button", { type: "submit" }, "Record the night"),
  ) as HTMLFormElement;
  let requestId = crypto.randomUUID(); // one per night: a retried submit records it once
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const night = nightOf(form, zone);
    if (!night) return;
    const submit = form.querySelector<HTMLButtonElement>("button[type=submit]")!;
    submit.disabled = true; // one night per tap, however impatient the tap
    try {
      const created = await api.createNight({ ...night, timeZone: zone, requestId });
      requestId = crypto.randomUUID();
      track("sleep_entry_created", "/nights");
      await recorded(created);
    } catch (error) {
      showError(form, error, overlapAtStart);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

/** A night's inputs: start and end (wall-clock times), quality, tags and note. `own` keeps
their ids apart from another form's on the page. */
function nightFields(
  night: { start: string; end: string; quality: number; tags: string[]; note?: string },
  own = "",
): HTMLElement[] {
  const note = field("note", "Note", { rows: 2 }, "textarea", own);
  (note.querySelector("textarea") as HTMLTextAreaElement).value = night.note ?? "";
  return [
    h(
      "div",
      { class: "row" },
      field("startTime", "Fell asleep", { type: "datetime-local", value: night.start, required: true }, "input", own),
      field("endTime", "Woke up", { type: "datetime-local", value: night.end, required: true }, "input", own),
    ),
    field("quality", "Quality (1 to 5)", { type: "number", min: 1, max: 5, value: night.quality }, "input", own),
    field("tags", "Tags (separated by commas)", { value: night.tags.join(", "), placeholder: "caffeine, late dinner" }, "input", own),
    note,
  ];
}

/** The night a form of nightFields describes, its times read in `zone`; null, with the form
saying which, when a time is missing. */
function nightOf(form: HTMLFormElement, zone: string): Partial<SleepEntry> | null {
  clearErrors(form);
  const v = values(form);
  const missing = ["startTime", "endTime"].filter((name) => !v[name]);
  if (missing.length) {
    const fields = Object.fromEntries(missing.map((name) => [name, "Give a date and time."]));
    showError(form, new ApiError(400, "INVALID_ARGUMENT", "", fields));
    return null;
  }
  return {
    startTime: instantOf(v.startTime, zone).toISOString(),
    endTime: instantOf(v.endTime, zone).toISOString(),
    quality: Number(v.quality),
    tags: v.tags.split(",").map((t) => t.trim()).filter(Boolean),
    note: v.note,
  };
}

/** An overlap is about the night's times: shown beside when it began. */
function overlapAtStart(error: ApiError): string {
  return error.status === "FAILED_PRECONDITION" ? "startTime" : "";
}

/** Last night at the times this person usually sleeps (their recent nights' medians), as
wall-clock times in their own zone. */
function usualNight(recent: SleepEntry[], zone: string): [string, string] {
  const median = (xs: number[], fallback: number) =>
    xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] : fallback;
  // Bedtimes after midnight count as late evening, so that the median of 23:30 and 00:30 is sane.
  const bed = median(recent.map((n) => (minutesOf(new Date(n.startTime), zone) + 720) % 1440), 23 * 60 + 720) - 720;
  const wake = median(recent.map((n) => minutesOf(new Date(n.endTime), zone)), 7 * 60);
  const now = new Date();
  const today = wallOf(now, zone).slice(0, 10);
  let end = instantOf(`${today}T${clockText(wake)}`, zone);
  if (end > now) end = new Date(end.getTime() - 86_400_000); // not woken yet today: the night before
  const endDay = wallOf(end, zone).slice(0, 10);
  let start = instantOf(`${endDay}T${clockText((bed + 1440) % 1440)}`, zone);
  if (start >= end) start = new Date(start.getTime() - 86_400_000);
  return [wallOf(start, zone), wallOf(end, zone)];
}

function clockText(minutes: number): string {
  return `${String(Math.floor(minutes / 60)).padStart(2, "0")}:${String(minutes % 60).padStart(2, "0")}`;
}

function nightItem(night: SleepEntry, remove: () => void, changed: (n: SleepEntry) => Promise<void>): HTMLElement {
  const summary = h(
    "span",
    {},
    h("strong", {}, night.sleepDate),
    ` ${clock(night.startTime, night.timeZone)}–${clock(night.endTime, night.timeZone)}, `,
    hours(night.duration),
    night.quality ? `, quality ${night.quality}` : "",
    night.tags?.length ? ` · ${night.tags.join(", ")}` : "",
  );
  const actions = h(
    "span",
    {},
    h("button", { type: "button", class: "link", "aria-label": `Edit the night of ${night.sleepDate}`, onclick: () => edit() }, "Edit"),
    h("button", { type: "button", class: "link", onclick: remove, "aria-label": `Delete the night of ${night.sleepDate}` }, "Delete"),
  );
  const item = h("li", { class: "night" }, summary, actions);
  const edit = () => {
    const own = `edit-${night.id}-`;
    const form = h(
      "form",
      { class: "card", "aria-label": `Edit the night of ${night.sleepDate}`, novalidate: true },
      h("p", { class: "form-error", role: "alert" }),
      h("p", { class: "hint" }, `Times in ${night.timeZone}, the night's zone.`),
      ...nightFields(
        {
          start: wallOf(new Date(night.startTime), night.timeZone),
          end: wallOf(new Date(night.endTime), night.timeZone),
          quality: night.quality ?? 3,
          tags: night.tags ?? [],
          note: night.note,
        },
        own,
      ),
      h("div", { class: "row" }, h("button", { type: "submit" }, "Save"), h("button", { type: "button", class: "secondary", onclick: () => item.replaceChildren(summary, actions) }, "Cancel")),
    ) as HTMLFormElement;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const changes = nightOf(form, night.timeZone);
      if (!changes) return;
      try {
        const updated = await api.updateNight(night.id, changes, ["start_time", "end_time", "quality", "tags", "note"]);
        track("sleep_entry_updated", "/nights");
        await changed(updated);
      } catch (error) {
        showError(form, error, overlapAtStart);
      }
    });
    item.replaceChildren(form);
    (form.querySelector("input") as HTMLInputElement).focus();
  };
  return item;
}

function drawChart(place: HTMLElement, nights: SleepEntry[], me: User, trend: TrendPoint[]): void {
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
  const days = chartDays(me.timeZone || "UTC");
  const slept = days.map((d) => byDate.get(dateOf(d)) ?? null);
  const goal = me.sleepGoal ? Number.parseFloat(me.sleepGoal) / 3600 : 8;
  const most = Math.max(goal, ...slept.map((x) => x ?? 0));
  const averages = new Map(trend.map((p) => [p.sleepDate, p]));
  const average = (key: "durationAvg7" | "durationAvg30") =>
    days.map((d) => {
      const value = averages.get(dateOf(d))?.[key];
      return value ? Number.parseFloat(value) / 3600 : null;
    });
  const plot = new uPlot(
    {
      width: chartWidth(),
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
        { label: "7-night average", stroke: "#1b7f3b", width: 2, spanGaps: true, points: { show: false } },
        { label: "30-night average", stroke: "#8a5a00", width: 2, dash: [2, 3], spanGaps: true, points: { show: false } },
      ],
    },
    [days, slept, days.map(() => goal), average("durationAvg7"), average("durationAvg30")],
    place,
  );
  const recorded = slept.filter((x) => x !== null).length;
  place.append(
    h(
      "figcaption",
      {},
      `Hours slept each night of the last ${CHARTED} days (${recorded} recorded), against your goal of ${goal} hours (red, dashed), with the 7-night (green) and 30-night (brown, dotted) averages.`,
    ),
  );
  plot.root.setAttribute("role", "img");
  plot.root.setAttribute("aria-label", `Hours of sleep on ${recorded} of the last ${CHARTED} nights`);
}

/** The page's width, less its padding, up to 720 px (the chart is drawn before it is shown). */
export function chartWidth(): number {
  const main = document.getElementById("main");
  return Math.max(280, Math.min((main?.clientWidth ?? 720) - 32, 720));
}

/** Today's date in `zone` ("YYYY-MM-DD"). */
function today(zone: string): string {
  return wallOf(new Date(), zone).slice(0, 10);
}

function daysBefore(date: string, days: number): string {
  return new Date(Date.parse(`${date}T12:00:00Z`) - days * 86_400_000).toISOString().slice(0, 10);
}

/** The chart's days, the last CHARTED in `zone`, as noon UTC in seconds (uPlot's x). */
function chartDays(zone: string): number[] {
  const last = Date.parse(`${today(zone)}T12:00:00Z`) / 1000;
  return Array.from({ length: CHARTED }, (_, i) => last - (CHARTED - 1 - i) * 86_400);
}

function dateOf(day: number): string {
  return new Date(day * 1000).toISOString().slice(0, 10);
}

/** Bedtime and wake time of each night, on a clock that runs across midnight. */
function drawClock(place: HTMLElement, nights: SleepEntry[], zone: string): void {
  place.replaceChildren();
  if (!nights.length) return;
  const byDate = new Map(nights.map((n) => [n.sleepDate, n]));
  const days = chartDays(zone);
  const hoursOf = (instant: string, night: SleepEntry, before: boolean) => {
    const minutes = minutesOf(new Date(instant), night.timeZone);
    // Bedtimes from noon on are the evening before midnight (negative); wake times are after.
    return (before && minutes >= 720 ? minutes - 1440 : minutes) / 60;
  };
  const bed = days.map((d) => {
    const night = byDate.get(dateOf(d));
    return night ? hoursOf(night.startTime, night, true) : null;
  });
  const wake = days.map((d) => {
    const night = byDate.get(dateOf(d));
    return night ? hoursOf(night.endTime, night, false) : null;
  });
  const shown = [...bed, ...wake].filter((x): x is number => x !== null);
  const clock = (hours: number) => `${String(((Math.round(hours) % 24) + 24) % 24).padStart(2, "0")}:00`;
  const plot = new uPlot(
    {
      width: chartWidth(),
      height: 200,
      legend: { show: true, live: false },
      cursor: { show: false },
      scales: {
        x: { time: true, range: [days[0] - 43200, days[days.length - 1] + 43200] },
        y: { range: [Math.floor(Math.min(-2, ...shown)) - 1, Math.ceil(Math.max(8, ...shown)) + 1] },
      },
      axes: [{}, { label: "time of day", incrs: [1, 2, 3, 6, 12], values: (_u, ticks) => ticks.map(clock) }],
      series: [
        {},
        { label: "fell asleep", stroke: "#2f44c8", width: 2, spanGaps: true, points: { show: true, size: 6 } },
        { label: "woke up", stroke: "#b3261e", width: 2, spanGaps: true, points: { show: true, size: 6 } },
      ],
    },
    [days, bed, wake],
    place,
  );
  place.append(h("figcaption", {}, "When you fell asleep and woke up each night, across midnight."));
  plot.root.setAttribute("role", "img");
  plot.root.setAttribute("aria-label", "Bedtimes and wake times of the last four weeks");
}
