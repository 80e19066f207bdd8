// Zentry in a browser: a hash-routed page per view, on the same REST API as any client.

import { analyticsPage } from "./analytics";
import { api, roles, session, type User } from "./api";
import { signIn, signOut, signUp } from "./auth";
import { boardsPage } from "./boards";
import { h } from "./dom";
import { feedPage } from "./feed";
import { nightsPage } from "./nights";
import { findPerson, personPage } from "./people";
import { settingsPage } from "./settings";
import { statsPage } from "./stats";
import { track } from "./track";

const main = document.getElementById("main") as HTMLElement;
const nav = document.getElementById("nav") as HTMLElement;
let me: User | null = null;

async function route(): Promise<void> {
  const path = location.hash.replace(/^#/, "") || "/nights";
  track("page_view", path.startsWith("/people/") ? "/people" : path);
  if (!session()) {
    me = null;
    renderNav();
    show(path === "/signup" ? signUp(signedIn) : signIn(signedIn));
    return;
  }
  try {
    me ??= await api.me();
    renderNav();
    show(await page(path, me));
  } catch (error) {
    if (!session()) return route(); // the session ended (refresh refused): log in again
    show(h("p", { class: "form-error", role: "alert" }, String((error as Error).message)));
  }
}

async function page(path: string, user: User): Promise<HTMLElement> {
  if (path === "/feed") {
    const feed = await feedPage();
    feed.append(findPerson());
    return feed;
  }
  if (path.startsWith("/people/")) return personPage(user, decodeURIComponent(path.slice(8)));
  if (path === "/boards") return boardsPage(user);
  if (path === "/stats") return statsPage();
  if (path === "/settings") {
    return settingsPage(user, (updated) => {
      me = updated; // the zone and goal the other pages use from now on
    });
  }
  if (path === "/analytics" && roles().includes("admin")) return analyticsPage();
  return nightsPage(user);
}

function signedIn(): void {
  me = null;
  if (location.hash === "#/nights") void route();
  else location.hash = "#/nights";
}

function show(view: HTMLElement): void {
  main.replaceChildren(view);
  const heading = view.querySelector("h1");
  heading?.setAttribute("tabindex", "-1");
  heading?.focus(); // a screen reader hears the new page; the keyboard starts from its top
  document.title = `${heading?.textContent ?? "Zentry"} · Zentry`;
}

function renderNav(): void {
  if (!me) {
    nav.replaceChildren();
    return;
  }
  const here = location.hash || "#/nights";
  const link = (href: string, text: string) =>
    h("a", { href, "aria-current": here === href ? "page" : undefined }, text);
  const out = h("button", { type: "button", class: "link" }, "Log out");
  out.addEventListener("click", async () => {
    await signOut();
    location.hash = "#/signin";
  });
  nav.replaceChildren(
    link("#/nights", "My nights"),
    link("#/feed", "Feed"),
    link("#/boards", "Leaderboards"),
    link("#/stats", "Statistics"),
    link("#/settings", "Settings"),
    roles().includes("admin") ? link("#/analytics", "Analytics") : "",
    h("span", { class: "who" }, `@${me.username}`),
    out,
  );
}

// An action whose call failed (the network, a server error) says so, once, on the page; the
// forms show their own errors beside their fields.
window.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  console.error(event.reason);
  const reason = event.reason instanceof Error ? event.reason.message : String(event.reason);
  let banner = document.getElementById("trouble");
  if (!banner) {
    banner = h("p", { id: "trouble", class: "form-error", role: "alert" });
    main.prepend(banner);
  }
  banner.textContent = `That did not work (${reason}); try again in a moment.`;
});

// The skip link moves focus without touching the hash, which names the page.
document.querySelector(".skip")?.addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
window.addEventListener("hashchange", () => void route());
void route();
