// Signing up, logging in and out.

import { api, keep } from "./api";
import { field, h, showError, values } from "./dom";

export function signIn(done: () => void): HTMLElement {
  const form = h(
    "form",
    { "aria-labelledby": "signin-title", novalidate: true },
    h("h1", { id: "signin-title" }, "Log in"),
    h("p", { class: "form-error", role: "alert" }),
    field("username", "Username", { autocomplete: "username", required: true }),
    field("password", "Password", { type: "password", autocomplete: "current-password", required: true }),
    h("button", { type: "submit" }, "Log in"),
    h("p", {}, "New here? ", h("a", { href: "#/signup" }, "Create an account")),
  ) as HTMLFormElement;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { username, password } = values(form);
    try {
      keep(await api.logIn(username, password));
      done();
    } catch (error) {
      showError(form, error);
    }
  });
  return form;
}

export function signUp(done: () => void): HTMLElement {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const form = h(
    "form",
    { "aria-labelledby": "signup-title", novalidate: true },
    h("h1", { id: "signup-title" }, "Create your account"),
    h("p", { class: "form-error", role: "alert" }),
    field("username", "Username", { autocomplete: "username", required: true }),
    field("email", "Email", { type: "email", autocomplete: "email", required: true }),
    field("password", "Password", { type: "password", autocomplete: "new-password", required: true }),
    field("timeZone", "Time zone", { value: zone, autocomplete: "off" }),
    h("button", { type: "submit" }, "Create account"),
    h("p", {}, "Have an account? ", h("a", { href: "#/signin" }, "Log in")),
  ) as HTMLFormElement;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { username, email, password, timeZone } = values(form);
    try {
      await api.signUp({ username, email, password, timeZone });
      keep(await api.logIn(username, password));
      done();
    } catch (error) {
      showError(form, error);
    }
  });
  return form;
}

export async function signOut(): Promise<void> {
  try {
    await api.logOut();
  } finally {
    keep(null); // signed out here whatever the server said: the token is gone from this browser
  }
}
