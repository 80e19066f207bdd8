// Wall-clock times in a person's own time zone (their profile's, not the browser's): the
// form's "YYYY-MM-DDTHH:MM" values to instants and back, with the platform's zone data.

/** Minutes `zone` is ahead of UTC at `instant`. */
function offset(zone: string, instant: number): number {
  const parts: Record<string, number> = {};
  for (const part of new Intl.DateTimeFormat("en-US", {
    timeZone: zone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  }).formatToParts(new Date(instant))) {
    parts[part.type] = Number(part.value);
  }
  const wall = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second);
  return Math.round((wall - instant) / 60_000);
}

/** The instant a wall-clock time in `zone` names (a time skipped by a DST change moves on). */
export function instantOf(wall: string, zone: string): Date {
  const asUtc = Date.parse(`${wall}:00Z`);
  let instant = asUtc - offset(zone, asUtc) * 60_000;
  instant = asUtc - offset(zone, instant) * 60_000; // the offset at the answer, across a change
  return new Date(instant);
}

/** The wall-clock time ("YYYY-MM-DDTHH:MM") of `instant` in `zone`. */
export function wallOf(instant: Date, zone: string): string {
  return new Date(instant.getTime() + offset(zone, instant.getTime()) * 60_000).toISOString().slice(0, 16);
}

/** Minutes after midnight of `instant`'s time of day in `zone`. */
export function minutesOf(instant: Date, zone: string): number {
  const [hours, minutes] = wallOf(instant, zone).slice(11).split(":").map(Number);
  return hours * 60 + minutes;
}
