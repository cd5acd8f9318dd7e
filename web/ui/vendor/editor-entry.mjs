// envhub UI: the code editor, CodeMirror 6 with Python, bundled by the Makefile (esbuild) into
// /ui/editor.js. createEditor() puts an editor in @parent and returns a small handle; the
// pages never touch CodeMirror themselves.
//
// The editor lives in a shadow root of @parent: CodeMirror then brings its styles as
// constructed style sheets of that root instead of a <style> element, which the UI's
// Content-Security-Policy (style-src 'self') refuses. The page's stylesheet does not reach
// inside: the look is set here (CSS variables, such as --mono, do reach in).
//
// Keys: Tab / Shift+Tab indent and dedent by four spaces; Escape then Tab leaves the editor
// (keyboard users are never trapped); Ctrl/Cmd+Enter calls @onRun, Shift+Enter @onShiftRun
// (or @onRun when there is none).
import { basicSetup } from "codemirror";
import { indentWithTab } from "@codemirror/commands";
import { python } from "@codemirror/lang-python";
import { indentUnit } from "@codemirror/language";
import { EditorState, Prec } from "@codemirror/state";
import { EditorView, keymap } from "@codemirror/view";

export function createEditor(parent, { doc = "", onRun, onShiftRun, onChange, label = "Code (Python)", id } = {}) {
  const run = () => {
    if (onRun) onRun();
    return true;
  };
  const shiftRun = () => {
    if (onShiftRun) onShiftRun();
    else if (onRun) onRun();
    return true;
  };
  const root = parent.attachShadow({ mode: "open" });
  const view = new EditorView({
    root,
    parent: root,
    state: EditorState.create({
      doc,
      extensions: [
        Prec.highest(keymap.of([{ key: "Mod-Enter", run }, { key: "Shift-Enter", run: shiftRun }])),
        basicSetup,
        keymap.of([indentWithTab]),
        python(),
        indentUnit.of("    "),
        EditorState.tabSize.of(4),
        EditorView.theme({
          "&": { fontSize: "14px", minHeight: "120px", backgroundColor: "#fff" },
          "&.cm-focused": { outline: "none" },
          ".cm-scroller": { fontFamily: "var(--mono, monospace)", lineHeight: "1.45", minHeight: "120px" },
        }),
        EditorView.contentAttributes.of(Object.assign({ "aria-label": label }, id ? { id } : {})),
        EditorView.updateListener.of((u) => {
          if (u.docChanged && onChange) onChange(u.state.doc.toString());
        }),
      ],
    }),
  });
  return {
    view,
    get value() {
      return view.state.doc.toString();
    },
    set value(text) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
    },
    focus() {
      view.focus();
    },
    destroy() {
      view.destroy();
    },
  };
}
