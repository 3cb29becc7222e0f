/**
 * `text` safe to print on a terminal: control characters (ESC, BEL, …) shown as `\xNN` escapes, and
 * characters that change how the rest reads without showing (bidirectional controls, zero-width
 * characters, tags, noncharacters) as `\uNNNN` (`\u{NNNNN}` above the BMP). Task text, results,
 * questions and what a user typed come from people, tools and models; printed raw, they could
 * recolour or retitle the terminal, hide what comes before them, reorder it on the screen, or carry
 * text a reader cannot see.
 */
export const printable = (text: string): string =>
  text
    .replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
    .replace(INVISIBLE, (c) => {
      const code = c.codePointAt(0)!;
      return code > 0xffff ? `\\u{${code.toString(16)}}` : `\\u${code.toString(16).padStart(4, '0')}`;
    });

/**
 * Bidi controls, zero-width space and invisible operators, the BOM, tag characters, noncharacters.
 * Not the zero-width joiners (U+200C, U+200D): emoji sequences and several scripts need them.
 */
const INVISIBLE = /[\u00ad\u061c\u180e\u200b\u200e\u200f\u202a-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb\ufffe\uffff]|\u{e0000}|[\u{e0001}-\u{e007f}]/gu;

/** Whether printing `text` as is would show something other than it (see {@link printable}). */
export const needsEscaping = (text: string): boolean => printable(text) !== text;
