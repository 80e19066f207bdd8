// The feed: the nights of those I follow, newest first, a page at a time; new ones appear
// on top as they arrive (the first page is asked again every POLL_MS while it is shown).

import { api, type FeedItem } from "./api";
import { clock, h, hours } from "./dom";

const POLL_MS = 15_000;

export async function feedPage(): Promise<HTMLElement> {
  const list = h("ol", { class: "feed", "aria-label": "Nights of the people you follow" });
  const notice = h("p", { class: "notice", role: "status" });
  const more = h("button", { type: "button", class: "secondary" }, "Load more");
  const shown = new Set<string>();
  let token = "";
  const load = async () => {
    const page = await api.feed(token);
    const fresh = (page.items ?? []).filter((item) => !shown.has(item.entry.id));
    fresh.forEach((item) => shown.add(item.entry.id));
    list.append(...fresh.map(feedItem));
    token = page.nextPageToken ?? "";
    more.hidden = !token;
    notice.textContent = page.rebuilding
      ? "Your feed is being rebuilt; some nights may be missing for a moment."
      : list.childElementCount
        ? ""
        : "Nothing here yet: follow people to see their nights.";
  };
  more.addEventListener("click", load);
  const refresh = h("button", { type: "button", class: "secondary" }, "Refresh");
  refresh.addEventListener("click", async () => {
    list.replaceChildren();
    shown.clear();
    token = "";
    await load();
  });
  const arrived = async () => {
    if (!list.isConnected) return window.clearInterval(poll); // another page is shown
    if (document.visibilityState !== "visible") return;
    const page = await api.feed("").catch(() => null); // the next poll tries again
    const fresh = (page?.items ?? []).filter((item) => !shown.has(item.entry.id));
    if (!fresh.length) return;
    fresh.forEach((item) => shown.add(item.entry.id));
    list.prepend(...fresh.map(feedItem));
    notice.textContent = `${fresh.length} new ${fresh.length === 1 ? "night" : "nights"} at the top.`;
  };
  const poll = window.setInterval(() => void arrived(), POLL_MS);
  await load();
  return h(
    "section",
    { "aria-labelledby": "feed-title" },
    h("div", { class: "row" }, h("h1", { id: "feed-title" }, "Feed"), refresh),
    notice,
    list,
    more,
  );
}

function feedItem(item: FeedItem): HTMLElement {
  const { author, entry } = item;
  return h(
    "li",
    { class: "night" },
    h("strong", {}, author.displayName || author.username),
    ` @${author.username} slept ${hours(entry.duration)}, `,
    `${clock(entry.startTime, entry.timeZone)}–${clock(entry.endTime, entry.timeZone)} (${entry.sleepDate})`,
    entry.quality ? `, quality ${entry.quality}` : "",
  );
}
