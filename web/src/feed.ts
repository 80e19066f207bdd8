// The feed: the nights of those I follow, newest first, a page at a time; new ones appear
// on top as they arrive, changed ones change and deleted ones go, while it is shown (WatchFeed).

import { api, type FeedChange, type FeedItem, watchFeed } from "./api";
import { clock, h, hours } from "./dom";

export async function feedPage(): Promise<HTMLElement> {
  const list = h("ol", { class: "feed", "aria-label": "Nights of the people you follow" });
  const notice = h("p", { class: "notice", role: "status" });
  const more = h("button", { type: "button", class: "secondary" }, "Load more");
  const shown = new Map<string, HTMLElement>();
  let token = "";
  const load = async () => {
    const page = await api.feed(token);
    const fresh = (page.items ?? []).filter((item) => !shown.has(item.entry.id));
    list.append(...fresh.map(show));
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
  const show = (item: FeedItem): HTMLElement => {
    const element = feedItem(item);
    shown.set(item.entry.id, element);
    return element;
  };
  let arrivals = 0;
  const changed = (change: FeedChange) => {
    if (change.item) {
      const old = shown.get(change.item.entry.id);
      if (old) return old.replaceWith(show(change.item));
      list.prepend(show(change.item));
      arrivals += 1;
      notice.textContent = `${arrivals} new ${arrivals === 1 ? "night" : "nights"} at the top.`;
    } else if (change.removedEntryId) {
      shown.get(change.removedEntryId)?.remove();
      shown.delete(change.removedEntryId);
    } else if (change.reset) {
      void refresh.click();
    }
  };
  await load();
  const watching = new AbortController();
  const stopWhenGone = window.setInterval(() => {
    if (list.isConnected) return; // another page is shown: stop watching
    watching.abort();
    window.clearInterval(stopWhenGone);
  }, 1000);
  void watchFeed(changed, watching.signal);
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
