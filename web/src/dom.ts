// A few DOM helpers: elements from a tag and attributes, forms whose fields show API errors.

import { ApiError } from "./api";

type Child = Node | string | null | undefined | false;

/** An element: `attrs` are attributes, but `on*` functions are listeners. */
export function h(tag: string, attrs: Record<string, unknown> = {}, ...children: Child[]) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value as EventListener);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children) {
    if (child) element.append(child);
  }
  return element;
}

/** A labelled input with a place for its error, wired for screen readers. */
export function field(
  name: string,
  label: string,
  input: Record<string, unknown> = {},
  tag = "input",
  form = "",
): HTMLElement {
  const id = `field-${form}${name}`; // `form` keeps ids unique when two forms have a field
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    h(tag, { id, name, "aria-describedby": `${id}-error`, ...input }),
    h("p", { class: "error", id: `${id}-error`, "data-error-for": name, "aria-live": "polite" }),
  );
}

/** Shows `error` in `form`: each field it names next to that field, the rest above the form. */
export function showError(form: HTMLFormElement, error: unknown, fieldOf: (e: ApiError) => string = () => "") {
  clearErrors(form);
  const general = form.querySelector<HTMLElement>(".form-error");
  if (!(error instanceof ApiError)) {
    if (general) general.textContent = "Zentry cannot be reached; check your connection and try again.";
    return;
  }
  const named = { ...error.fields };
  const guessed = fieldOf(error);
  if (!Object.keys(named).length && guessed) named[guessed] = error.message;
  let shown = false;
  for (const [name, description] of Object.entries(named)) {
    const place = form.querySelector<HTMLElement>(`[data-error-for="${name}"]`);
    const input = form.querySelector<HTMLElement>(`[name="${name}"]`);
    if (!place || !input) continue;
    place.textContent = description;
    input.setAttribute("aria-invalid", "true");
    if (!shown) input.focus();
    shown = true;
  }
  if (!shown && general) general.textContent = error.message;
}

export function clearErrors(form: HTMLFormElement): void {
  form.querySelectorAll<HTMLElement>(".error, .form-error").forEach((e) => (e.textContent = ""));
  form.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
}

/** A form's values by name. */
export function values(form: HTMLFormElement): Record<string, string> {
  const out: Record<string, string> = {};
  new FormData(form).forEach((value, key) => (out[key] = String(value)));
  return out;
}

/** "7 h 05 min" from a protobuf duration ("26100s"). */
export function hours(duration: string): string {
  const seconds = Number.parseFloat(duration);
  const minutes = Math.round(seconds / 60);
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

/** A time of day in `zone` ("23:10"). */
export function clock(instant: string, zone: string): string {
  return new Date(instant).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", timeZone: zone });
}
