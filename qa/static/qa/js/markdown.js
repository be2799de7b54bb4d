// A small, safe reading of a project's instructions (markdown written by a manager, shown to
// annotators): headings, paragraphs, lists, **strong**, *emphasis*, `code` and http(s) links.
// It builds DOM nodes from text and never parses HTML, so whatever the instructions hold
// (`<script>`, `<img onerror>`) is shown as the characters it is.

import { h } from "./core.js";

const INLINE = /(\*\*[^*]+\*\*|\*[^*\s][^*]*\*|`[^`]+`|\[[^\]]+\]\([^)\s]+\))/g;

function inline(text) {
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    nodes.push(text.slice(last, match.index));
    const token = match[0];
    if (token.startsWith("**")) nodes.push(h("strong", {}, token.slice(2, -2)));
    else if (token.startsWith("`")) nodes.push(h("code", {}, token.slice(1, -1)));
    else if (token.startsWith("[")) {
      const [, label, href] = token.match(/^\[([^\]]+)\]\(([^)\s]+)\)$/);
      // Only web links: a javascript: or data: URL stays text.
      nodes.push(
        /^https?:\/\//i.test(href)
          ? h("a", { href, rel: "noopener noreferrer", target: "_blank" }, label)
          : token,
      );
    } else nodes.push(h("em", {}, token.slice(1, -1)));
    last = match.index + token.length;
  }
  nodes.push(text.slice(last));
  return nodes.filter((node) => node !== "");
}

/** The instructions as a document fragment. */
export function renderMarkdown(source) {
  const fragment = document.createDocumentFragment();
  let list = null;
  let paragraph = [];
  const flush = () => {
    if (paragraph.length) fragment.append(h("p", {}, inline(paragraph.join(" "))));
    paragraph = [];
  };
  for (const line of String(source || "").split(/\r?\n/)) {
    const heading = line.match(/^(#{1,4})\s+(.*)$/);
    const item = line.match(/^\s*(?:[-*]|\d+\.)\s+(.*)$/);
    if (heading) {
      flush();
      list = null;
      // The page's own headings come first: instructions start at h3.
      fragment.append(h(`h${Math.min(6, heading[1].length + 2)}`, {}, inline(heading[2])));
    } else if (item) {
      flush();
      if (!list) {
        list = h("ul");
        fragment.append(list);
      }
      list.append(h("li", {}, inline(item[1])));
    } else if (!line.trim()) {
      flush();
      list = null;
    } else {
      list = null;
      paragraph.push(line.trim());
    }
  }
  flush();
  return fragment;
}
