// A modal confirmation built on <dialog> (focus stays inside; Escape cancels).

import { h } from "./dom.js";

/** Resolves true when the user confirms. `extra` is an optional form control to show. */
export function confirmAction({ title, message, confirmLabel = "Confirm", danger = false, extra }) {
  return new Promise((resolve) => {
    const titleId = `dlg-title-${Date.now()}`;
    const dialog = h(
      "dialog",
      { class: "confirm", "aria-labelledby": titleId, id: "confirm-dialog" },
      h(
        "form",
        { method: "dialog" },
        h("h2", { id: titleId }, title),
        h("p", {}, message),
        extra || null,
        h(
          "div",
          { class: "dialog-buttons" },
          h("button", { value: "cancel", class: "btn", type: "submit" }, "Cancel"),
          h(
            "button",
            { value: "ok", class: danger ? "btn danger" : "btn primary", type: "submit", id: "confirm-ok" },
            confirmLabel,
          ),
        ),
      ),
    );
    dialog.addEventListener("close", () => {
      const ok = dialog.returnValue === "ok";
      dialog.remove();
      resolve(ok);
    });
    document.body.append(dialog);
    dialog.showModal();
    dialog.querySelector("#confirm-ok").focus();
  });
}
