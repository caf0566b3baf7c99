// The status page in a real browser (issue 13): Debian's chromium, driven by playwright-core,
// headless, with a fresh empty profile and none of its own network traffic.
//
// 1. The built CLI in front of vsftpd advertising 127.0.0.99 (PRODFTP): first run with a config
//    that dials the advertised address, so the data port refuses (upstream_refused, the PRODFTP
//    failure); SIGHUP with the default config, and curl downloads, uploads and lists through it.
//    Chromium opens the page: the since-start figures equal /metrics and /status.json, the verdict
//    names the failure, the failures list holds them with their hints; one more failure (a client
//    that never comes to its passive port) shows up without a reload.
// 2. Screenshots, light and dark, desktop and phone width, saved as test artifacts (their paths
//    are in the test's comments); dark mode and the phone width checked in the browser.
// 3. No URL of anywhere else in the page, no request leaves the proxy's origin, no CSP violation;
//    with JavaScript off the same figures are there. A hostile server whose replies (and a client
//    whose user name and path) carry <script> and <img onerror> changes nothing but text: no script
//    runs, no element is added, neither in the server-rendered page nor in the live updates.
// 4. --status-page off: no page, /metrics as before.
//
// Ports: 31100-31299 (vsftpd 31100, its passive range 31110-31149, the CLI's pool 31150-31169,
// the second CLI's 31170-31179; the hostile double 31200, its proxy's pool 31210-31219, a port
// where nothing listens 31299).
import { existsSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import t, { type Test } from 'tap'
import { startObserveServer } from '../../src/observe/http.js'
import { statusPageOn, type StatusSnapshot } from '../../src/observe/status.js'
import { FAILURE_REASONS } from '../../src/proxy/outcomes.js'
import { startFaultServer, waitFor } from '../faults/helpers.js'
import { startProxy } from '../fixtures/proxy.js'
import { REPO_ROOT, sampleValue, startProxyProcess } from '../fixtures/proxy-process.js'
import { pasvEndpoint, RawFtp } from '../fixtures/raw-ftp.js'
import { curlDownload, curlList, curlUpload, ftpUrl } from './lib/clients.js'
import { makeRandomFile, startVsftpd } from './lib/servers.js'

t.setTimeout(240_000)

const CHROMIUM = '/usr/bin/chromium'
// No background traffic of Chromium's own (the network here is closed: its connections would be
// refused, many at a time), no GPU, no sandbox (root in a container).
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
const ARTIFACTS = join(process.env['FPP_ARTIFACTS_DIR'] ?? join(REPO_ROOT, '.cache', 'artifacts'), 'status-page')
const DESKTOP = { width: 1280, height: 900 }
const PHONE = { width: 390, height: 844 }

if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run "bash scripts/install-deps.sh" as root (Debian package chromium)`)

const work = await mkdtemp(join(tmpdir(), 'fpp-status-page-'))
t.teardown(() => rm(work, { recursive: true, force: true }))
await mkdir(ARTIFACTS, { recursive: true })

/** A browser with a fresh empty profile (its own --user-data-dir), closed at the end. */
async function browser(javaScriptEnabled: boolean): Promise<BrowserContext> {
  const profile = await mkdtemp(join(tmpdir(), 'fpp-chromium-'))
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    javaScriptEnabled,
    viewport: DESKTOP,
    timeout: 60_000,
  })
  t.teardown(async () => {
    await ctx.close()
    await rm(profile, { recursive: true, force: true })
  })
  // Before any script of the page: every CSP violation, whatever it was (an injected element would be one).
  await ctx.addInitScript(() => {
    const w = window as unknown as { __csp: string[] }
    w.__csp = []
    document.addEventListener('securitypolicyviolation', (e) => w.__csp.push(`${e.violatedDirective} ${e.blockedURI}`))
  })
  return ctx
}

interface Watched {
  readonly page: Page
  readonly requests: string[]
  readonly errors: string[]
  dialogs: number
  navigations: number
}

async function open(ctx: BrowserContext, url: string): Promise<Watched> {
  const page = await ctx.newPage()
  const w: Watched = { page, requests: [], errors: [], dialogs: 0, navigations: 0 }
  page.on('request', (r) => w.requests.push(r.url()))
  page.on('pageerror', (e) => w.errors.push(e.message))
  page.on('dialog', (d) => {
    w.dialogs++
    void d.dismiss()
  })
  page.on('framenavigated', (f) => {
    if (f === page.mainFrame()) w.navigations++
  })
  await page.goto(url, { waitUntil: 'load' })
  return w
}

const liveOn = (page: Page): Promise<unknown> =>
  page.waitForFunction(() => document.getElementById('live')?.textContent?.startsWith('Live') === true, undefined, { timeout: 15_000 })

const text = async (page: Page, key: string): Promise<string> => (await page.locator(`[data-k="${key}"]`).first().textContent()) ?? ''

function getJson(url: string): Promise<StatusSnapshot> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as StatusSnapshot)
        } catch (err) {
          reject(err)
        }
      })
    }).on('error', reject)
  })
}

function getText(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }))
    }).on('error', reject)
  })
}

/** The since-start figures the page shows, each checked against /metrics and /status.json. */
async function checkFigures(t: Test, page: Page, metrics: string, json: StatusSnapshot, what: string): Promise<void> {
  const since = json.windows.since_start
  for (const result of ['ok', 'failed', 'cancelled'] as const) {
    const m = sampleValue(metrics, 'ftp_proxy_data_connections_total', { result })
    t.equal(since.data_connections[result], m, `${what}: status.json data connections ${result} = /metrics`)
    t.equal(await text(page, `windows.since_start.data_connections.${result}`), String(m), `${what}: page data connections ${result} = /metrics (${m})`)
  }
  for (const reason of FAILURE_REASONS) {
    const m = sampleValue(metrics, 'ftp_proxy_data_connection_failures_total', { reason })
    t.equal(since.failures[reason], m, `${what}: status.json ${reason} = /metrics`)
    t.equal(await text(page, `windows.since_start.failures.${reason}`), String(m), `${what}: page ${reason} = /metrics (${m})`)
    t.equal(await page.locator(`tr[data-reason="${reason}"]`).isVisible(), m > 0, `${what}: the ${reason} row shows when it counts`)
  }
  const sessions = sampleValue(metrics, 'ftp_proxy_sessions_total')
  t.equal(since.sessions, sessions, `${what}: status.json sessions = /metrics`)
  t.equal(await text(page, 'windows.since_start.sessions'), String(sessions), `${what}: page sessions = /metrics (${sessions})`)
  for (const direction of ['download', 'upload'] as const) {
    const m = sampleValue(metrics, 'ftp_proxy_data_bytes_total', { direction })
    t.equal(since.bytes[direction], m, `${what}: status.json bytes ${direction} = /metrics`)
    t.equal(await text(page, `windows.since_start.bytes.${direction}`), String(m), `${what}: page bytes ${direction} = /metrics (${m})`)
  }
  t.equal(await text(page, 'sessions.active'), String(sampleValue(metrics, 'ftp_proxy_sessions_active')), `${what}: sessions active`)
  t.equal(await text(page, 'pool.size'), String(sampleValue(metrics, 'ftp_proxy_port_pool_size')), `${what}: pool size`)
  t.equal(await text(page, 'sessions.peak_last_hour'), String(json.sessions.peak_last_hour), `${what}: peak sessions as in status.json`)
  t.equal(await text(page, 'pool.peak_last_hour'), String(json.pool.peak_last_hour), `${what}: peak pool ports as in status.json`)
}

/** PNG width and height from its IHDR chunk. */
async function pngSize(path: string): Promise<{ width: number; height: number; png: boolean }> {
  const b = await readFile(path)
  return { png: b.subarray(1, 4).toString('latin1') === 'PNG', width: b.readUInt32BE(16), height: b.readUInt32BE(20) }
}

// ---- 1. the PRODFTP story through the built CLI ------------------------------------------------

const vs = await startVsftpd({ port: 31100, pasvMin: 31110, pasvMax: 31149, pasvAddress: '127.0.0.99' })
t.teardown(() => vs.stop())
await makeRandomFile(vs.root, 'big.bin', 4 * 1024 * 1024)
const local = await makeRandomFile(work, 'up.bin', 1024 * 1024)
const configFile = join(work, 'proxy.yaml')
// First the proxy trusts the 227: it dials 127.0.0.99, where nothing listens (the refusal PRODFTP's clients saw).
await writeFile(configFile, 'upstreamDataAddress: advertised\nupstreamDataNetworks: 127.0.0.0/8\ndataAcceptTimeout: 1s\n')
const cli = await startProxyProcess({ upstream: '127.0.0.1:31100', args: ['--config', configFile, '--passive-ports', '31150-31169'] })
t.teardown(() => cli.stop())
const base = cli.metricsUrl.replace(/\/metrics$/, '')
const via = { host: cli.host, port: cli.port, user: vs.user, password: vs.password }

t.test('the story: failures, then the fix by SIGHUP, then transfers', async (t) => {
  t.match(cli.logs.find((l) => l['msg'] === 'metrics listening'), { status: `${base}/` }, 'the log names the page')
  for (let i = 0; i < 2; i++) {
    const r = await curlDownload({ url: ftpUrl(via, 'big.bin'), out: join(work, `fail${i}.bin`), mode: 'pasv' })
    t.not(r.code, 0, `curl fails while the proxy dials the advertised address (${i + 1})`)
  }
  await writeFile(configFile, 'dataAcceptTimeout: 1s\n')
  const before = cli.logs.filter((l) => l['msg'] === 'config reloaded').length
  process.kill(cli.pid, 'SIGHUP')
  t.ok(await waitFor(() => cli.logs.filter((l) => l['msg'] === 'config reloaded').length > before, 10_000), 'config reloaded')
  const down = await curlDownload({ url: ftpUrl(via, 'big.bin'), out: join(work, 'ok.bin'), mode: 'pasv' })
  t.equal(down.code, 0, 'curl downloads through the proxy')
  const up = await curlUpload({ url: ftpUrl(via, `${vs.uploadDir}/up.bin`), local: local.path, mode: 'pasv' })
  t.equal(up.code, 0, 'curl uploads')
  const list = await curlList({ url: ftpUrl(via, ''), mode: 'epsv' })
  t.equal(list.code, 0, 'curl lists')
  t.match(list.stdout, /big\.bin/)
})

let ctx: BrowserContext
let w: Watched

t.test('Chromium: the page equals /metrics and /status.json, names the failure, lists the hints', async (t) => {
  ctx = await browser(true)
  w = await open(ctx, `${base}/`)
  const { page } = w
  await liveOn(page)
  t.equal(await page.title(), 'ftp-pasv-proxy status')
  const metrics = await cli.metricsText()
  const json = await getJson(`${base}/status.json`)
  await checkFigures(t, page, metrics, json, 'after the story')
  t.equal(json.windows.since_start.data_connections.ok, 3, 'download, upload and list ok')
  t.equal(json.windows.since_start.failures.upstream_refused, 2, 'two refused data ports')
  t.equal(json.windows.since_start.bytes.download > 4 * 1024 * 1024, true, 'the download and the listing')
  t.equal(json.windows.since_start.bytes.upload, 1024 * 1024)
  // Each curl session lasts milliseconds: a peak sampled once a second would read 0.
  const started = json.windows.since_start.sessions
  t.ok(json.sessions.peak_last_hour >= 1 && json.sessions.peak_last_hour <= started, `peak sessions counted when they start (${json.sessions.peak_last_hour} of ${started})`)
  t.ok(json.pool.peak_last_hour >= 1 && json.pool.peak_last_hour <= 3, `peak pool ports counted when leased (${json.pool.peak_last_hour})`)

  const verdict = (await page.locator('#verdict').textContent()) ?? ''
  t.equal(await page.locator('#verdict').getAttribute('data-level'), 'degraded')
  t.match(verdict, "most because the server's data port refused the proxy (upstream_refused)", 'the verdict names the failure')
  t.match(verdict, 'advertised loopback address 127.0.0.99 that differs from its control address 127.0.0.1', 'in the words of the hint')
  t.equal(await text(page, 'verdict.text'), json.verdict.text)

  const items = page.locator('#failures > li')
  t.equal(await items.count(), 2, 'the two failures are listed')
  for (let i = 0; i < 2; i++) {
    const item = items.nth(i)
    t.equal(await item.locator('[data-fk="reason"]').textContent(), 'upstream_refused')
    t.match(await item.locator('[data-fk="hint"]').textContent(), /^the server advertised loopback address 127\.0\.0\.99 .*vsftpd pasv_address/)
    t.match(await item.locator('[data-fk="dialled"]').textContent(), /^127\.0\.0\.99:311[1-4]\d ECONNREFUSED$/, 'what was dialled and its error')
    t.match(await item.locator('[data-fk="server_reply"]').textContent(), /^227 Entering Passive Mode \(127,0,0,99,/)
    t.equal(await item.locator('[data-fk="session"]').textContent(), json.failures[i]?.session)
    t.notOk(await item.locator('[data-fshow="client"]').isVisible(), 'no client address without --status-show-clients')
  }
  const html = await page.content()
  t.notMatch(html, vs.password, 'no password on the page')
  t.same(await page.locator('#failures [data-fk="client"]').allTextContents(), ['–', '–'], 'no client address in the list')
  t.equal(await page.locator('#failures [data-fk="client"]').first().isVisible(), false)
})

t.test('screenshots: light and dark, desktop and phone', async (t) => {
  const { page } = w
  const shots: string[] = []
  for (const scheme of ['light', 'dark'] as const) {
    await page.emulateMedia({ colorScheme: scheme })
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor)
    t.equal(bg, scheme === 'dark' ? 'rgb(13, 17, 23)' : 'rgb(245, 246, 248)', `prefers-color-scheme ${scheme} honoured`)
    for (const [name, size] of [['desktop', DESKTOP], ['phone', PHONE]] as const) {
      await page.setViewportSize(size)
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
      t.ok(overflow <= 0, `${scheme} ${name}: nothing wider than the screen (${overflow})`)
      const path = join(ARTIFACTS, `status-${name}-${scheme}.png`)
      await page.screenshot({ path, fullPage: true })
      const png = await pngSize(path)
      t.ok(png.png, `${path} is a PNG`)
      t.equal(png.width, size.width, `${name} width`)
      t.ok(png.height >= size.height, `${name}: the whole page`)
      shots.push(path)
    }
  }
  await page.emulateMedia({ colorScheme: 'light' })
  await page.setViewportSize(DESKTOP)
  t.comment(`screenshots: ${shots.join(', ')}`)
})

t.test('one more failure: the page updates without a reload', async (t) => {
  const { page } = w
  const before = Number(await text(page, 'windows.since_start.data_connections.failed'))
  const navigations = w.navigations
  const c = await RawFtp.connect(cli.host, cli.port)
  t.teardown(() => c.close())
  await c.login(vs.user, vs.password)
  const pasv = await c.cmd('PASV')
  t.equal(pasv.code, 227)
  t.ok(pasvEndpoint(pasv.text).port >= 31150, 'a pool port the client never comes to')
  await page.waitForFunction((want) => document.querySelector('[data-k="windows.since_start.data_connections.failed"]')?.textContent === want, String(before + 1), { timeout: 20_000 })
  t.pass(`failed went from ${before} to ${before + 1} on the open page`)
  t.equal(w.navigations, navigations, 'no reload, no navigation')
  const first = page.locator('#failures > li').first()
  t.equal(await first.locator('[data-fk="reason"]').textContent(), 'client_timeout', 'the new failure heads the list')
  t.match(await first.locator('[data-fk="hint"]').textContent(), 'the client did not connect to the passive port the proxy advertised')
  t.equal(await page.locator('#failures > li').count(), 3)
  const metrics = await cli.metricsText()
  const json = await getJson(`${base}/status.json`)
  await page.waitForFunction((n) => document.querySelector('[data-k="windows.since_start.sessions"]')?.textContent === n, String(json.windows.since_start.sessions), { timeout: 20_000 })
  await checkFigures(t, page, metrics, json, 'after one more failure, live')
  t.equal((await c.cmd('QUIT')).code, 221)
})

t.test('nothing from elsewhere: no external URL, no other origin, no CSP violation', async (t) => {
  const { page } = w
  const origin = new URL(base).origin
  const served = await getText(`${base}/`)
  t.equal(served.status, 200)
  t.notMatch(served.body, /\b(?:https?|wss?|ftp|data|blob|javascript):/i, 'no URL with a scheme in the HTML as served')
  t.notMatch(served.body, /(?:src|href|action)\s*=|url\(|@import|\/\/[a-z0-9]/i, 'no src, href, action, url() or protocol-relative address')
  t.ok(w.requests.length >= 2, `requests seen: ${w.requests.join(' ')}`)
  for (const url of w.requests) t.equal(new URL(url).origin, origin, `request to the proxy's origin: ${url}`)
  t.same(await page.evaluate(() => (window as unknown as { __csp: string[] }).__csp), [], 'no CSP violation')
  t.same(w.errors, [], 'no script error')
  t.equal(w.dialogs, 0)
})

t.test('JavaScript off: the server-rendered snapshot shows the figures', async (t) => {
  const off = await browser(false)
  const o = await open(off, `${base}/`)
  const metrics = await cli.metricsText()
  const json = await getJson(`${base}/status.json`)
  await checkFigures(t, o.page, metrics, json, 'JavaScript off')
  t.match(await o.page.locator('#live').textContent(), /^Snapshot of \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC; reload the page for new figures\.$/)
  t.equal(await o.page.locator('#failures > li').count(), json.failures.length, 'the failures are listed')
  t.equal(await o.page.locator('#verdict').getAttribute('data-level'), 'degraded')
  t.ok(await o.page.locator('svg.chart rect[data-bar="ok"]').count() === 60, 'the chart is drawn on the server')
  for (const url of o.requests) t.equal(new URL(url).origin, new URL(base).origin, `JS off: request to the proxy's origin: ${url}`)
})

t.test('--status-page off: no page, metrics as before', async (t) => {
  const off = await startProxyProcess({ upstream: '127.0.0.1:31100', args: ['--status-page', 'off', '--passive-ports', '31170-31179'] })
  t.teardown(() => off.stop())
  const root = off.metricsUrl.replace(/\/metrics$/, '')
  for (const path of ['/', '/status.json', '/status/events']) t.equal((await getText(`${root}${path}`)).status, 404, `${path}: 404`)
  t.equal((await getText(off.metricsUrl)).status, 200)
  t.notOk('status' in (off.logs.find((l) => l['msg'] === 'metrics listening') ?? {}), 'no page in the log')
})

// ---- 3. a hostile server and client: text only -------------------------------------------------

t.test('hostile replies, user name and path change nothing but text', async (t) => {
  const SCRIPT = '<script>window.__pwned = (window.__pwned || 0) + 1; alert(1)</script>'
  const IMG = '<img src=x onerror="window.__pwned = (window.__pwned || 0) + 1; alert(2)">'
  let hostile = 'refused'
  const server = await startFaultServer({
    port: 31200,
    files: { [`${SCRIPT}.bin`]: Buffer.alloc(100_000, 0x62) },
    greeting: `220 ${SCRIPT} ${IMG}`,
    onCommand: (cmd, s) => {
      if (cmd.verb === 'PASV' && hostile === 'refused') {
        s.write(`227 Entering Passive Mode ${IMG} (127,0,0,99,${31299 >> 8},${31299 & 255}) ${SCRIPT}`)
        return
      }
      if (cmd.verb === 'PASV' && hostile === 'bad') {
        s.write(`227 ${SCRIPT}${IMG}`)
        return
      }
      return 'default'
    },
  })
  t.teardown(() => server.close())
  const p = await startProxy(['--upstream', '127.0.0.1:31200', '--passive-ports', '31210-31219', '--upstream-data-networks', '127.0.0.0/8', '--data-accept-timeout', '500ms', '--status-show-clients'], 'info')
  t.teardown(() => p.close())
  const obs = await startObserveServer({ host: '127.0.0.1', port: 0 }, p.proxy.metrics.registry, p.proxy.readiness, () => {}, {
    board: p.proxy.status,
    enabled: () => statusPageOn(p.proxy.config),
  })
  t.teardown(() => obs.close())
  const hostileBase = `http://127.0.0.1:${obs.address.port}`
  const c = await RawFtp.connect(p.host, p.port)
  t.teardown(() => c.close())
  await c.login(IMG, 'pw')
  t.equal((await c.cmd('PASV')).code, 425, 'the refused data port, its reply full of markup')
  hostile = 'good'
  t.equal((await c.cmd('PASV')).code, 227)
  // The client never connects: client_timeout with the command and its path on the page.
  c.socket.write(`RETR ${SCRIPT}.bin\r\n`)
  t.ok(await waitFor(async () => (await getJson(`${hostileBase}/status.json`)).failures.length === 2, 10_000), 'two failures recorded')

  const checkInert = async (page: Page, what: string): Promise<void> => {
    t.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined, `${what}: no injected script ran`)
    t.equal(await page.locator('img').count(), 0, `${what}: no img element`)
    t.equal(await page.evaluate(() => document.scripts.length), 1, `${what}: one script element, the page's own`)
    t.equal(await page.locator('[onerror]').count(), 0, `${what}: no onerror attribute anywhere`)
    const body = (await page.locator('body').textContent()) ?? ''
    t.match(body, SCRIPT, `${what}: the <script> string is on the page as text`)
    t.match(body, IMG, `${what}: the <img onerror> string is on the page as text`)
  }
  for (const js of [true, false]) {
    const b = await browser(js)
    const o = await open(b, `${hostileBase}/`)
    if (js) await liveOn(o.page)
    const what = js ? 'JavaScript on' : 'JavaScript off'
    await checkInert(o.page, what)
    const timedOut = o.page.locator('#failures > li').filter({ has: o.page.locator('[data-fk="reason"]', { hasText: 'client_timeout' }) })
    t.equal(await timedOut.locator('[data-fk="user"]').textContent(), IMG, `${what}: the user name, as text`)
    t.equal(await timedOut.locator('[data-fk="path"]').textContent(), `${SCRIPT}.bin`, `${what}: the path, as text`)
    t.equal(await timedOut.locator('[data-fk="command"]').textContent(), 'RETR')
    t.equal(o.dialogs, 0, `${what}: no dialog opened`)
    t.same(o.errors, [], `${what}: no script error`)
    if (js) {
      t.same(await o.page.evaluate(() => (window as unknown as { __csp: string[] }).__csp), [], 'no CSP violation: nothing was even tried')
      // A new hostile failure arrives by the live stream and is written by the page's script.
      hostile = 'bad'
      const d = await RawFtp.connect(p.host, p.port)
      await d.login(SCRIPT, 'pw')
      t.equal((await d.cmd('PASV')).code, 425)
      d.close()
      await o.page.waitForFunction(() => document.querySelectorAll('#failures > li').length === 3, undefined, { timeout: 20_000 })
      t.equal(await o.page.locator('#failures > li').first().locator('[data-fk="reason"]').textContent(), 'bad_passive_reply')
      t.equal(await o.page.locator('#failures > li').first().locator('[data-fk="server_reply"]').textContent(), `227 ${SCRIPT}${IMG}`)
      await checkInert(o.page, 'after a live update')
      t.same(await o.page.evaluate(() => (window as unknown as { __csp: string[] }).__csp), [], 'still no CSP violation')
      await o.page.screenshot({ path: join(ARTIFACTS, 'status-hostile.png'), fullPage: true })
    }
  }
})

t.test('one screenshot for the README', async (t) => {
  // docs/status-page.png is a copy of this file, taken by hand: the test does not write into docs/.
  const shot = join(ARTIFACTS, 'status-desktop-light.png')
  t.ok(existsSync(shot))
  if (process.env['FPP_UPDATE_DOCS_SCREENSHOT'] === '1') await copyFile(shot, join(REPO_ROOT, 'docs', 'status-page.png'))
  t.ok(existsSync(join(REPO_ROOT, 'docs', 'status-page.png')), 'docs/status-page.png exists for the README')
})
