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
}

export interface FeedItem {
  author: { userId: string; username: string; displayName: string };
  entry: SleepEntry;
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

/** One call; a 401 with a refresh token left tries once more with a refreshed session. */
export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  let response = await send(method, path, body);
  const current = session();
  if (response.status === 401 && current?.refreshToken && !path.startsWith("/v1/sessions")) {
    if (await refresh(current.refreshToken)) response = await send(method, path, body);
  }
  const text = await response.text();
  const parsed = text ? JSON.parse(text) : {};
  if (!response.ok) throw toError(response.status, parsed);
  return parsed as T;
}

async function send(method: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const token = session()?.accessToken;
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
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
  user: (username: string) => call<User>("GET", `/v1/users/${encodeURIComponent(username)}`),
  follow: (username: string) =>
    call<{ requested?: boolean }>("POST", `/v1/users/${encodeURIComponent(username)}:follow`, {}),
  unfollow: (username: string) =>
    call<unknown>("POST", `/v1/users/${encodeURIComponent(username)}:unfollow`, {}),
  following: (username: string) =>
    call<{ users?: User[]; nextPageToken?: string }>(
      "GET",
      `/v1/users/${encodeURIComponent(username)}/following?pageSize=100`,
    ),
  createNight: (night: Partial<SleepEntry> & { requestId: string }) =>
    call<SleepEntry>("POST", "/v1/sleepEntries", night),
  deleteNight: (id: string) => call<unknown>("DELETE", `/v1/sleepEntries/${id}`),
  myNights: (pageToken = "", pageSize = 20) =>
    call<{ sleepEntries?: SleepEntry[]; nextPageToken?: string }>(
      "GET",
      `/v1/users/me/sleepEntries?pageSize=${pageSize}&pageToken=${encodeURIComponent(pageToken)}`,
    ),
  feed: (pageToken = "") =>
    call<{ items?: FeedItem[]; nextPageToken?: string; rebuilding?: boolean }>(
      "GET",
      `/v1/feed?pageSize=20&pageToken=${encodeURIComponent(pageToken)}`,
    ),
};
