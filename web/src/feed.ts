// The feed: the nights of those I follow, newest first, a page at a time.

import { api, type FeedItem } from "./api";
import { clock, h, hours } from "./dom";

export async function feedPage(): Promise<HTMLElement> {
  const list = h("ol", { class: "feed", "aria-label": "Nights of the people you follow" });
  const notice = h("p", { class: "notice", role: "status" });
  const more = h("button", { type: "button", class: "secondary" }, "Load more");
  let token = "";
  const load = async () => {
    const page = await api.feed(token);
    list.append(...(page.items ?? []).map(feedItem));
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
    token = "";
    await load();
  });
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
