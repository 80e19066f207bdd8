// My profile and privacy: who sees my nights, whether follows need my approval, whether I
// stand on the global boards; and the follow requests waiting for me.

import { api, type User } from "./api";
import { field, h, showError, values } from "./dom";

const AUDIENCES = { followers: "People who follow me", everyone: "Everyone signed in", onlyMe: "Only me" };

export async function settingsPage(me: User, saved: (user: User) => void): Promise<HTMLElement> {
  const status = h("p", { role: "status" });
  const goal = Number.parseFloat(me.sleepGoal ?? "28800") / 3600;
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "profile-title", novalidate: true },
    h("h2", { id: "profile-title" }, "Profile"),
    h("p", { class: "form-error", role: "alert" }),
    field("displayName", "Display name", { value: me.displayName ?? "" }),
    field("bio", "About me", { rows: 2 }, "textarea"),
    field("timeZone", "Time zone", { value: me.timeZone }),
    field("sleepGoal", "Sleep goal (hours a night)", { type: "number", min: 1, max: 16, step: 0.25, value: goal }),
    h(
      "fieldset",
      {},
      h("legend", {}, "Who sees my nights"),
      ...Object.entries(AUDIENCES).map(([value, text]) =>
        h(
          "label",
          { class: "choice" },
          h("input", { type: "radio", name: "nightsVisibleTo", value, checked: (me.nightsVisibleTo ?? "followers") === value }),
          ` ${text}`,
        ),
      ),
      h("p", { class: "error", "data-error-for": "nightsVisibleTo" }),
    ),
    h(
      "label",
      { class: "choice" },
      h("input", { type: "checkbox", name: "approveFollowers", checked: !!me.approveFollowers }),
      " Ask me before someone follows me",
    ),
    h(
      "label",
      { class: "choice" },
      h("input", { type: "checkbox", name: "showOnGlobalBoards", checked: !!me.showOnGlobalBoards }),
      " Rank me on the global boards (totals only, never a night's times or notes)",
    ),
    h("button", { type: "submit" }, "Save"),
    status,
  ) as HTMLFormElement;
  (form.querySelector("textarea") as HTMLTextAreaElement).value = me.bio ?? "";
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const v = values(form);
    try {
      const user = await api.updateMe(
        {
          displayName: v.displayName,
          bio: v.bio,
          timeZone: v.timeZone,
          sleepGoal: `${Math.round(Number(v.sleepGoal) * 3600)}s`,
          nightsVisibleTo: v.nightsVisibleTo,
          approveFollowers: v.approveFollowers === "on",
          showOnGlobalBoards: v.showOnGlobalBoards === "on",
        },
        ["displayName", "bio", "timeZone", "sleepGoal", "nightsVisibleTo", "approveFollowers", "showOnGlobalBoards"],
      );
      status.textContent = "Saved.";
      saved(user);
    } catch (error) {
      showError(form, error);
    }
  });
  return h(
    "section",
    { "aria-labelledby": "settings-title" },
    h("h1", { id: "settings-title" }, "Settings"),
    form,
    await requests(),
  );
}

async function requests(): Promise<HTMLElement> {
  const waiting = (await api.followRequests()).followRequests ?? [];
  const list = h("ul", { class: "requests", "aria-label": "Follow requests" });
  for (const request of waiting) {
    const who = request.requester;
    const item = h("li", { class: "night" }, h("span", {}, `${who.displayName || who.username} @${who.username}`));
    for (const approve of [true, false]) {
      const button = h("button", { type: "button", class: approve ? "" : "secondary" }, approve ? "Approve" : "Reject");
      button.addEventListener("click", async () => {
        await api.answerRequest(who.username, approve);
        item.replaceChildren(h("span", {}, `${approve ? "Approved" : "Rejected"} @${who.username}.`));
      });
      item.append(button);
    }
    list.append(item);
  }
  return h(
    "section",
    { class: "card", "aria-labelledby": "requests-title" },
    h("h2", { id: "requests-title" }, "Follow requests"),
    waiting.length ? list : h("p", {}, "Nobody is waiting for your approval."),
  );
}
