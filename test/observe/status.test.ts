// The status page's figures and its HTTP endpoints, without a browser (test/e2e/status-page.test.ts
// has the browser): the pure parts by table, the board's windows on a clock of its own, and
// /status.json field by field after a known scenario through an in-process proxy in front of the
// scriptable server double, compared with /metrics. Ports: 31000-31099.
import { EventEmitter } from 'node:events'
import http from 'node:http'
import t from 'tap'
import { loadConfig } from '../../src/config.js'
import type { Config } from '../../src/config-types.js'
import { hintFor } from '../../src/proxy/hints.js'
import { createMetrics } from '../../src/observe/metrics.js'
import { hostAllowed, startObserveServer, type ObserveServer } from '../../src/observe/http.js'
import { UpstreamReadiness } from '../../src/observe/readiness.js'
import {
  CHART_MINUTES,
  FAILURE_RING,
  StatusBoard,
  cleanText,
  histogramQuantile,
  isLoopbackHost,
  statusPageOn,
  verdictOf,
  type StatusSnapshot,
  type VerdictInput,
} from '../../src/observe/status.js'
import { PAGE_CSP, PAGE_SCRIPT, PAGE_STYLE, SafeHtml, chartBars, escapeHtml, fmtValue, getPath, html, isShown, renderPage } from '../../src/observe/status-page.js'
import { StatusStream } from '../../src/observe/status-stream.js'
import { startFaultServer, waitFor } from '../faults/helpers.js'
import { startProxy } from '../fixtures/proxy.js'
import { pasvEndpoint, RawFtp, readAll } from '../fixtures/raw-ftp.js'
import { createHash } from 'node:crypto'

t.setTimeout(60_000)

interface Got {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

function get(url: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers ?? {} }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }))
    })
    req.on('error', reject)
    req.setTimeout(5000, () => req.destroy(new Error('timeout')))
    req.end()
  })
}

/** One value of /metrics text, exactly as Prometheus would read it. */
function sample(text: string, name: string, labels = ''): number {
  const head = labels === '' ? `${name} ` : `${name}{${labels}} `
  const line = text.split('\n').find((l) => l.startsWith(head))
  if (line === undefined) throw new Error(`no series ${head}`)
  return Number(line.slice(head.length))
}

const cfg = (args: string[] = []): Config => loadConfig(['--upstream', '127.0.0.1:21', ...args], {})

// ---- pure parts --------------------------------------------------------------------------------

t.test('--status-page: auto means on only for a loopback metrics listener', async (t) => {
  const cases: Array<[string[], boolean]> = [
    [[], true],
    [['--metrics-listen', '127.0.0.2:9464'], true],
    [['--metrics-listen', '[::1]:9464'], true],
    [['--metrics-listen', 'localhost:9464'], true],
    [['--metrics-listen', '0.0.0.0:9464'], false],
    [['--metrics-listen', '[::]:9464'], false],
    [['--metrics-listen', '10.0.0.5:9464'], false],
    [['--metrics-listen', 'metrics.example.com:9464'], false],
    [['--metrics-listen', '0.0.0.0:9464', '--status-page', 'on'], true],
    [['--status-page', 'off'], false],
    [['--metrics-listen', 'off', '--status-page', 'on'], false],
  ]
  for (const [args, on] of cases) t.equal(statusPageOn(cfg(args)), on, args.join(' ') || 'defaults')
  t.ok(isLoopbackHost('::ffff:127.0.0.1'))
  t.ok(isLoopbackHost('LOCALHOST.'))
  t.notOk(isLoopbackHost('localhost.example.com'))
})

t.test('Host header of a status request on a loopback listener (DNS rebinding)', async (t) => {
  const cases: Array<[string | undefined, boolean]> = [
    [undefined, true],
    ['127.0.0.1:9464', true],
    ['127.0.0.1', true],
    ['[::1]:9464', true],
    ['localhost:9464', true],
    ['10.1.2.3:9464', true],
    ['attacker.example:9464', false],
    ['attacker.example', false],
    ['127.0.0.1.nip.io:9464', false],
    ['[::1', false],
    ['a:b:c', false],
  ]
  for (const [host, ok] of cases) t.equal(hostAllowed(host), ok, String(host))
})

t.test("a peer's text is kept cleaned and bounded", async (t) => {
  t.equal(cleanText('227 ok\r\n', 100), '227 ok\n', 'CR dropped, LF kept')
  t.equal(cleanText('a\u0000b\u0007c\u001bd\u007fe\u0085f', 100), 'a\ufffdb\ufffdc\ufffdd\ufffde\ufffdf', 'C0, DEL and C1 replaced')
  t.equal(cleanText('x\u202ey\u2066z\u2028w', 100), 'x\ufffdy\ufffdz\ufffdw', 'bidi controls and separators replaced')
  t.equal(cleanText('abcdef', 4), 'abc…', 'cut with an ellipsis')
  t.equal(cleanText('<script>', 100), '<script>', 'not escaped here: the renderer escapes')
})

t.test('histogram quantiles as histogram_quantile estimates them', async (t) => {
  const b = (...pairs: Array<[number, number]>): Array<{ le: number; count: number }> => pairs.map(([le, count]) => ({ le, count }))
  t.equal(histogramQuantile(0.5, b([1, 0], [Infinity, 0])), null, 'no observation')
  t.equal(histogramQuantile(0.5, b([0.01, 10], [0.1, 10], [Infinity, 10])), 0.005, 'half of the first bucket, from 0')
  const within = histogramQuantile(0.95, b([0.01, 0], [0.1, 10], [Infinity, 10])) ?? 0
  t.ok(Math.abs(within - 0.0955) < 1e-12, `within the second bucket, linearly (${within})`)
  t.equal(histogramQuantile(0.5, b([0.01, 0], [0.1, 0], [Infinity, 4])), 0.1, 'in +Inf: the highest finite bound')
  t.equal(histogramQuantile(0.5, b([1, 2], [2, 2], [Infinity, 2])), 0.5)
})

t.test('the verdict', async (t) => {
  const none = { upstream_refused: 0, upstream_timeout: 0, upstream_unreachable: 0, client_timeout: 0, pool_exhausted: 0, bad_passive_reply: 0, reset: 0, data_address_refused: 0, lease_limit: 0, data_idle: 0, tls_handshake: 0 }
  const base: VerdictInput = { notReady: null, lastHour: { data_connections: { ok: 0, failed: 0, cancelled: 0 }, failures: none }, failures: [], lastAdvertised: null, now: 10_000_000 }
  t.match(verdictOf({ ...base, notReady: 'the last connect to the FTP server failed 3 s ago: ECONNREFUSED' }), {
    level: 'unready',
    text: "The FTP server's control port does not answer: the last connect to the FTP server failed 3 s ago: ECONNREFUSED.",
  })
  t.same(verdictOf(base), { level: 'idle', text: 'No data connection has ended in the last hour.', reason: null, hint: null })
  t.same(verdictOf({ ...base, lastHour: { data_connections: { ok: 4, failed: 0, cancelled: 1 }, failures: none } }), {
    level: 'ok',
    text: 'Data connections work: 4 in the last hour, none failed.',
    reason: null,
    hint: null,
  })
  const adv = { address: '172.16.40.222', matchesControl: false, control: '203.0.113.9', at: base.now - 1000 }
  const bridging = verdictOf({ ...base, lastHour: { data_connections: { ok: 4, failed: 0, cancelled: 0 }, failures: none }, lastAdvertised: adv })
  t.equal(bridging.level, 'bridging')
  t.equal(bridging.text, 'Data connections work: the server advertises 172.16.40.222, not its own address 203.0.113.9; the proxy bridges it.')
  t.match(bridging.hint, /vsftpd pasv_address/)
  const old = verdictOf({ ...base, lastHour: { data_connections: { ok: 4, failed: 0, cancelled: 0 }, failures: none }, lastAdvertised: { ...adv, at: base.now - 3_700_000 } })
  t.equal(old.level, 'ok', 'an address advertised over an hour ago no longer counts')
  const failures = [
    { reason: 'client_timeout' as const, hint: 'newest client hint' },
    { reason: 'upstream_refused' as const, hint: 'newest refused hint' },
    { reason: 'upstream_refused' as const, hint: 'older refused hint' },
  ]
  const failing = verdictOf({ ...base, lastHour: { data_connections: { ok: 0, failed: 3, cancelled: 0 }, failures: { ...none, upstream_refused: 2, client_timeout: 1 } }, failures })
  t.same(failing, {
    level: 'failing',
    text: "Data connections are failing: 3 of 3 in the last hour, most because the server's data port refused the proxy (upstream_refused).",
    reason: 'upstream_refused',
    hint: 'newest refused hint',
  })
  const degraded = verdictOf({ ...base, lastHour: { data_connections: { ok: 5, failed: 1, cancelled: 1 }, failures: { ...none, pool_exhausted: 1 } }, failures, lastAdvertised: adv })
  t.same(degraded, {
    level: 'degraded',
    text: 'Some data connections fail: 1 of 7 in the last hour, most because every port of the passive pool was in use (pool_exhausted).',
    reason: 'pool_exhausted',
    hint: null,
  }, 'no hint when no kept failure has that reason')
})

t.test('escaping and the shared formatters', async (t) => {
  t.equal(escapeHtml('<img src=x onerror="a(\'1\')">&'), '&lt;img src=x onerror=&quot;a(&#39;1&#39;)&quot;&gt;&amp;')
  const hostile = '<script>alert(1)</script>'
  t.equal(html`<p title="${hostile}">${hostile}</p>`.html, '<p title="&lt;script&gt;alert(1)&lt;/script&gt;">&lt;script&gt;alert(1)&lt;/script&gt;</p>')
  t.equal(html`<ul>${['<a>', new SafeHtml('<li>b</li>'), null, undefined, false, 0]}</ul>`.html, '<ul>&lt;a&gt;<li>b</li>0</ul>')
  t.equal(String(new SafeHtml('<b>')), '<b>')
  const fmt: Array<[string, unknown, string]> = [
    ['int', 12345.4, '12345'],
    ['int', null, '–'],
    ['int', undefined, '–'],
    ['bytes', 999, '999 B'],
    ['bytes', 1500, '1.50 kB'],
    ['bytes', 70_000_000, '70.0 MB'],
    ['bytes', 5e15, '5000.0 TB'],
    ['rate', 2_500_000, '2.50 MB/s'],
    ['rate', 0, '0 B/s'],
    ['ms', 0.00042, '0.42 ms'],
    ['ms', 0.25, '250.0 ms'],
    ['time', '2026-12-01T20:49:04.123Z', '2026-12-01 20:49:04 UTC'],
    ['dur', 12.7, '12 s'],
    ['dur', 125, '2 min 5 s'],
    ['dur', 7300, '2 h 1 min'],
    ['dur', 90000, '1 d 1 h'],
    ['ready', true, 'ready'],
    ['ready', false, 'not ready'],
    ['match', true, 'equals'],
    ['match', false, 'differs from'],
    ['dialled', [{ address: '127.0.0.1:21000', error: 'ECONNREFUSED' }, { address: '127.0.0.99:21000', error: null }], '127.0.0.1:21000 ECONNREFUSED, 127.0.0.99:21000 connected'],
    ['text', '<b>', '<b>'],
  ]
  for (const [f, v, want] of fmt) t.equal(fmtValue(f, v), want, `${f} ${JSON.stringify(v)}`)
  const data = { a: { b: [{ c: 3 }] }, n: null }
  t.equal(getPath(data, 'a.b.0.c'), 3)
  t.equal(getPath(data, 'a.x.y'), undefined)
  t.equal(getPath(data, 'n.x'), undefined)
  const shown: Array<[unknown, boolean]> = [[0, false], [2, true], [[], false], [[1], true], [{ a: 0, b: { c: 0 } }, false], [{ a: 0, b: { c: 1 } }, true], ['', false], ['x', true], [null, false], [undefined, false], [true, true], [false, false]]
  for (const [v, want] of shown) t.equal(isShown(v), want, JSON.stringify(v) ?? 'undefined')
  const geo = chartBars({ ok: [0, 2, 4], failed: [0, 2, 0], cancelled: [0, 0, 0] })
  t.equal(geo.max, 4)
  t.same(geo.bars[0], { ok: [100, 0], cancelled: [100, 0], failed: [100, 0] })
  t.same(geo.bars[1], { ok: [52, 48], cancelled: [52, 0], failed: [4, 48] })
  t.same(geo.bars[2], { ok: [4, 96], cancelled: [4, 0], failed: [4, 0] })
  t.same(chartBars({ ok: [0], failed: [0], cancelled: [0] }), { max: 0, bars: [{ ok: [100, 0], cancelled: [100, 0], failed: [100, 0] }] })
})

t.test("the page's script and style are what the CSP allows, and the script has no way out", async (t) => {
  const hash = (s: string): string => createHash('sha256').update(s).digest('base64')
  t.match(PAGE_CSP, `script-src 'sha256-${hash(PAGE_SCRIPT)}'`)
  t.match(PAGE_CSP, `style-src 'sha256-${hash(PAGE_STYLE)}'`)
  t.match(PAGE_CSP, /^default-src 'none'; /)
  t.match(PAGE_CSP, "connect-src 'self'")
  t.match(PAGE_CSP, "require-trusted-types-for 'script'")
  t.notMatch(PAGE_SCRIPT, '</', 'nothing in the script can end its element')
  t.notMatch(PAGE_SCRIPT, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/, 'no HTML or code sink')
  t.notMatch(PAGE_SCRIPT + PAGE_STYLE, /\b(https?|wss?|ftp):\/\/|url\(|@import/i, 'no URL anywhere')
})

// ---- the board on a clock of its own --------------------------------------------------------

function boardOnClock(extra: string[] = []): { board: StatusBoard; clock: { now: number }; metrics: ReturnType<typeof createMetrics>; config: Config } {
  const clock = { now: Date.UTC(2026, 0, 1, 12, 0, 0) }
  const metrics = createMetrics({ version: 'test', defaultMetrics: false })
  const config = cfg(extra)
  const readiness = new UpstreamReadiness(() => config.upstream, () => 1000)
  readiness.record(true)
  const board = new StatusBoard({ metrics, readiness, config: () => config, now: () => clock.now })
  return { board, clock, metrics, config }
}

t.test('windows, chart and peaks over two hours of samples, bounded', async (t) => {
  const { board, clock, metrics } = boardOnClock()
  const start = clock.now
  await board.tick(true)
  // Minute 0: 3 ok; minute 30: 2 failed (upstream_refused); minute 90: 1 ok, 1 cancelled, 1 failed
  // (client_timeout); 5 MB downloaded at minute 119.5. Samples every 5 s, as the timer takes them.
  const events: Record<number, () => void> = {
    0: () => {
      metrics.leaseEnded({ result: 'ok' })
      metrics.leaseEnded({ result: 'ok' })
      metrics.leaseEnded({ result: 'ok' })
      metrics.dataConnectSeconds.observe(0.003)
    },
    [30 * 60]: () => {
      metrics.leaseEnded({ result: 'failed', reason: 'upstream_refused' })
      metrics.leaseEnded({ result: 'failed', reason: 'upstream_refused' })
      metrics.sessionsActive.set(3)
    },
    [31 * 60]: () => metrics.sessionsActive.set(0),
    [90 * 60]: () => {
      metrics.leaseEnded({ result: 'ok' })
      metrics.leaseEnded({ result: 'cancelled', reason: 'replaced' })
      metrics.leaseEnded({ result: 'failed', reason: 'client_timeout' })
      metrics.sessionsTotal.inc(2)
      metrics.dataConnectSeconds.observe(0.2)
    },
    [119 * 60 + 30]: () => metrics.dataBytes.inc({ direction: 'download' }, 5_000_000),
  }
  let maxHeld = 0
  let peakAtOneHour = -1
  for (let s = 0; s <= 120 * 60; s += 5) {
    clock.now = start + s * 1000
    events[s]?.()
    await board.tick(true)
    maxHeld = Math.max(maxHeld, board.samplesHeld)
    if (s === 60 * 60) peakAtOneHour = (await board.snapshot()).sessions.peak_last_hour
  }
  t.equal(peakAtOneHour, 3, 'an hour in, the peak of minute 30 is in the window')
  t.ok(maxHeld <= 3600 / 5 + 2, `at most an hour of samples and one more held (${maxHeld})`)
  clock.now = start + 120 * 60 * 1000 + 2000
  const snap = await board.snapshot()
  t.same(snap.windows.since_start.data_connections, { ok: 4, failed: 3, cancelled: 1 })
  t.same(snap.windows.last_hour.data_connections, { ok: 1, failed: 1, cancelled: 1 }, 'the events of minute 90 only')
  t.equal(snap.windows.last_hour.failures.client_timeout, 1)
  t.equal(snap.windows.last_hour.failures.upstream_refused, 0)
  t.same(snap.windows.last_minute.data_connections, { ok: 0, failed: 0, cancelled: 0 })
  t.equal(snap.windows.last_minute.bytes.download, 5_000_000, 'the bytes of minute 119.5')
  t.ok(snap.windows.last_minute.seconds >= 60 && snap.windows.last_minute.seconds <= 65, `last minute spans 60-65 s (${snap.windows.last_minute.seconds})`)
  t.equal(snap.windows.last_minute.bytes_per_second.download, Math.round((5_000_000 / snap.windows.last_minute.seconds) * 1000) / 1000)
  t.equal(snap.windows.since_start.seconds, 7202)
  t.equal(snap.windows.since_start.sessions, 2)
  t.same(snap.windows.since_start.data_connect_seconds.count, 2)
  t.equal(snap.windows.last_hour.data_connect_seconds.count, 1)
  t.equal(snap.windows.last_hour.data_connect_seconds.p50, 0.175, 'the one connect of the hour, in the 0.1-0.25 bucket')
  t.equal(snap.verdict.level, 'degraded')
  t.equal(snap.verdict.reason, 'client_timeout')
  t.equal(snap.chart.ok.length, CHART_MINUTES)
  t.equal(snap.chart.ok.reduce((a, b) => a + b, 0), 1, 'the chart holds the last hour')
  t.equal(snap.chart.failed.reduce((a, b) => a + b, 0), 1)
  t.equal(snap.chart.ok.findIndex((n) => n > 0), 29, 'minute 90 of 120 is bar 29 of the last hour (bars end 2 s after a sample)')
  t.equal(snap.sessions.peak_last_hour, 0, 'two hours in, the peak of minute 30 is over an hour old')
})

t.test('the failure ring keeps the newest 50; clients and users only when asked', async (t) => {
  const { board } = boardOnClock()
  for (let i = 0; i < 60; i++) {
    board.dataFailure({ reason: 'client_timeout', hint: `hint ${i}`, session: `s${i}`, client: '192.0.2.7', user: 'alice', command: 'RETR', path: `/f${i}` })
  }
  const snap = await board.snapshot()
  t.equal(snap.failures.length, FAILURE_RING)
  t.equal(snap.failures_recorded, 60)
  t.equal(snap.failures[0]?.session, 's59', 'newest first')
  t.equal(snap.failures[49]?.session, 's10')
  t.equal(snap.failures[0]?.client, null)
  t.equal(snap.failures[0]?.user, null)
  t.notMatch(JSON.stringify(snap), '192.0.2.7', 'no client address anywhere')
  const shown = boardOnClock(['--status-show-clients'])
  shown.board.dataFailure({
    reason: 'upstream_refused',
    hint: 'h',
    session: 's1',
    client: '192.0.2.7',
    user: 'al\u0000ice',
    serverReply: `227 ${'x'.repeat(1000)}`,
    dialled: Array.from({ length: 20 }, (_, i) => ({ host: i === 0 ? '2001:db8::1' : '10.0.0.1', port: 1000 + i, error: 'ECONNREFUSED' })),
  })
  const one = (await shown.board.snapshot()).failures[0]
  t.equal(one?.client, '192.0.2.7')
  t.equal(one?.user, 'al\ufffdice')
  t.equal(one?.server_reply?.length, 300, 'a reply is cut')
  t.equal(one?.dialled.length, 8, 'dialled addresses are bounded')
  t.equal(one?.dialled[0]?.address, '[2001:db8::1]:1000')
  t.equal(one?.path, null)
})

t.test('live streams: bounded, a slow reader cut off, ended when the page goes off', async (t) => {
  let on = true
  let n = 0
  const snap = { generated_at: 'x', uptime_seconds: 1 } as unknown as StatusSnapshot
  const stream = new StatusStream({ snapshot: async () => ({ ...snap, n: ++n }) as unknown as StatusSnapshot, headers: {}, enabled: () => on, maxStreams: 2, maxBufferedBytes: 100, tickMs: 60_000 })
  interface FakeRes extends EventEmitter {
    status: number
    written: string[]
    destroyed: boolean
    writableEnded: boolean
    writableLength: number
  }
  const fake = (): FakeRes => {
    const res = Object.assign(new EventEmitter(), { status: 0, written: [] as string[], destroyed: false, writableEnded: false, writableLength: 0 })
    return Object.assign(res, {
      writeHead(status: number) {
        res.status = status
        return res
      },
      write(text: string) {
        res.written.push(text)
        return true
      },
      end(text?: string) {
        if (text !== undefined) res.written.push(text)
        res.writableEnded = true
        res.emit('close')
        return res
      },
      destroy() {
        res.destroyed = true
        res.emit('close')
        return res
      },
    })
  }
  const req = { socket: { setTimeout: () => {} } } as unknown as http.IncomingMessage
  const a = fake()
  const b = fake()
  const c = fake()
  stream.open(req, a as unknown as http.ServerResponse)
  stream.open(req, b as unknown as http.ServerResponse)
  stream.open(req, c as unknown as http.ServerResponse)
  t.equal(c.status, 503, 'one stream over the bound gets 503')
  t.match(c.written.join(''), /poll \/status\.json/)
  t.equal(stream.size, 2)
  await waitFor(() => a.written.length >= 2)
  t.match(a.written[1], /^event: status\ndata: \{.*"n":1\}\n\n$/, 'the current snapshot at once, one data line')
  b.writableLength = 1000
  await stream.tick()
  t.ok(b.destroyed, 'a reader more than maxBufferedBytes behind is cut off')
  t.equal(stream.size, 1)
  t.match(a.written[a.written.length - 1], /"n":\d+/, 'the other got the change')
  const before = a.written.length
  const same = new StatusStream({ snapshot: async () => snap, headers: {}, enabled: () => on, tickMs: 60_000 })
  const d = fake()
  same.open(req, d as unknown as http.ServerResponse)
  await waitFor(() => d.written.length >= 2)
  await same.tick()
  const afterChange = d.written.length
  await same.tick()
  t.equal(d.written.length, afterChange, 'an unchanged snapshot is not sent again')
  same.closeAll()
  t.ok(d.writableEnded)
  on = false
  await stream.tick()
  t.ok(a.writableEnded, 'a stream ends when the page is turned off')
  t.equal(stream.size, 0)
  t.ok(a.written.length >= before)
})

// ---- a known scenario through the proxy, field by field ----------------------------------------

t.test('/status.json field by field after a known scenario, equal to /metrics', async (t) => {
  const FILE = Buffer.alloc(70_000, 0x61)
  const REFUSED_PORT = 31009 // nothing listens there, on 127.0.0.1 or 127.0.0.99
  const plan: string[] = []
  const server = await startFaultServer({
    port: 31001,
    files: { 'a.bin': FILE },
    onCommand: (cmd, s) => {
      if (cmd.verb !== 'PASV') return 'default'
      const next = plan.shift() ?? 'good'
      if (next === 'refuse') {
        s.write(`227 Entering Passive Mode (127,0,0,99,${REFUSED_PORT >> 8},${REFUSED_PORT & 255}).`)
        return
      }
      if (next === 'bad') {
        s.write('227 Entering Passive Mode, somewhere <script>alert(1)</script>')
        return
      }
      return 'default'
    },
  })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', '127.0.0.1:31001', '--passive-ports', '31010-31019', '--upstream-data-networks', '127.0.0.0/8', '--data-accept-timeout', '400ms'], 'info')
  t.teardown(() => p.close())
  let page = true
  const obs: ObserveServer = await startObserveServer({ host: '127.0.0.1', port: 0 }, p.proxy.metrics.registry, p.proxy.readiness, () => {}, {
    board: p.proxy.status,
    enabled: () => page,
  })
  t.teardown(() => obs.close())
  const base = `http://127.0.0.1:${obs.address.port}`
  await waitFor(() => p.proxy.readiness.ready())

  // Session s1: two downloads, a refused data port, a bad 227, a replaced lease, a refused RETR.
  const a = await RawFtp.connect(p.host, p.port)
  await a.login('alice', 's3cr3t-pw')
  for (let i = 0; i < 2; i++) {
    const r = await a.cmd('PASV')
    const ep = pasvEndpoint(r.text)
    const data = readAll(ep.host, ep.port)
    t.equal((await a.cmd('RETR a.bin')).code, 226)
    t.equal((await data).length, FILE.length)
  }
  plan.push('refuse')
  t.equal((await a.cmd('PASV')).code, 425, 'the refused data port: 425')
  t.equal((await a.cmd('PASV')).code, 227, 'a lease left pending')
  plan.push('bad')
  t.equal((await a.cmd('PASV')).code, 425, 'the bad 227: 425')
  t.equal((await a.cmd('PASV')).code, 227, 'replaces the pending lease')
  await p.proxy.status.tick(false)
  t.equal((await a.cmd('RETR missing.bin')).code, 550, 'the server refuses the transfer')
  t.equal((await a.cmd('QUIT')).code, 221)
  a.close()
  await waitFor(() => p.proxy.sessionCount === 0 && p.proxy.pool.inUse === 0)
  // Session s2: a PASV the client never comes to.
  const b = await RawFtp.connect(p.host, p.port)
  await b.login('bob', 'other-pw')
  t.equal((await b.cmd('PASV')).code, 227)
  t.ok(await waitFor(async () => (await p.proxy.metrics.dataFailures.get()).values.some((v) => v.labels.reason === 'client_timeout' && v.value === 1)), 'client_timeout counted')
  t.equal((await b.cmd('QUIT')).code, 221)
  b.close()
  await waitFor(() => p.proxy.sessionCount === 0 && p.proxy.pool.inUse === 0)

  const res = await get(`${base}/status.json`)
  t.equal(res.status, 200)
  t.equal(res.headers['content-type'], 'application/json; charset=utf-8')
  t.equal(res.headers['cache-control'], 'no-store')
  t.equal(res.headers['x-content-type-options'], 'nosniff')
  t.equal(res.headers['content-security-policy'], "default-src 'none'; frame-ancestors 'none'")
  const s = JSON.parse(res.body) as StatusSnapshot
  const metrics = (await get(`${base}/metrics`)).body

  t.same(Object.keys(s), ['schema', 'version', 'generated_at', 'started_at', 'uptime_seconds', 'verdict', 'upstreams', 'sessions', 'pool', 'windows', 'chart', 'failures', 'failures_recorded', 'failures_kept_max', 'show_clients'], 'the documented top-level fields, in order')
  t.equal(s.schema, 1)
  t.equal(s.version, '0.1.0')
  t.ok(Date.parse(s.generated_at) >= Date.parse(s.started_at))
  t.equal(s.uptime_seconds, Math.round(Date.parse(s.generated_at) - p.proxy.status.startedAt) / 1000)
  t.same(s.upstreams, [{ address: '127.0.0.1:31001', ready: true, not_ready_reason: null, last_advertised: { address: '127.0.0.1', class: 'loopback', matches_control: true, control_address: '127.0.0.1', at: s.upstreams[0]?.last_advertised?.at } }])
  t.same(s.sessions, { active: 0, peak_last_hour: 1, limit: 2000, limit_per_client: 200 })
  t.same(s.pool, { in_use: 0, peak_last_hour: 1, size: 10 })

  const since = s.windows.since_start
  t.same(since.data_connections, { ok: 2, failed: 3, cancelled: 2 })
  t.same(since.failures, { upstream_refused: 1, upstream_timeout: 0, upstream_unreachable: 0, client_timeout: 1, pool_exhausted: 0, bad_passive_reply: 1, reset: 0, data_address_refused: 0, lease_limit: 0, data_idle: 0, tls_handshake: 0 })
  t.same(since.cancelled, { replaced: 1, aborted: 0, refused: 1, closed: 0 })
  t.equal(since.sessions, 2)
  t.same(since.sessions_rejected, { upstream_unreachable: 0, limit: 0, acl: 0 })
  t.same(since.bytes, { download: 2 * FILE.length, upload: 0 })
  t.equal(since.data_connect_seconds.count, 5, 'five dials answered: the four good PASVs of s1 and the one of s2')
  t.ok(since.data_connect_seconds.p50 !== null && since.data_connect_seconds.p50 > 0 && since.data_connect_seconds.p50 <= 0.05, `p50 on loopback (${since.data_connect_seconds.p50})`)
  t.ok((since.data_connect_seconds.p95 ?? 0) >= (since.data_connect_seconds.p50 ?? 0))
  t.same(since.advertised.loopback, { matches_control: 5, differs: 1 })
  t.same(since.advertised.private, { matches_control: 0, differs: 0 })
  t.equal(since.seconds, s.uptime_seconds)
  t.equal(since.bytes_per_second.download, Math.round((2 * FILE.length / since.seconds) * 1000) / 1000)
  for (const w of ['last_minute', 'last_hour'] as const) {
    const { seconds, bytes_per_second: bps, ...rest } = s.windows[w]
    const { seconds: s0, bytes_per_second: b0, ...restSince } = since
    t.same(rest, restSince, `${w}: the proxy is younger than the window, so it equals since_start`)
    t.equal(seconds, s0)
    t.same(bps, b0)
  }
  t.equal(s.chart.minute_seconds, 60)
  t.same([s.chart.ok.length, s.chart.failed.length, s.chart.cancelled.length], [60, 60, 60])
  t.same([s.chart.ok[59], s.chart.failed[59], s.chart.cancelled[59]], [2, 3, 2], 'everything in the last bar')
  t.equal(s.chart.ok.slice(0, 59).reduce((x, y) => x + y, 0), 0)

  // Equal to /metrics, series by series.
  for (const result of ['ok', 'failed', 'cancelled'] as const) {
    t.equal(since.data_connections[result], sample(metrics, 'ftp_proxy_data_connections_total', `result="${result}"`), `data connections ${result}`)
  }
  for (const [reason, n] of Object.entries(since.failures)) t.equal(n, sample(metrics, 'ftp_proxy_data_connection_failures_total', `reason="${reason}"`), reason)
  for (const [reason, n] of Object.entries(since.cancelled)) t.equal(n, sample(metrics, 'ftp_proxy_data_connections_cancelled_total', `reason="${reason}"`), reason)
  t.equal(since.sessions, sample(metrics, 'ftp_proxy_sessions_total'))
  t.equal(since.bytes.download, sample(metrics, 'ftp_proxy_data_bytes_total', 'direction="download"'))
  t.equal(since.bytes.upload, sample(metrics, 'ftp_proxy_data_bytes_total', 'direction="upload"'))
  t.equal(since.data_connect_seconds.count, sample(metrics, 'ftp_proxy_data_connect_seconds_count'))
  t.equal(since.advertised.loopback.differs, sample(metrics, 'ftp_proxy_advertised_address_total', 'class="loopback",matches_control="false"'))
  t.equal(s.sessions.active, sample(metrics, 'ftp_proxy_sessions_active'))
  t.equal(s.pool.size, sample(metrics, 'ftp_proxy_port_pool_size'))
  t.equal(s.pool.in_use, sample(metrics, 'ftp_proxy_port_pool_in_use'))

  t.equal(s.failures_recorded, 3)
  t.equal(s.failures_kept_max, 50)
  t.equal(s.show_clients, false)
  t.equal(s.failures.length, 3)
  const [timeout, bad, refused] = s.failures
  t.same(Object.keys(timeout ?? {}), ['at', 'session', 'reason', 'hint', 'command', 'path', 'server_reply', 'advertised', 'advertised_class', 'dialled', 'error', 'client', 'user'], 'the documented failure fields, in order')
  t.match(timeout, { session: 's2', reason: 'client_timeout', hint: hintFor('client_timeout', null, null, '127.0.0.1'), command: null, path: null, server_reply: null, advertised: null, advertised_class: null, dialled: [], client: null, user: null })
  t.match(bad, {
    session: 's1',
    reason: 'bad_passive_reply',
    hint: hintFor('bad_passive_reply', null, null, '127.0.0.1'),
    server_reply: '227 Entering Passive Mode, somewhere <script>alert(1)</script>',
    advertised: null,
    dialled: [],
    client: null,
    user: null,
  })
  t.type(bad?.error, 'string')
  t.same(refused, {
    at: refused?.at,
    session: 's1',
    reason: 'upstream_refused',
    hint: hintFor('upstream_refused', '127.0.0.99', 'loopback', '127.0.0.1'),
    command: null,
    path: null,
    server_reply: `227 Entering Passive Mode (127,0,0,99,${REFUSED_PORT >> 8},${REFUSED_PORT & 255}).`,
    advertised: `127.0.0.99:${REFUSED_PORT}`,
    advertised_class: 'loopback',
    dialled: [
      { address: `127.0.0.1:${REFUSED_PORT}`, error: 'ECONNREFUSED' },
      { address: `127.0.0.99:${REFUSED_PORT}`, error: 'ECONNREFUSED' },
    ],
    error: null,
    client: null,
    user: null,
  })
  t.ok(Date.parse(timeout?.at ?? '') >= Date.parse(refused?.at ?? ''), 'newest first')
  t.same(s.verdict, {
    level: 'degraded',
    text: "Some data connections fail: 3 of 7 in the last hour, most because the server's data port refused the proxy (upstream_refused).",
    reason: 'upstream_refused',
    hint: hintFor('upstream_refused', '127.0.0.99', 'loopback', '127.0.0.1'),
  })
  t.notMatch(res.body, 's3cr3t-pw', 'no password in /status.json')
  t.notMatch(res.body, 'alice', 'no user without --status-show-clients')

  // The page: the same figures, escaped, with its headers.
  const pageRes = await get(`${base}/`)
  t.equal(pageRes.status, 200)
  t.equal(pageRes.headers['content-type'], 'text/html; charset=utf-8')
  t.equal(pageRes.headers['content-security-policy'], PAGE_CSP)
  t.equal(pageRes.headers['x-frame-options'], 'DENY')
  t.equal(pageRes.headers['referrer-policy'], 'no-referrer')
  t.notMatch(pageRes.body, '<script>alert(1)', 'the hostile reply is escaped')
  t.match(pageRes.body, '&lt;script&gt;alert(1)&lt;/script&gt;')
  t.notMatch(pageRes.body, 's3cr3t-pw')
  t.match(pageRes.body, '<td class="n" data-k="windows.since_start.data_connections.failed" data-f="int">3</td>')
  t.equal((pageRes.body.match(/<li class="failure">/g) ?? []).length, 3 + 1, 'three failures and the template row')
  t.equal((pageRes.body.match(/<script>/g) ?? []).length, 1, 'one script element: the page’s own')
  t.equal(renderPage(s).length > 0, true)
  const head = await get(`${base}/`, { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.body, '')

  // A live stream gives the same snapshot.
  const first = await new Promise<string>((resolve, reject) => {
    const req = http.get(`${base}/status/events`, (r) => {
      t.equal(r.headers['content-type'], 'text/event-stream; charset=utf-8')
      let buf = ''
      r.on('data', (c: Buffer) => {
        buf += c.toString()
        const m = /event: status\ndata: (.*)\n\n/.exec(buf)
        if (m?.[1] !== undefined) {
          req.destroy()
          resolve(m[1])
        }
      })
    })
    req.on('error', reject)
  })
  const streamed = JSON.parse(first) as StatusSnapshot
  t.same({ ...streamed, generated_at: null, uptime_seconds: null }, { ...s, generated_at: null, uptime_seconds: null, windows: streamed.windows }, 'the stream carries the same snapshot')
  t.same(streamed.windows.since_start.data_connections, since.data_connections)
  const headEvents = await get(`${base}/status/events`, { method: 'HEAD' })
  t.equal(headEvents.status, 200)

  // Rebinding guard, methods, page off.
  t.equal((await get(`${base}/`, { headers: { host: `attacker.example:${obs.address.port}` } })).status, 403, 'a rebound name is refused')
  t.equal((await get(`${base}/status.json`, { headers: { host: `localhost:${obs.address.port}` } })).status, 200, 'localhost is fine')
  t.equal((await get(`${base}/metrics`, { headers: { host: 'prometheus-target.example' } })).status, 200, '/metrics answers any name, as before')
  t.equal((await get(`${base}/status.json`, { method: 'POST' })).status, 405)
  const nf = await get(`${base}/nothing`)
  t.equal(nf.status, 404)
  t.match(nf.body, '/status.json')

  // --status-show-clients by reload: clients and users appear, still no password.
  const reloaded = p.proxy.reload(loadConfig(['--listen', '127.0.0.1:0', '--log-level', 'info', '--upstream', '127.0.0.1:31001', '--passive-ports', '31010-31019', '--upstream-data-networks', '127.0.0.0/8', '--data-accept-timeout', '400ms', '--status-show-clients'], {}))
  t.same(reloaded, { ok: true })
  const shown = JSON.parse((await get(`${base}/status.json`)).body) as StatusSnapshot
  t.equal(shown.show_clients, true)
  t.same(shown.failures.map((f) => [f.client, f.user]), [['127.0.0.1', 'bob'], ['127.0.0.1', 'alice'], ['127.0.0.1', 'alice']])
  t.notMatch(JSON.stringify(shown), 's3cr3t-pw')
  t.notMatch(p.rawLog(), 's3cr3t-pw', 'nor in the log')

  page = false
  for (const path of ['/', '/status.json', '/status/events']) t.equal((await get(`${base}${path}`)).status, 404, `${path} is gone when the page is off`)
  t.equal((await get(`${base}/metrics`)).status, 200)
})

t.test('a snapshot that fails is a 500, not a crash', async (t) => {
  const metrics = createMetrics({ version: 'test', defaultMetrics: false })
  const readiness = new UpstreamReadiness(() => ({ host: '127.0.0.1', port: 1 }), () => 100)
  const board = { snapshot: () => Promise.reject(new Error('boom')), start: () => {}, stop: () => {} } as unknown as StatusBoard
  const obs = await startObserveServer({ host: '127.0.0.1', port: 0 }, metrics.registry, readiness, () => {}, { board, enabled: () => true })
  t.teardown(() => obs.close())
  const r = await get(`http://127.0.0.1:${obs.address.port}/status.json`)
  t.equal(r.status, 500)
  t.match(r.body, 'status failed: boom')
})
