// The REST API, as any client calls it: JSON, a bearer token, errors in the API's own shape.

export interface User {
  id: string;
  username: string;
  displayName: string;
  timeZone: string;
  sleepGoal?: string;
  bio?: string;
  followerCount?: number;
  followingCount?: number;
  nightsVisibleTo?: string;
  approveFollowers?: boolean;
  showOnGlobalBoards?: boolean;
}

export interface Session {
  accessToken: string;
  expireTime: string;
  refreshToken: string;
  refreshExpireTime: string;
  user: User;
}

export interface SleepEntry {
  id: string;
  userId: string;
  startTime: string;
  endTime: string;
  duration: string;
  timeZone: string;
  sleepDate: string;
  quality?: number;
  note?: string;
  tags?: string[];
  state?: "STATE_RECORDED" | "STATE_OPEN" | "STATE_ABANDONED";
  plannedEndTime?: string;
}

export interface FeedItem {
  author: { userId: string; username: string; displayName: string };
  entry: SleepEntry;
}

export interface Window {
  kind: string;
  id: string;
  startDate?: string;
  endDate?: string;
  timeZone: string;
  startTime?: string;
  endTime?: string;
  current?: boolean;
}

export interface Standing {
  rank: string;
  userId: string;
  username: string;
  displayName: string;
  totalDuration: string;
  nights: string;
  averageDuration: string;
  streak?: string;
}

export interface Leaderboard {
  metric: string;
  scope: string;
  window: Window;
  standings?: Standing[];
  nextPageToken?: string;
  me?: Standing;
}

export interface ClockTime {
  time: string;
  minutesFromMidnight: number;
}

export interface SleepStats {
  startDate: string;
  endDate: string;
  nightsLogged?: number;
  averageDuration?: string;
  medianDuration?: string;
  averageBedtime?: ClockTime;
  averageWakeTime?: ClockTime;
  bedtimeSpreadMinutes?: number;
  consistencyScore?: number;
  sleepGoal?: string;
  sleepDebt?: string;
  nightsBelowGoal?: number;
  currentStreak?: number;
  longestStreak?: number;
  bestNight?: { sleepDate: string; duration: string };
  worstNight?: { sleepDate: string; duration: string };
  averageQuality?: number;
  weekdays?: { weekday: string; nights?: number; averageDuration?: string; averageQuality?: number }[];
}

export interface TrendPoint {
  sleepDate: string;
  logged?: boolean;
  duration?: string;
  durationAvg7?: string;
  durationAvg30?: string;
}

export interface ClientEvent {
  eventId: string;
  name: string;
  eventTime: string;
  anonymousId?: string;
  sessionId?: string;
  page?: string;
  referrer?: string;
  properties?: Record<string, string>;
}

export interface Period {
  startTime: string;
  label: string;
}

/** An answer other than 2xx: the API's status, message and the fields it names. */
export class ApiError extends Error {
  constructor(
    readonly httpStatus: number,
    readonly status: string,
    message: string,
    readonly fields: Record<string, string>,
  ) {
    super(message);
  }
}

const STORED = "zentry.session";

/** The signed-in session, kept across reloads; null when signed out. */
export function session(): Session | null {
  const raw = localStorage.getItem(STORED);
  return raw ? (JSON.parse(raw) as Session) : null;
}

export function keep(value: Session | null): void {
  if (value) localStorage.setItem(STORED, JSON.stringify(value));
  else localStorage.removeItem(STORED);
}

/** The roles the signed-in session's token carries (what the UI offers; the API decides). */
export function roles(): string[] {
  const token = session()?.accessToken;
  if (!token) return [];
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return (JSON.parse(atob(payload)).roles as string[]) ?? [];
  } catch {
    return [];
  }
}

/** One call; a 401 with a refresh token left tries once more with a refreshed session. */
export async function call<T>(method: string, path: string, body?: unknown, keepalive = false): Promise<T> {
  let response = await send(method, path, body, keepalive);
  const current = session();
  if (response.status === 401 && current?.refreshToken && !path.startsWith("/v1/sessions")) {
    if (await refresh(current.refreshToken)) response = await send(method, path, body, keepalive);
  }
  const text = await response.text();
  const parsed = text ? JSON.parse(text) : {};
  if (!response.ok) throw toError(response.status, parsed);
  return parsed as T;
}

/** One message of WatchFeed: an item new or changed, an entry removed, a reset or a heartbeat. */
export interface FeedChange {
  item?: FeedItem;
  removedEntryId?: string;
  reset?: { reason: string };
  heartbeat?: object;
  cursor: string;
}

/**
 * Follows the feed's stream (GET /v1/feed:watch, server-sent events) until `signal` aborts it:
 * each message goes to `changed`; a stream that ends or fails is watched again from its last
 * cursor, a little later each time it fails in a row.
 */
export async function watchFeed(changed: (change: FeedChange) => void, signal: AbortSignal): Promise<void> {
  let cursor = "";
  let failures = 0;
  while (!signal.aborted) {
    try {
      const path = `/v1/feed:watch?cursor=${encodeURIComponent(cursor)}`;
      let response = await send("GET", path, undefined, false, signal);
      const current = session();
      if (response.status === 401 && current?.refreshToken && (await refresh(current.refreshToken))) {
        response = await send("GET", path, undefined, false, signal);
      }
      if (!response.ok || !response.body) throw new Error(`watch answered ${response.status}`);
      const lines = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let pending = "";
      for (;;) {
        const { value, done } = await lines.read();
        if (done) break;
        pending += value;
        const events = pending.split("\n\n");
        pending = events.pop() ?? "";
        for (const event of events) {
          const data = event.split("\n").find((line) => line.startsWith("data: "));
          if (!data) continue;
          const change = JSON.parse(data.slice(6)) as FeedChange;
          cursor = change.cursor || cursor;
          failures = 0;
          changed(change);
        }
      }
    } catch {
      if (signal.aborted) return;
      failures += 1;
    }
    await new Promise((resume) => setTimeout(resume, Math.min(30_000, 500 * 2 ** failures)));
  }
}

async function send(
  method: string,
  path: string,
  body?: unknown,
  keepalive = false,
  signal?: AbortSignal,
): Promise<Response> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const token = session()?.accessToken;
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    keepalive, // a last batch of page views still leaves when the page closes
    signal,
  });
}

async function refresh(refreshToken: string): Promise<boolean> {
  const response = await send("POST", "/v1/sessions:refresh", { refreshToken });
  if (!response.ok) {
    keep(null);
    return false;
  }
  keep((await response.json()) as Session);
  return true;
}

interface ErrorBody {
  status?: string;
  message?: string;
  details?: { fieldViolations?: { field: string; description: string }[] }[];
}

function toError(httpStatus: number, body: ErrorBody): ApiError {
  const fields: Record<string, string> = {};
  for (const detail of body.details ?? []) {
    for (const violation of detail.fieldViolations ?? []) {
      fields[camel(violation.field)] = violation.description;
    }
  }
  const message = body.message || `The server answered ${httpStatus}.`;
  return new ApiError(httpStatus, body.status ?? "UNKNOWN", message, fields);
}

/** A field as the API names it (start_time or startTime) as the JSON does (startTime). */
function camel(field: string): string {
  return field.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
}

export const api = {
  signUp: (user: { username: string; email: string; password: string; timeZone: string }) =>
    call<User>("POST", "/v1/users", user),
  logIn: (username: string, password: string) =>
    call<Session>("POST", "/v1/sessions", { username, password }),
  logOut: () => call<unknown>("DELETE", "/v1/sessions/current"),
  me: () => call<User>("GET", "/v1/users/me"),
  updateMe: (changes: Partial<User>, mask: string[]) =>
    call<User>("PATCH", `/v1/users/me?updateMask=${mask.join(",")}`, changes),
  followRequests: () =>
    call<{ followRequests?: { requester: User; createTime: string }[] }>(
      "GET",
      "/v1/users/me/followRequests?pageSize=100",
    ),
  answerRequest: (requester: string, approve: boolean) =>
    call<unknown>(
      "POST",
      `/v1/users/me/followRequests/${encodeURIComponent(requester)}:${approve ? "approve" : "reject"}`,
      {},
    ),
  user: (username: string) => call<User>("GET", `/v1/users/${encodeURIComponent(username)}`),
  follow: (username: string) =>
    call<{ requested?: boolean }>("POST", `/v1/users/${encodeURIComponent(username)}:follow`, {}),
  unfollow: (username: string) =>
    call<unknown>("POST", `/v1/users/${encodeURIComponent(username)}:unfollow`, {}),
  followers: (username: string) =>
    call<{ users?: User[]; nextPageToken?: string }>(
      "GET",
      `/v1/users/${encodeURIComponent(username)}/followers?pageSize=100`,
    ),
  following: (username: string) =>
    call<{ users?: User[]; nextPageToken?: string }>(
      "GET",
      `/v1/users/${encodeURIComponent(username)}/following?pageSize=100`,
    ),
  createNight: (night: Partial<SleepEntry> & { requestId: string }) =>
    call<SleepEntry>("POST", "/v1/sleepEntries", night),
  deleteNight: (id: string) => call<unknown>("DELETE", `/v1/sleepEntries/${id}`),
  startNight: (timeZone: string, requestId: string) =>
    call<SleepEntry>("POST", "/v1/sleepEntries:start", { timeZone, requestId }),
  finishNight: (id: string) => call<SleepEntry>("POST", `/v1/sleepEntries/${id}:finish`, {}),
  cancelNight: (id: string) => call<unknown>("POST", `/v1/sleepEntries/${id}:cancel`, {}),
  openNight: () =>
    call<{ sleepEntries?: SleepEntry[] }>(
      "GET",
      "/v1/users/me/sleepEntries?showUnfinished=true&pageSize=5",
    ).then((page) => (page.sleepEntries ?? []).find((night) => night.state === "STATE_OPEN")),
  myNights: (pageToken = "", pageSize = 20) =>
    call<{ sleepEntries?: SleepEntry[]; nextPageToken?: string }>(
      "GET",
      `/v1/users/me/sleepEntries?pageSize=${pageSize}&pageToken=${encodeURIComponent(pageToken)}`,
    ),
  updateNight: (id: string, changes: Partial<SleepEntry>, mask: string[]) =>
    call<SleepEntry>("PATCH", `/v1/sleepEntries/${id}?updateMask=${mask.join(",")}`, changes),
  board: (metric: string, window: string, scope: string) =>
    call<Leaderboard>("GET", `/v1/leaderboards/${metric}/${window}?scope=${scope}&pageSize=20`),
  aroundMe: (metric: string, window: string, scope: string) =>
    call<Leaderboard>("GET", `/v1/leaderboards/${metric}/${window}:aroundMe?scope=${scope}&radius=2`),
  stats: (startDate: string) =>
    call<SleepStats>("GET", `/v1/users/me/sleepStats?startDate=${startDate}`),
  trend: (startDate: string) =>
    call<{ points?: TrendPoint[] }>("GET", `/v1/users/me/sleepTrend?startDate=${startDate}`),
  track: (events: ClientEvent[]) =>
    call<unknown>("POST", "/v1/analytics/events:batchCreate", { events }, true),
  traffic: (granularity: string, timeZone: string) =>
    call<{ points?: { period: Period; pageViews?: string; uniqueVisitors?: string; sessions?: string }[]; uniqueVisitors?: string; sessions?: string }>(
      "GET",
      `/v1/analytics/traffic?granularity=${granularity}&timeZone=${encodeURIComponent(timeZone)}`,
    ),
  eventCounts: (name: string, granularity: string, timeZone: string) =>
    call<{ points?: { period: Period; count?: string }[]; total?: string }>(
      "GET",
      `/v1/analytics/events/${encodeURIComponent(name)}/counts?granularity=${granularity}&timeZone=${encodeURIComponent(timeZone)}`,
    ),
  breakdown: (name: string, dimension: string, timeZone: string) =>
    call<{ rows?: { value: string; count: string }[]; total?: string }>(
      "GET",
      `/v1/analytics/events/${encodeURIComponent(name)}/breakdown?dimension=${encodeURIComponent(dimension)}&limit=10&timeZone=${encodeURIComponent(timeZone)}`,
    ),
  topPages: (timeZone: string) =>
    call<{ rows?: { value: string; count: string }[] }>(
      "GET",
      `/v1/analytics/topPages?limit=20&timeZone=${encodeURIComponent(timeZone)}`,
    ),
  feed: (pageToken = "") =>
    call<{ items?: FeedItem[]; nextPageToken?: string; rebuilding?: boolean }>(
      "GET",
      `/v1/feed?pageSize=20&pageToken=${encodeURIComponent(pageToken)}`,
    ),
};
