// The definition editor: CodeMirror 6 with YAML highlighting and the server's define-time
// problems drawn at their lines (gutter marker, underline, message on hover). Loaded lazily, so
// the console's first load does not carry an editor nobody opened.
import { yaml } from "@codemirror/lang-yaml";
import { lintGutter, setDiagnostics } from "@codemirror/lint";
import { EditorView } from "@codemirror/view";
import { basicSetup } from "codemirror";
import { useEffect, useRef } from "react";
import { diagnosticsOf, type LineProblem } from "../lib/editor";

export default function CodeEditor(props: {
  initial: string;
  problems: LineProblem[];
  onChange: (text: string) => void;
  label: string;
}) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const onChange = useRef(props.onChange);
  onChange.current = props.onChange;

  useEffect(() => {
    if (!host.current) return;
    const editor = new EditorView({
      doc: props.initial,
      parent: host.current,
      extensions: [
        basicSetup,
        yaml(),
        lintGutter(),
        EditorView.contentAttributes.of({ "aria-label": props.label }),
        EditorView.updateListener.of((update) => {
          if (update.docChanged) onChange.current(update.state.doc.toString());
        }),
      ],
    });
    view.current = editor;
    return () => {
      editor.destroy();
      view.current = null;
    };
    // The editor owns its text once created: `initial` is read once.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    const editor = view.current;
    if (!editor) return;
    editor.dispatch(setDiagnostics(editor.state, diagnosticsOf(editor.state.doc, props.problems)));
  }, [props.problems]);

  return <div className="code-editor" ref={host} data-testid="code-editor" />;
}
