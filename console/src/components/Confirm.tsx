// A confirmation that says what will change; keyboard first: focus lands on Cancel, Escape
// cancels, Tab stays inside while it is open.
import { type KeyboardEvent, type ReactNode, useEffect, useRef } from "react";

export function Confirm(props: {
  title: string;
  children: ReactNode;
  confirmLabel: string;
  busy?: boolean;
  // the input is not acceptable yet: the button stays, labelled as it is, but cannot be pressed
  disabled?: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const cancel = useRef<HTMLButtonElement>(null);
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => cancel.current?.focus(), []);
  const onKeyDown = (event: KeyboardEvent) => {
    if (event.key === "Escape") props.onCancel();
    if (event.key !== "Tab" || !box.current) return;
    const focusable = box.current.querySelectorAll<HTMLElement>("button:not([disabled])");
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  };
  return (
    <div className="backdrop">
      <div
        className="dialog"
        role="dialog"
        aria-modal="true"
        aria-labelledby="confirm-title"
        ref={box}
        onKeyDown={onKeyDown}
      >
        <h2 id="confirm-title">{props.title}</h2>
        <div>{props.children}</div>
        <div className="actions">
          <button type="button" ref={cancel} onClick={props.onCancel}>
            Cancel
          </button>
          <button type="button" className="primary" disabled={props.busy || props.disabled}
            onClick={props.onConfirm}>
            {props.busy ? "Working…" : props.confirmLabel}
          </button>
        </div>
      </div>
    </div>
  );
}
