// What diagnose prints comes partly from the server (greeting, replies, error texts that quote
// them). A server's bytes must not drive the operator's terminal: ESC [2J clears the screen,
// ESC ]0;...BEL retitles the window, CR rewrites a line, a C1 CSI (0x9b) does what ESC [ does
// on terminals that honour 8-bit controls. Pure functions; the report keeps the exact text.

// C0 controls, DEL and C1 controls. Reply text is decoded as latin1 (replies.ts replyText), so
// each byte a server sent is one code point U+0000-U+00FF: these are all the control bytes.
// eslint-disable-next-line no-control-regex -- matching control bytes is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g

/**
 * One line of human output: every control shown as `\xNN`, except LF, which in a report value
 * only ever joins the lines of a multi-line reply (the framer splits on LF) and is shown as
 * ` / `, as the verdict quotes replies. So a server cannot start a line of its own either
 * (a fake `Verdict: healthy`).
 */
export function printable(text: string): string {
  return text.replaceAll('\n', ' / ').replace(CONTROL, (c) => `\\x${hex(c)}`)
}

/**
 * The report as JSON, with DEL and the C1 controls written as `\u00NN` too: JSON.stringify
 * escapes only U+0000-U+001F, and `cat report.json` would send the rest to the terminal raw.
 * JSON.parse reads back exactly the server's text.
 */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/[\u007f-\u009f]/g, (c) => `\\u00${hex(c)}`)
}

function hex(c: string): string {
  return c.charCodeAt(0).toString(16).padStart(2, '0')
}
