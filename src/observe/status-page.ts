// The status page itself: one HTML document rendered on the server from a StatusSnapshot (so it
// reads the same with JavaScript off), with one inline stylesheet, inline SVG for the chart, and
// one inline script that keeps it live from /status/events (server-sent events), falling back to
// polling /status.json. Nothing is fetched from anywhere else, and the Content-Security-Policy
// says so: scripts and styles only by the hashes of these two, connections only to this origin,
// no images, no frames, no forms; Trusted Types leave the script no HTML sink to write into.
//
// Every value goes through `html`, a tagged template that escapes whatever is not already
// markup: a server's reply, a path or a user name on the page is text, whatever it contains.
// The script writes only textContent and attributes. A templating library would bring the same
// escaping and much more than one page needs; a dozen lines here are read in one look.
//
// One set of formatting functions serves both sides: fmtValue, getPath, isShown and chartBars
// are plain functions whose source is put into the page's script (Function.prototype.toString),
// so the snapshot the server renders and the update the script applies cannot drift apart.

import { createHash } from 'node:crypto'
import { ADDRESS_CLASSES } from '../net/address-policy.js'
import { FAILURE_REASONS, SESSION_REJECT_REASONS } from '../proxy/outcomes.js'
import type { StatusSnapshot } from './status.js'

// ---- escaping ------------------------------------------------------------------------------

/** Markup that is already safe: what `html` returns, and nothing a peer sent. */
export class SafeHtml {
  readonly html: string
  constructor(text: string) {
    this.html = text
  }

  toString(): string {
    return this.html
  }
}

/** Text as HTML, safe in element content and in a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;')
}

function toHtml(v: unknown): string {
  if (v instanceof SafeHtml) return v.html
  if (Array.isArray(v)) return v.map(toHtml).join('')
  if (v === null || v === undefined || v === false) return ''
  return escapeHtml(String(v))
}

/** A tagged template: each value is escaped unless it is SafeHtml; arrays are joined. */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0] ?? ''
  for (let i = 0; i < values.length; i++) out += toHtml(values[i]) + (strings[i + 1] ?? '')
  return new SafeHtml(out)
}

// ---- shared with the page's script (their source is copied into it: plain JavaScript only) -----

/** A value of the snapshot as the page shows it, by format name. */
export function fmtValue(f: string, v: unknown): string {
  if (v === null || v === undefined) return '–'
  if (f === 'int') return String(Math.round(Number(v)))
  if (f === 'bytes' || f === 'rate') {
    const units = ['B', 'kB', 'MB', 'GB', 'TB']
    let x = Number(v)
    let u = 0
    while (x >= 1000 && u < units.length - 1) {
      x = x / 1000
      u++
    }
    const text = u === 0 ? String(Math.round(x)) : x.toFixed(x < 10 ? 2 : 1)
    return text + ' ' + units[u] + (f === 'rate' ? '/s' : '')
  }
  if (f === 'ms') {
    const ms = Number(v) * 1000
    return ms.toFixed(ms < 10 ? 2 : 1) + ' ms'
  }
  if (f === 'time') {
    const s = String(v)
    return s.slice(0, 10) + ' ' + s.slice(11, 19) + ' UTC'
  }
  if (f === 'dur') {
    let s = Math.floor(Number(v))
    const d = Math.floor(s / 86400)
    s -= d * 86400
    const h = Math.floor(s / 3600)
    s -= h * 3600
    const m = Math.floor(s / 60)
    s -= m * 60
    if (d > 0) return d + ' d ' + h + ' h'
    if (h > 0) return h + ' h ' + m + ' min'
    if (m > 0) return m + ' min ' + s + ' s'
    return s + ' s'
  }
  if (f === 'ready') return v === true ? 'ready' : 'not ready'
  if (f === 'match') return v === true ? 'equals' : 'differs from'
  if (f === 'dialled') {
    const list = v as Array<{ address: string; error: string | null }>
    return list.map((d) => d.address + ' ' + (d.error === null ? 'connected' : d.error)).join(', ')
  }
  return String(v)
}

/** The value at a dotted path ("windows.since_start.bytes.download", "upstreams.0.ready"). */
export function getPath(data: unknown, path: string): unknown {
  let o = data
  for (const key of path.split('.')) {
    if (o === null || typeof o !== 'object') return undefined
    o = (o as Record<string, unknown>)[key]
  }
  return o
}

/** Whether an element that depends on a value is shown: a count above 0, a list or text not empty. */
export function isShown(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0
  if (typeof v === 'number') return v > 0
  if (v !== null && typeof v === 'object') return Object.values(v).some((x) => isShown(x))
  return v !== undefined && v !== null && v !== false && v !== ''
}

/**
 * The chart's geometry in a 600 x 100 viewBox: per minute, the y and height of the ok bar (at
 * the bottom), the cancelled bar on it and the failed bar on top; max is the tallest total.
 */
export function chartBars(chart: { ok: readonly number[]; failed: readonly number[]; cancelled: readonly number[] }): {
  max: number
  bars: Array<{ ok: number[]; cancelled: number[]; failed: number[] }>
} {
  let max = 0
  for (let i = 0; i < chart.ok.length; i++) max = Math.max(max, (chart.ok[i] ?? 0) + (chart.failed[i] ?? 0) + (chart.cancelled[i] ?? 0))
  const scale = max > 0 ? 96 / max : 0
  const bars = []
  for (let i = 0; i < chart.ok.length; i++) {
    const hOk = (chart.ok[i] ?? 0) * scale
    const hCancelled = (chart.cancelled[i] ?? 0) * scale
    const hFailed = (chart.failed[i] ?? 0) * scale
    const r = (x: number): number => Math.round(x * 100) / 100
    bars.push({
      ok: [r(100 - hOk), r(hOk)],
      cancelled: [r(100 - hOk - hCancelled), r(hCancelled)],
      failed: [r(100 - hOk - hCancelled - hFailed), r(hFailed)],
    })
  }
  return { max, bars }
}

// ---- the page's script ----------------------------------------------------------------------

// What the script does with each snapshot: [data-k] elements get their value's text, [data-show]
// and [data-hide] elements their hidden flag, the chart's bars their geometry, the failures list
// is rebuilt from the row template (textContent only), the verdict its level.
const CLIENT_MAIN = `
function fill(root, data, keyAttr, showAttr, hideAttr) {
  root.querySelectorAll('[' + keyAttr + ']').forEach(function (el) {
    var t = fmtValue(el.getAttribute('data-f') || 'text', getPath(data, el.getAttribute(keyAttr)));
    if (el.textContent !== t) el.textContent = t;
  });
  root.querySelectorAll('[' + showAttr + ']').forEach(function (el) { el.hidden = !isShown(getPath(data, el.getAttribute(showAttr))); });
  root.querySelectorAll('[' + hideAttr + ']').forEach(function (el) { el.hidden = isShown(getPath(data, el.getAttribute(hideAttr))); });
}
function render(s) {
  fill(document, s, 'data-k', 'data-show', 'data-hide');
  document.getElementById('verdict').setAttribute('data-level', s.verdict.level);
  var geo = chartBars(s.chart);
  document.querySelectorAll('[data-bar]').forEach(function (el) {
    var b = geo.bars[Number(el.getAttribute('data-i'))];
    if (!b) return;
    var g = b[el.getAttribute('data-bar')];
    el.setAttribute('y', String(g[0]));
    el.setAttribute('height', String(g[1]));
  });
  document.getElementById('chart-max').textContent = String(geo.max);
  var list = document.getElementById('failures');
  var tpl = document.getElementById('failure-row');
  var rows = s.failures.map(function (f) {
    var li = tpl.content.firstElementChild.cloneNode(true);
    fill(li, f, 'data-fk', 'data-fshow', 'data-fhide');
    return li;
  });
  list.replaceChildren.apply(list, rows);
}
var live = document.getElementById('live');
function updated(how, s) { live.textContent = how + ', updated ' + fmtValue('time', s.generated_at); }
var polling = null;
function poll() {
  fetch('status.json', { cache: 'no-store' }).then(function (r) { return r.json(); }).then(function (s) {
    render(s);
    updated('Polling every 5 s', s);
  }).catch(function () { live.textContent = 'Cannot reach the proxy; retrying every 5 s'; });
}
function startPolling() {
  if (polling !== null) return;
  poll();
  polling = setInterval(poll, 5000);
}
if (typeof EventSource === 'function') {
  var es = new EventSource('status/events');
  es.addEventListener('status', function (e) {
    var s = JSON.parse(e.data);
    render(s);
    updated('Live', s);
  });
  es.onerror = function () {
    if (es.readyState === EventSource.CLOSED) startPolling();
    else live.textContent = 'Connection lost; reconnecting';
  };
} else {
  startPolling();
}
`

export const PAGE_SCRIPT = `'use strict';(function () {
${[fmtValue, getPath, isShown, chartBars].map((f) => f.toString()).join('\n')}
${CLIENT_MAIN}})();`

export const PAGE_STYLE = `
:root { color-scheme: light dark; --bg: #f5f6f8; --fg: #1b1f24; --muted: #57606a; --card: #ffffff; --line: #d0d7de;
  --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --cancel: #8c959f; --code: #eef1f4; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --card: #161b22; --line: #30363d;
    --ok: #3fb950; --bad: #f85149; --warn: #d29922; --cancel: #6e7681; --code: #1f2630; }
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; background: var(--bg); color: var(--fg); font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header, main, footer { max-width: 76rem; margin: 0 auto; padding: 0 1rem; }
header { padding-top: 1rem; }
h1 { font-size: 1.35rem; margin: 0 0 .25rem; }
h2 { font-size: 1rem; margin: 0 0 .5rem; }
.meta, .live, footer p, .note { color: var(--muted); font-size: .9rem; margin: .2rem 0; }
#verdict { margin: 1rem 0; padding: .8rem 1rem; background: var(--card); border: 1px solid var(--line); border-left: 8px solid var(--cancel); border-radius: 6px; }
#verdict[data-level="ok"], #verdict[data-level="bridging"] { border-left-color: var(--ok); }
#verdict[data-level="degraded"] { border-left-color: var(--warn); }
#verdict[data-level="failing"], #verdict[data-level="unready"] { border-left-color: var(--bad); }
#verdict p { margin: 0; }
#verdict .headline { font-size: 1.1rem; font-weight: 600; }
#verdict .hint { margin-top: .35rem; color: var(--muted); overflow-wrap: anywhere; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(21rem, 1fr)); gap: .8rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem; min-width: 0; overflow-x: auto; }
td:first-child { overflow-wrap: break-word; }
table { width: 100%; border-collapse: collapse; }
table + table { margin-top: .6rem; }
th.n { white-space: normal; }
th, td { padding: .2rem .25rem; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: .85rem; }
.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; font-size: .92rem; }
code, .reply { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .85rem; }
.reply { display: block; white-space: pre-wrap; overflow-wrap: anywhere; background: var(--code); padding: .2rem .4rem; border-radius: 4px; }
svg.chart { width: 100%; height: 8rem; display: block; background: var(--code); border-radius: 4px; }
.bar-ok { fill: var(--ok); } .bar-failed { fill: var(--bad); } .bar-cancelled { fill: var(--cancel); }
.legend { font-size: .85rem; color: var(--muted); display: flex; flex-wrap: wrap; gap: .2rem 1rem; margin-top: .3rem; }
.sw { display: inline-block; width: .8rem; height: .8rem; border-radius: 2px; vertical-align: -1px; margin-right: .25rem; }
.sw-ok { background: var(--ok); } .sw-failed { background: var(--bad); } .sw-cancelled { background: var(--cancel); }
.good { color: var(--ok); } .bad { color: var(--bad); }
#failures-section { margin: 1rem 0; }
ol.failures { list-style: none; padding: 0; margin: 0; display: grid; gap: .6rem; }
.failure { background: var(--card); border: 1px solid var(--line); border-left: 4px solid var(--bad); border-radius: 6px; padding: .6rem .8rem; min-width: 0; }
.failure .head { display: flex; flex-wrap: wrap; gap: .2rem .8rem; align-items: baseline; }
.failure .reason { font-weight: 600; color: var(--bad); }
.failure .hint { margin: .3rem 0; overflow-wrap: anywhere; }
.failure dl { margin: 0; display: grid; grid-template-columns: max-content 1fr; gap: .1rem .6rem; font-size: .9rem; }
.failure dl > div { display: contents; }
.failure dt { color: var(--muted); }
.failure dd { margin: 0; min-width: 0; overflow-wrap: anywhere; }
footer { padding-bottom: 2rem; }
@media (max-width: 40rem) {
  body { font-size: 14px; }
  .grid { grid-template-columns: 1fr; }
  .card { padding: .6rem .6rem; }
  th, td { padding: .15rem .2rem; }
  .failure dl { grid-template-columns: 1fr; }
  .failure dt { margin-top: .2rem; }
}
`

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('base64')

/**
 * The page's Content-Security-Policy: its own script and stylesheet by hash, fetches and event
 * streams to this origin only, nothing else from anywhere; Trusted Types with no policy, so no
 * string can be written into an HTML or script sink even by the page's own script.
 */
export const PAGE_CSP = [
  "default-src 'none'",
  `script-src 'sha256-${sha256(PAGE_SCRIPT)}'`,
  `style-src 'sha256-${sha256(PAGE_STYLE)}'`,
  "connect-src 'self'",
  "img-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ')

// ---- the document ---------------------------------------------------------------------------

const WINDOWS = [
  ['last_minute', 'last min'],
  ['last_hour', 'last hour'],
  ['since_start', 'since start'],
] as const

/** A reason code that may wrap after each underscore on a narrow screen. */
const breakable = (code: string): SafeHtml => new SafeHtml(code.split('_').map(escapeHtml).join('_<wbr>'))

/** A value of the snapshot as an element the script keeps up to date. */
function field(s: unknown, path: string, f = 'text', tag = 'span', cls = ''): SafeHtml {
  const text = fmtValue(f, getPath(s, path))
  return new SafeHtml(`<${tag}${cls === '' ? '' : ` class="${cls}"`} data-k="${escapeHtml(path)}" data-f="${f}">${escapeHtml(text)}</${tag}>`)
}

const num = (s: unknown, path: string, f = 'int'): SafeHtml => field(s, path, f, 'td', 'n')

/** Attributes of an element shown only when the value at `path` is (see isShown). */
function show(s: unknown, path: string, attr = 'data-show'): SafeHtml {
  return new SafeHtml(` ${attr}="${escapeHtml(path)}"${isShown(getPath(s, path)) ? '' : ' hidden'}`)
}

function hide(s: unknown, path: string): SafeHtml {
  return new SafeHtml(` data-hide="${escapeHtml(path)}"${isShown(getPath(s, path)) ? ' hidden' : ''}`)
}

/** One failed data connection; with no entry, the template the script fills. */
function failureRow(f: StatusSnapshot['failures'][number] | null): SafeHtml {
  const k = (path: string, fmt = 'text', tag = 'span', cls = ''): SafeHtml => {
    const text = f === null ? '' : fmtValue(fmt, getPath(f, path))
    return new SafeHtml(`<${tag}${cls === '' ? '' : ` class="${cls}"`} data-fk="${path}" data-f="${fmt}">${escapeHtml(text)}</${tag}>`)
  }
  const when = (path: string): SafeHtml => new SafeHtml(` data-fshow="${path}"${f !== null && isShown(getPath(f, path)) ? '' : ' hidden'}`)
  return html`<li class="failure">
<div class="head">${k('at', 'time', 'time')} ${k('reason', 'text', 'span', 'reason')} <span>session ${k('session')}</span></div>
<p class="hint">${k('hint')}</p>
<dl>
<div${when('advertised')}><dt>server advertised</dt><dd>${k('advertised')} (${k('advertised_class')})</dd></div>
<div${when('dialled')}><dt>proxy dialled</dt><dd>${k('dialled', 'dialled')}</dd></div>
<div${when('server_reply')}><dt>server replied</dt><dd>${k('server_reply', 'text', 'code', 'reply')}</dd></div>
<div${when('command')}><dt>command</dt><dd>${k('command')}</dd></div>
<div${when('path')}><dt>path</dt><dd>${k('path', 'text', 'code')}</dd></div>
<div${when('error')}><dt>error</dt><dd>${k('error')}</dd></div>
<div${when('client')}><dt>client</dt><dd>${k('client')}</dd></div>
<div${when('user')}><dt>user</dt><dd>${k('user')}</dd></div>
</dl>
</li>`
}

function chartSvg(s: StatusSnapshot): SafeHtml {
  const geo = chartBars(s.chart)
  const rects: SafeHtml[] = []
  geo.bars.forEach((b, i) => {
    for (const kind of ['ok', 'cancelled', 'failed'] as const) {
      const [y, h] = b[kind]
      rects.push(html`<rect class="bar-${kind}" data-bar="${kind}" data-i="${i}" x="${i * 10 + 1}" y="${y}" width="8" height="${h}"></rect>`)
    }
  })
  return html`<svg class="chart" viewBox="0 0 600 100" preserveAspectRatio="none" role="img" aria-label="Data connections per minute over the last hour: ok, cancelled and failed">${rects}</svg>
<div class="legend"><span><i class="sw sw-ok"></i>ok</span><span><i class="sw sw-cancelled"></i>cancelled</span><span><i class="sw sw-failed"></i>failed</span><span>tallest bar: <b id="chart-max">${geo.max}</b> per minute; 60 min ago at the left, now at the right</span></div>`
}

/** The whole page for one snapshot. */
export function renderPage(s: StatusSnapshot): string {
  const windowHeads = WINDOWS.map(([, label]) => html`<th class="n">${label}</th>`)
  const byWindow = (path: (w: string) => string, f = 'int'): SafeHtml[] => WINDOWS.map(([w]) => num(s, path(w), f))
  const page = html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="no-referrer">
<title>ftp-pasv-proxy status</title>
<style>${new SafeHtml(PAGE_STYLE)}</style>
</head>
<body>
<header>
<h1>ftp-pasv-proxy status</h1>
<p class="meta">FTP server ${field(s, 'upstreams.0.address', 'text', 'code')}: ${field(s, 'upstreams.0.ready', 'ready', 'b')}<span${show(s, 'upstreams.0.not_ready_reason')}> (${field(s, 'upstreams.0.not_ready_reason')})</span> · up ${field(s, 'uptime_seconds', 'dur')} · version ${field(s, 'version')}</p>
<p class="live" id="live">Snapshot of ${field(s, 'generated_at', 'time')}; reload the page for new figures.</p>
</header>
<main>
<section id="verdict" data-level="${s.verdict.level}" aria-live="polite">
<p class="headline">${field(s, 'verdict.text')}</p>
<p class="hint"${show(s, 'verdict.hint')}>${field(s, 'verdict.hint')}</p>
</section>
<div class="grid">
<section class="card" id="data-connections">
<h2>Data connections</h2>
<table>
<thead><tr><th>result</th>${windowHeads}</tr></thead>
<tbody>
<tr><td class="good">ok</td>${byWindow((w) => `windows.${w}.data_connections.ok`)}</tr>
<tr><td class="bad">failed</td>${byWindow((w) => `windows.${w}.data_connections.failed`)}</tr>
<tr><td>cancelled</td>${byWindow((w) => `windows.${w}.data_connections.cancelled`)}</tr>
</tbody>
</table>
</section>
<section class="card" id="failure-reasons">
<h2>Failures by reason</h2>
<table>
<thead><tr><th>reason</th>${windowHeads}</tr></thead>
<tbody>
${FAILURE_REASONS.map((r) => html`<tr data-reason="${r}"${show(s, `windows.since_start.failures.${r}`)}><td><code>${breakable(r)}</code></td>${byWindow((w) => `windows.${w}.failures.${r}`)}</tr>`)}
<tr${hide(s, 'windows.since_start.data_connections.failed')}><td colspan="4">No data connection has failed since the start.</td></tr>
</tbody>
</table>
</section>
<section class="card" id="chart">
<h2>Last hour, per minute</h2>
${chartSvg(s)}
</section>
<section class="card" id="advertised">
<h2>What the server advertises</h2>
<table>
<thead><tr><th>address class</th><th class="n">same as control</th><th class="n">differs</th></tr></thead>
<tbody>
${ADDRESS_CLASSES.map((c) => html`<tr data-class="${c}"${show(s, `windows.since_start.advertised.${c}`)}><td>${c}</td>${num(s, `windows.since_start.advertised.${c}.matches_control`)}${num(s, `windows.since_start.advertised.${c}.differs`)}</tr>`)}
<tr${hide(s, 'windows.since_start.advertised')}><td colspan="3">No passive reply named an address yet (counts since start).</td></tr>
</tbody>
</table>
<p class="note"${show(s, 'upstreams.0.last_advertised')}>Last: ${field(s, 'upstreams.0.last_advertised.address', 'text', 'code')} (${field(s, 'upstreams.0.last_advertised.class')}), which ${field(s, 'upstreams.0.last_advertised.matches_control', 'match')} the server's control address ${field(s, 'upstreams.0.last_advertised.control_address', 'text', 'code')}, at ${field(s, 'upstreams.0.last_advertised.at', 'time')}.</p>
</section>
<section class="card" id="sessions">
<h2>Sessions and the passive pool</h2>
<table>
<thead><tr><th></th><th class="n">now</th><th class="n">peak, last hour</th><th class="n">limit or size</th></tr></thead>
<tbody>
<tr><td>sessions</td>${num(s, 'sessions.active')}${num(s, 'sessions.peak_last_hour')}${num(s, 'sessions.limit')}</tr>
<tr><td>pool ports</td>${num(s, 'pool.in_use')}${num(s, 'pool.peak_last_hour')}${num(s, 'pool.size')}</tr>
</tbody>
</table>
<table>
<thead><tr><th></th>${windowHeads}</tr></thead>
<tbody>
<tr><td>started</td>${byWindow((w) => `windows.${w}.sessions`)}</tr>
${SESSION_REJECT_REASONS.map((r) => html`<tr${show(s, `windows.since_start.sessions_rejected.${r}`)}><td>refused: <code>${breakable(r)}</code></td>${byWindow((w) => `windows.${w}.sessions_rejected.${r}`)}</tr>`)}
</tbody>
</table>
</section>
<section class="card" id="throughput">
<h2>Bytes and connect latency</h2>
<table>
<thead><tr><th></th><th class="n">per s, last min</th><th class="n">per s, last hour</th><th class="n">bytes since start</th></tr></thead>
<tbody>
<tr><td>download</td>${num(s, 'windows.last_minute.bytes_per_second.download', 'rate')}${num(s, 'windows.last_hour.bytes_per_second.download', 'rate')}${num(s, 'windows.since_start.bytes.download')}</tr>
<tr><td>upload</td>${num(s, 'windows.last_minute.bytes_per_second.upload', 'rate')}${num(s, 'windows.last_hour.bytes_per_second.upload', 'rate')}${num(s, 'windows.since_start.bytes.upload')}</tr>
</tbody>
</table>
<table>
<thead><tr><th>data connect</th>${windowHeads}</tr></thead>
<tbody>
<tr><td>p50</td>${byWindow((w) => `windows.${w}.data_connect_seconds.p50`, 'ms')}</tr>
<tr><td>p95</td>${byWindow((w) => `windows.${w}.data_connect_seconds.p95`, 'ms')}</tr>
<tr><td>measured</td>${byWindow((w) => `windows.${w}.data_connect_seconds.count`)}</tr>
</tbody>
</table>
</section>
</div>
<section id="failures-section">
<h2>Recent failures</h2>
<p class="note">${field(s, 'failures_recorded', 'int')} failed data connections since the start; the newest ${field(s, 'failures_kept_max', 'int')} are kept here, newest first.<span${hide(s, 'show_clients')}> Client addresses and users are hidden (--status-show-clients shows them).</span></p>
<ol class="failures" id="failures">${s.failures.map((f) => failureRow(f))}</ol>
<template id="failure-row">${failureRow(null)}</template>
</section>
</main>
<footer>
<p>Figures from this proxy's own counters since it started (windows from samples every 5 s); the same in <code>status.json</code> (docs/status.md), and for Prometheus in <code>metrics</code>.</p>
</footer>
<script>${new SafeHtml(PAGE_SCRIPT)}</script>
</body>
</html>
`
  return page.html
}
