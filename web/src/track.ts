// The app reports its own page views and actions to Zentry's product analytics
// (events:batchCreate), in batches, anonymous until someone signs in. It never gets in
// a person's way: a batch that cannot be sent is dropped.

import { api, type ClientEvent } from "./api";

const BATCH = 20;
const WAIT_MS = 2000;
const queue: ClientEvent[] = [];
let timer: number | undefined;

/** This browser's random id, and this visit's. */
const device = remembered(localStorage, "zentry.device");
const visit = remembered(sessionStorage, "zentry.visit");

function remembered(storage: Storage, key: string): string {
  let id = storage.getItem(key);
  if (!id) {
    id = crypto.randomUUID();
    storage.setItem(key, id);
  }
  return id;
}

export function track(name: string, page: string, properties: Record<string, string> = {}): void {
  queue.push({
    eventId: crypto.randomUUID(),
    name,
    eventTime: new Date().toISOString(),
    anonymousId: device,
    sessionId: visit,
    page,
    referrer: queue.length ? "" : document.referrer.slice(0, 512),
    properties: { app: "web", ...properties },
  });
  if (queue.length >= BATCH) void flush();
  else timer ??= window.setTimeout(() => void flush(), WAIT_MS);
}

export async function flush(): Promise<void> {
  window.clearTimeout(timer);
  timer = undefined;
  const events = queue.splice(0, queue.length);
  if (!events.length) return;
  try {
    await api.track(events);
  } catch {
    // analytics are best effort: the person's own actions never wait on them
  }
}

addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") void flush();
});
