// People: find someone by username, see their profile, follow or unfollow them.

import { api, ApiError, type User } from "./api";
import { field, h, showError, values } from "./dom";
import { track } from "./track";

/** A form that opens a person's profile by their username. */
export function findPerson(): HTMLFormElement {
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "find-title", novalidate: true },
    h("h2", { id: "find-title" }, "Find someone"),
    h("p", { class: "form-error", role: "alert" }),
    field("username", "Their username", { autocomplete: "off", required: true }),
    h("button", { type: "submit" }, "Open their profile"),
  ) as HTMLFormElement;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const { username } = values(form);
    if (username.trim()) location.hash = `#/people/${encodeURIComponent(username.trim())}`;
  });
  return form;
}

export async function personPage(me: User, username: string): Promise<HTMLElement> {
  const page = h("section", { "aria-labelledby": "person-title" });
  let person: User;
  try {
    person = await api.user(username);
  } catch (error) {
    if (error instanceof ApiError && error.status === "NOT_FOUND") {
      page.append(h("h1", { id: "person-title" }, "Nobody by that name"), h("p", {}, error.message));
      return page;
    }
    throw error;
  }
  const following = ((await api.following("me")).users ?? []).some((u) => u.id === person.id);
  const status = h("p", { role: "status" });
  const form = h("form", { novalidate: true }, h("p", { class: "form-error", role: "alert" })) as HTMLFormElement;
  const button = h("button", { type: "submit" }, following ? "Unfollow" : "Follow");
  form.append(button);
  let now = following;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      if (now) {
        await api.unfollow(person.username);
        status.textContent = `You no longer follow @${person.username}.`;
        now = false;
      } else {
        const answer = await api.follow(person.username);
        track("follow", "/people");
        status.textContent = answer.requested
          ? `@${person.username} approves followers: your request waits for them.`
          : `You follow @${person.username}: their nights will be in your feed.`;
        now = !answer.requested;
      }
      button.textContent = now ? "Unfollow" : "Follow";
    } catch (error) {
      showError(form, error);
    }
  });
  page.append(
    h("h1", { id: "person-title" }, person.displayName || person.username),
    h("p", { class: "who" }, `@${person.username}`),
    person.bio ? h("p", {}, person.bio) : "",
    h("p", {}, `${person.followerCount ?? 0} followers · following ${person.followingCount ?? 0}`),
    person.id === me.id ? h("p", {}, "This is you.") : form,
    status,
    await people("Followers", () => api.followers(person.username)),
    await people("Following", () => api.following(person.username)),
  );
  return page;
}

/** A list of people linked to their profiles, or why it cannot be shown. */
async function people(title: string, load: () => Promise<{ users?: User[] }>): Promise<HTMLElement> {
  const section = h("section", { "aria-label": title }, h("h2", {}, title));
  try {
    const users = (await load()).users ?? [];
    section.append(
      users.length
        ? h(
            "ul",
            { class: "people" },
            ...users.map((u) =>
              h("li", {}, h("a", { href: `#/people/${encodeURIComponent(u.username)}` }, u.displayName || u.username), ` @${u.username}`),
            ),
          )
        : h("p", {}, "Nobody yet."),
    );
  } catch (error) {
    if (!(error instanceof ApiError) || !["PERMISSION_DENIED", "NOT_FOUND"].includes(error.status)) throw error;
    section.append(h("p", {}, "Their privacy settings keep this list to themselves."));
  }
  return section;
}
