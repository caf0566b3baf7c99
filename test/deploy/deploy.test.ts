// The deployment files under deploy/ and grafana/: Prometheus config and alert rules checked and
// unit-tested by promtool, every YAML file parsed, the dashboard checked panel by panel, every
// metric name in a PromQL expression checked against the names the proxy exports, the systemd
// unit verified by systemd-analyze, and the shutdown grace, probes and ports kept consistent
// across systemd, Docker, compose and Kubernetes. No network: promtool and systemd-analyze read
// files only.

import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { createServer as createTcpServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parse as parseYaml, parseAllDocuments } from 'yaml'
import { DEFAULTS, loadConfig } from '../../src/config.js'
import { createMetrics } from '../../src/observe/metrics.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const path = (p: string): string => join(ROOT, p)
const read = (p: string): string => readFileSync(path(p), 'utf8')

// The names issue 3 promises (src/observe/metrics.ts), which dashboards and alerts rely on, plus
// Prometheus' own `up`. A histogram is queried through its _bucket, _sum and _count series.
const COUNTERS_AND_GAUGES = [
  'ftp_proxy_build_info',
  'ftp_proxy_sessions_active',
  'ftp_proxy_sessions_total',
  'ftp_proxy_sessions_rejected_total',
  'ftp_proxy_passive_replies_total',
  'ftp_proxy_advertised_address_total',
  'ftp_proxy_data_connections_total',
  'ftp_proxy_data_connection_failures_total',
  'ftp_proxy_data_connections_cancelled_total',
  'ftp_proxy_foreign_data_connections_total',
  'ftp_proxy_data_bytes_total',
  'ftp_proxy_port_pool_size',
  'ftp_proxy_port_pool_in_use',
  'ftp_proxy_commands_refused_total',
  'ftp_proxy_config_reloads_total',
]
const HISTOGRAMS = ['ftp_proxy_data_connect_seconds', 'ftp_proxy_data_transfer_seconds']
const KNOWN_METRICS = new Set([
  'up',
  ...COUNTERS_AND_GAUGES,
  ...HISTOGRAMS.flatMap((h) => [`${h}_bucket`, `${h}_sum`, `${h}_count`]),
])

/** Runs a tool that must be installed; a missing one fails the test instead of skipping it. */
function run(cmd: string, args: readonly string[], installHint: string): { status: number | null; output: string } {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 })
  if (r.error !== undefined) {
    const code = (r.error as NodeJS.ErrnoException).code
    throw new Error(code === 'ENOENT' ? `${cmd} is not installed: ${installHint}` : `${cmd}: ${r.error.message}`)
  }
  return { status: r.status, output: `${r.stdout}${r.stderr}` }
}
const PROMTOOL_HINT = 'install the Debian package prometheus (scripts/install-deps.sh does)'
const promtool = (...args: string[]): { status: number | null; output: string } => run('promtool', args, PROMTOOL_HINT)

function filesUnder(dir: string, test: (name: string) => boolean): string[] {
  const out: string[] = []
  for (const entry of readdirSync(path(dir))) {
    const rel = join(dir, entry)
    if (statSync(path(rel)).isDirectory()) out.push(...filesUnder(rel, test))
    else if (test(entry)) out.push(rel)
  }
  return out.sort()
}

// PromQL words that are not metric names when they stand outside a function call.
const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'and', 'or', 'unless', 'inf', 'nan'])

/**
 * The metric names a PromQL expression selects. Not a full parser (promtool parses the same
 * expressions below): strings, label matchers, ranges and grouping clauses are removed first,
 * then every identifier left that is not a function call, a keyword or part of a number is a
 * metric name.
 */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
  const names: string[] = []
  for (const m of bare.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const before = bare[m.index - 1] ?? ' '
    // 1e3, 0.5, 5m and Grafana's $variables are not names.
    if (/[0-9.$]/.test(before)) continue
    if (/^\s*\(/.test(bare.slice(m.index + m[0].length))) continue
    if (PROMQL_WORDS.has(m[0].toLowerCase())) continue
    names.push(m[0])
  }
  return names
}

interface Panel {
  id?: number
  type?: string
  title?: string
  description?: string
  datasource?: { type?: string; uid?: string }
  gridPos?: { x: number; y: number; w: number; h: number }
  targets?: { expr?: string; refId?: string; datasource?: { uid?: string } }[]
  fieldConfig?: { defaults?: { thresholds?: { steps?: { color: string; value: number | null }[] } } }
}
interface Dashboard {
  schemaVersion: number
  uid: string
  panels: Panel[]
  templating: { list: { name: string; type: string; query: string | { query: string } }[] }
}
const dashboard = JSON.parse(read('grafana/dashboards/ftp-pasv-proxy.json')) as Dashboard

interface AlertRule {
  alert?: string
  record?: string
  expr: string
  for?: string
  labels?: Record<string, string>
}
const alertRules = (parseYaml(read('deploy/prometheus/alerts.yml')) as { groups: { rules: AlertRule[] }[] }).groups.flatMap((g) => g.rules)

/** Every PromQL expression in the dashboard and the alert rules, with where it comes from. */
function allExpressions(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = []
  for (const p of dashboard.panels) {
    for (const target of p.targets ?? []) out.push({ where: `panel "${p.title}" ${target.refId}`, expr: target.expr ?? '' })
  }
  for (const v of dashboard.templating.list) {
    if (v.type !== 'query') continue
    // Grafana's label_values(METRIC_SELECTOR, LABEL): only the selector is PromQL.
    const q = typeof v.query === 'string' ? v.query : v.query.query
    const m = /^label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\)$/.exec(q)
    out.push({ where: `variable ${v.name}`, expr: m?.[1] ?? q })
  }
  for (const r of alertRules) out.push({ where: `alert ${r.alert ?? r.record}`, expr: r.expr })
  const tests = parseYaml(read('deploy/prometheus/alerts.test.yml')) as { tests: { name: string; input_series: { series: string }[] }[] }
  for (const tc of tests.tests) for (const s of tc.input_series) out.push({ where: `alerts.test.yml "${tc.name}"`, expr: s.series })
  return out
}

t.test('promtool: the alert rules are valid', async (t) => {
  const r = promtool('check', 'rules', 'deploy/prometheus/alerts.yml')
  t.equal(r.status, 0, r.output)
  t.match(r.output, /SUCCESS: 7 rules found/)
})

t.test('promtool: the alert rules pass their unit tests', async (t) => {
  const r = promtool('test', 'rules', 'deploy/prometheus/alerts.test.yml')
  t.equal(r.status, 0, r.output)
})

t.test('promtool: the Prometheus config is valid, with its rule file', async (t) => {
  const r = promtool('check', 'config', 'deploy/prometheus/prometheus.yml')
  t.equal(r.status, 0, r.output)
  t.match(r.output, /1 rule files found/)
  const config = parseYaml(read('deploy/prometheus/prometheus.yml')) as { scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[] }
  const job = config.scrape_configs.find((c) => c.job_name === 'ftp-pasv-proxy')
  t.ok(job, 'the job FtpProxyDown selects')
  t.same(job?.static_configs[0]?.targets, ['127.0.0.1:9464'])
})

t.test('every alert the runbook names exists, with a severity and a test', async (t) => {
  const names = [
    'FtpProxyDataConnectionsFailing',
    'FtpProxyAdvertisedAddressMismatch',
    'FtpProxyPoolNearlyExhausted',
    'FtpProxyUpstreamUnreachable',
    'FtpProxyConfigReloadRejected',
    'FtpProxyBounceAttempts',
    'FtpProxyDown',
  ]
  t.same(alertRules.map((r) => r.alert).sort(), [...names].sort())
  for (const r of alertRules) t.match(r.labels?.severity, /^(info|warning|critical)$/, `${r.alert} severity`)
  // Each rule has at least one case where it fires and one where it must not.
  const tests = parseYaml(read('deploy/prometheus/alerts.test.yml')) as {
    tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[]
  }
  const cases = tests.tests.flatMap((tc) => tc.alert_rule_test ?? [])
  for (const name of names) {
    t.ok(cases.some((c) => c.alertname === name && c.exp_alerts.length > 0), `${name} has a firing case`)
    t.ok(cases.some((c) => c.alertname === name && c.exp_alerts.length === 0), `${name} has a silent case`)
  }
})

t.test('every YAML file under deploy/ and grafana/ parses without errors', async (t) => {
  const files = [...filesUnder('deploy', (n) => /\.ya?ml$/.test(n)), ...filesUnder('grafana', (n) => /\.ya?ml$/.test(n))]
  t.ok(files.length >= 10, `found ${files.length} YAML files`)
  for (const file of files) {
    const docs = parseAllDocuments(read(file))
    const list = Array.isArray(docs) ? docs : [docs]
    t.ok(list.length > 0, `${file}: at least one document`)
    for (const doc of list) {
      t.same(doc.errors.map((e) => e.message), [], `${file}: no errors`)
      t.same(doc.warnings.map((e) => e.message), [], `${file}: no warnings`)
    }
  }
})

t.test('the dashboard JSON is what grafana/build-dashboard.mjs generates', async (t) => {
  const r = run(process.execPath, ['grafana/build-dashboard.mjs', '--check'], 'node runs this test')
  t.equal(r.status, 0, r.output)
})

t.test('the dashboard: variables, and every panel titled, described and queried', async (t) => {
  t.ok(dashboard.schemaVersion >= 39, `schemaVersion ${dashboard.schemaVersion}`)
  const vars = new Map(dashboard.templating.list.map((v) => [v.name, v]))
  t.match(vars.get('DS_PROMETHEUS'), { type: 'datasource', query: 'prometheus' })
  t.match(vars.get('instance'), { type: 'query' })
  t.ok(dashboard.panels.length >= 14, `${dashboard.panels.length} panels`)
  const ids = new Set<number>()
  for (const p of dashboard.panels) {
    const name = `panel ${p.id} "${p.title}"`
    t.ok(typeof p.title === 'string' && p.title.trim() !== '', `${name}: title`)
    t.ok(typeof p.description === 'string' && p.description.length >= 40, `${name}: a description in words`)
    t.ok((p.targets ?? []).length >= 1, `${name}: at least one target`)
    for (const target of p.targets ?? []) t.ok((target.expr ?? '').trim() !== '', `${name} ${target.refId}: an expression`)
    // eslint-disable-next-line no-template-curly-in-string -- Grafana's variable syntax
    t.equal(p.datasource?.uid, '${DS_PROMETHEUS}', `${name}: the data source variable`)
    t.notOk(p.id === undefined || ids.has(p.id), `${name}: a unique id`)
    if (p.id !== undefined) ids.add(p.id)
  }
  // No two panels overlap on Grafana's 24-column grid.
  const owner = new Map<string, string>()
  const overlaps: string[] = []
  for (const p of dashboard.panels) {
    const g = p.gridPos
    if (g === undefined) {
      t.fail(`panel "${p.title}": no gridPos`)
      continue
    }
    t.ok(g.x >= 0 && g.w > 0 && g.h > 0 && g.x + g.w <= 24, `panel "${p.title}" fits the grid width`)
    for (let x = g.x; x < g.x + g.w; x++) {
      for (let y = g.y; y < g.y + g.h; y++) {
        const other = owner.get(`${x},${y}`)
        if (other !== undefined) overlaps.push(`"${p.title}" overlaps "${other}" at ${x},${y}`)
        owner.set(`${x},${y}`, p.title ?? '')
      }
    }
  }
  t.same(overlaps, [], 'no panels overlap')
})

t.test('the dashboard top row shows the problem at a glance', async (t) => {
  const topRow = dashboard.panels.filter((p) => p.gridPos?.y === 0)
  t.ok(topRow.every((p) => p.type === 'stat'), 'the top row is stat panels')
  const exprOf = (p: Panel): string => (p.targets ?? []).map((x) => x.expr).join('\n')
  const find = (re: RegExp): Panel | undefined => topRow.find((p) => re.test(exprOf(p)))
  const failures = find(/ftp_proxy_data_connection_failures_total/)
  t.ok(failures, 'failed data connections')
  const steps = failures?.fieldConfig?.defaults?.thresholds?.steps ?? []
  t.match(steps[0], { color: 'green', value: null }, 'green at 0')
  t.ok(steps.some((s) => s.color === 'red' && s.value !== null && s.value > 0 && s.value <= 1), 'red from the first failure')
  t.ok(find(/result="ok"/), 'success ratio')
  t.ok(find(/ftp_proxy_advertised_address_total\{[^}]*matches_control="false"/), 'advertised addresses that differ from the server\'s own')
  t.ok(find(/ftp_proxy_port_pool_in_use.*\/.*ftp_proxy_port_pool_size/), 'pool in use / size')
  t.ok(find(/ftp_proxy_sessions_active/), 'active sessions')
  t.ok(find(/\bup\{/), 'up')
})

t.test('the metric-name check catches typos and ignores what is not a name', async (t) => {
  t.same(
    metricNames('histogram_quantile(0.95, sum by (le) (rate(ftp_proxy_data_connect_seconds_bucket{job=~"$job", le!="+Inf"}[$__rate_interval])))'),
    ['ftp_proxy_data_connect_seconds_bucket'],
  )
  t.same(metricNames('sum(a) by (reason) / on(instance) group_left(version) b offset 5m > bool 1e3'), ['a', 'b'])
  t.same(metricNames('min(up{job="x"}) == 0 and absent(nan_metric)'), ['up', 'nan_metric'])
  const typo = metricNames('sum(increase(ftp_proxy_data_conection_failures_total[5m])) > 0')
  t.same(typo, ['ftp_proxy_data_conection_failures_total'])
  t.notOk(KNOWN_METRICS.has(typo[0] ?? ''), 'the misspelt name is not known')
})

t.test('every metric in the dashboard and the alerts is one the proxy exports', async (t) => {
  const seen = new Set<string>()
  for (const { where, expr } of allExpressions()) {
    const names = metricNames(expr)
    t.ok(names.length > 0, `${where}: selects a metric`)
    for (const name of names) {
      t.ok(KNOWN_METRICS.has(name), `${where}: ${name} is exported by the proxy`)
      seen.add(name)
    }
  }
  // The dashboard covers every series the proxy exports.
  for (const name of [...COUNTERS_AND_GAUGES, 'up']) t.ok(seen.has(name), `${name} is shown somewhere`)
})

t.test('the names relied on here are the ones src/observe/metrics.ts registers', async (t) => {
  const m = createMetrics({ version: 'test', defaultMetrics: false })
  const registered = new Set((await m.registry.getMetricsAsJSON()).map((x) => x.name))
  for (const name of [...COUNTERS_AND_GAUGES, ...HISTOGRAMS]) t.ok(registered.has(name), `${name} is registered`)
})

t.test('promtool parses every dashboard expression', async (t) => {
  // Grafana's variables replaced by values of the same kind, then each expression as a recording
  // rule, which `promtool check rules` parses with Prometheus' own PromQL parser.
  const dir = mkdtempSync(join(tmpdir(), 'ftp-proxy-dashboard-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const promql = (expr: string): string =>
    expr.replace(/\$__(?:rate_interval|interval|range)\b/g, '1m').replace(/\$\{?[A-Za-z_]\w*\}?/g, '.+')
  const rules = dashboard.panels.flatMap((p) =>
    (p.targets ?? []).map((x) => ({ record: `dashboard:panel_${p.id}_${x.refId}`, expr: promql(x.expr ?? '') })),
  )
  const good = join(dir, 'dashboard.rules.yml')
  writeFileSync(good, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }))
  const r = promtool('check', 'rules', good)
  t.equal(r.status, 0, r.output)
  t.match(r.output, new RegExp(`SUCCESS: ${rules.length} rules found`))
  // The same check rejects a broken expression, so a pass above means something.
  const bad = join(dir, 'bad.rules.yml')
  writeFileSync(bad, JSON.stringify({ groups: [{ name: 'bad', rules: [{ record: 'x:y', expr: 'sum(rate(x[1m])' }] }] }))
  t.not(promtool('check', 'rules', bad).status, 0, 'an unbalanced parenthesis fails')
})

/** A free loopback port: bound, read and closed. Prometheus cannot report a port 0 back. */
async function freePort(): Promise<number> {
  const s = createTcpServer().listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as { port: number }).port
  s.close()
  await once(s, 'close')
  return port
}

async function poll<T>(what: string, deadline: number, probe: () => Promise<T | undefined>): Promise<T> {
  for (;;) {
    const v = await probe().catch(() => undefined)
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

// A real Prometheus (Debian package, as promtool) loads prometheus.yml with alerts.yml, scrapes the
// proxy's own metric registry, and answers every dashboard query with data: this catches what a
// parser cannot, such as a label value the proxy never exports (an empty answer).
t.test('a real Prometheus answers every dashboard query from the proxy\'s metrics', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ftp-proxy-prometheus-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))

  // The proxy's registry, with some of everything happening while Prometheus scrapes.
  const m = createMetrics({ version: 'deploy-test' })
  m.poolSize.set(100)
  m.sessionsActive.set(2)
  const activity = (): void => {
    m.sessionsTotal.inc()
    m.poolInUse.set(5 + Math.floor(Math.random() * 5))
    m.leaseEnded({ result: 'ok' })
    m.leaseEnded({ result: 'failed', reason: 'upstream_refused' })
    m.leaseEnded({ result: 'cancelled', reason: 'replaced' })
    m.advertised('private', false)
    m.passiveReplies.inc({ reply: '227' })
    m.dataBytes.inc({ direction: 'download' }, 65536)
    m.dataConnectSeconds.observe(0.02)
    m.dataTransferSeconds.observe(1.5)
    m.commandsRefused.inc({ reason: 'bounce' })
    m.commandsRefused.inc({ reason: 'malformed' })
    m.configReloads.inc({ result: 'ok' })
    m.sessionsRejected.inc({ reason: 'limit' })
  }
  activity()
  const timer = setInterval(activity, 200)
  t.teardown(() => clearInterval(timer))
  const metricsServer: Server = createServer((_req, res) => {
    void m.registry.metrics().then((body) => {
      res.setHeader('content-type', m.registry.contentType)
      res.end(body)
    })
  }).listen(0, '127.0.0.1')
  await once(metricsServer, 'listening')
  t.teardown(() => metricsServer.close())
  const target = `127.0.0.1:${(metricsServer.address() as { port: number }).port}`

  // deploy/prometheus/prometheus.yml with the test's target, a 1 s interval to be quick, and the
  // rule file by absolute path (the copy lives in a temp directory).
  const config = parseYaml(read('deploy/prometheus/prometheus.yml')) as {
    global: Record<string, string>
    rule_files: string[]
    scrape_configs: { static_configs: { targets: string[] }[] }[]
  }
  config.global['scrape_interval'] = '1s'
  config.global['evaluation_interval'] = '1s'
  config.rule_files = config.rule_files.map((f) => path(join('deploy/prometheus', f)))
  for (const job of config.scrape_configs) for (const sc of job.static_configs) sc.targets = [target]
  writeFileSync(join(dir, 'prometheus.yml'), JSON.stringify(config))

  const port = await freePort()
  let log = ''
  const prometheus = spawn(
    'prometheus',
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  prometheus.stdout.on('data', (d: Buffer) => (log += d.toString()))
  prometheus.stderr.on('data', (d: Buffer) => (log += d.toString()))
  const spawned = await Promise.race([once(prometheus, 'spawn').then(() => null), once(prometheus, 'error').then(([e]) => e as Error)])
  if (spawned !== null) throw new Error(`prometheus cannot start (${spawned.message}): ${PROMTOOL_HINT}`)
  t.teardown(async () => {
    if (prometheus.exitCode === null) {
      prometheus.kill('SIGTERM')
      await once(prometheus, 'exit')
    }
  })
  const api = `http://127.0.0.1:${port}/api/v1`
  const query = async (expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> => {
    const res = await fetch(`${api}/query?query=${encodeURIComponent(expr)}`, { signal: AbortSignal.timeout(5000) })
    const body = (await res.json()) as { status: string; error?: string; data?: { result: { metric: Record<string, string>; value: [number, string] }[] } }
    if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`)
    return body.data?.result ?? []
  }

  // Ready once every rule loaded and a handful of scrapes give rates and quantiles samples to use.
  const deadline = Date.now() + 60_000
  await poll('the first scrapes', deadline, async () => {
    const r = await query('count_over_time(up{job="ftp-pasv-proxy"}[1m])')
    return Number(r[0]?.value[1]) >= 5 ? true : undefined
  }).catch((err: Error) => {
    throw new Error(`${err.message}; prometheus log:\n${log}`)
  })

  const rules = (await (await fetch(`${api}/rules`)).json()) as { data: { groups: { rules: { name: string; health: string }[] }[] } }
  const loaded = rules.data.groups.flatMap((g) => g.rules)
  t.equal(loaded.length, alertRules.length, 'every alert rule loaded')
  t.ok(loaded.every((r) => r.health !== 'err'), 'every rule evaluates')

  // Grafana's variables as Grafana would fill them for this target; $__rate_interval as four
  // scrape intervals, $__range (the dashboard's time range) as one minute.
  const fill = (expr: string): string =>
    expr.replaceAll('$__rate_interval', '4s').replaceAll('$__range', '1m').replaceAll('$job', 'ftp-pasv-proxy').replaceAll('$instance', target)
  for (const v of dashboard.templating.list) {
    if (v.type !== 'query') continue
    const q = typeof v.query === 'string' ? v.query : v.query.query
    const [, selector, label] = /^label_values\((.*),\s*(\w+)\)$/.exec(q) ?? []
    const res = await fetch(`${api}/label/${label}/values?match[]=${encodeURIComponent(fill(selector ?? ''))}`)
    const values = ((await res.json()) as { data: string[] }).data
    t.same(values, [v.name === 'job' ? 'ftp-pasv-proxy' : target], `variable ${v.name}`)
  }
  for (const p of dashboard.panels) {
    for (const target of p.targets ?? []) {
      const result = await query(fill(target.expr ?? ''))
      t.ok(
        result.length > 0 && result.some((s) => Number.isFinite(Number(s.value[1]))),
        `panel "${p.title}" ${target.refId}: a number (${JSON.stringify(result.map((s) => s.value[1]))})`,
      )
    }
  }
})

t.test('systemd-analyze verifies the unit', async (t) => {
  const unit = 'deploy/systemd/ftp-pasv-proxy.service'
  const r = run('systemd-analyze', ['verify', unit], 'install the Debian package systemd')
  t.equal(r.status, 0, r.output)
  // verify exits 0 on keys it ignores ("Unknown key ..., ignoring"): any line about this unit
  // is a finding.
  t.same(r.output.split('\n').filter((l) => l.includes('ftp-pasv-proxy.service')), [], 'no complaint about the unit')
})

/** Seconds from a systemd or compose duration like 40s, 1min 30s, 1m30s. */
function seconds(text: string): number {
  const units: Record<string, number> = { ms: 0.001, s: 1, sec: 1, m: 60, min: 60, h: 3600 }
  let total = 0
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)\s*(ms|sec|min|s|m|h)?/g)) total += Number(m[1]) * (units[m[2] ?? 's'] ?? NaN)
  return total
}

function unitSettings(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line)
    if (m?.[1] === undefined || m[2] === undefined) continue
    out.set(m[1], [...(out.get(m[1]) ?? []), m[2]])
  }
  return out
}

t.test('the systemd unit: hardened, and stops after the shutdown grace', async (t) => {
  const s = unitSettings(read('deploy/systemd/ftp-pasv-proxy.service'))
  const one = (k: string): string | undefined => s.get(k)?.at(-1)
  for (const [k, v] of Object.entries({
    DynamicUser: 'yes',
    NoNewPrivileges: 'yes',
    ProtectSystem: 'strict',
    Restart: 'on-failure',
    KillSignal: 'SIGTERM',
    EnvironmentFile: '-/etc/default/ftp-pasv-proxy',
    ExecReload: '/bin/kill -HUP $MAINPID',
    AmbientCapabilities: '',
  })) {
    t.equal(one(k), v, k)
  }
  t.match(one('ExecStart'), /^\/usr\/bin\/env node \/opt\/ftp-pasv-proxy\/dist\/main\.js\b/)
  const stop = seconds(one('TimeoutStopSec') ?? '0')
  const grace = DEFAULTS.shutdownGraceMs / 1000
  t.ok(stop > grace && stop <= grace + 30, `TimeoutStopSec ${stop}s is a little over the ${grace}s grace`)
  // The example environment file loads as the proxy would load it.
  const env = Object.fromEntries(
    read('deploy/systemd/ftp-pasv-proxy.default')
      .split('\n')
      .map((l) => /^([A-Z_]+)=(.*)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1], m[2]]),
  )
  const config = loadConfig([], env)
  t.ok(config.shutdownGraceMs / 1000 < stop, 'the example grace fits TimeoutStopSec')
})

t.test('the Dockerfile: node:22-slim, two stages, non-root, ports, health check', async (t) => {
  const text = read('deploy/Dockerfile')
  const froms = [...text.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1])
  t.same(froms, ['node:22-slim', 'node:22-slim'])
  t.match(text, /^RUN npm ci$/m)
  t.match(text, /^RUN npm run build$/m)
  t.match(text, /^RUN npm ci --omit=dev\b/m)
  const user = /^USER\s+(\S+)/m.exec(text)?.[1] ?? 'root'
  t.notOk(/^(root|0)(:|$)/.test(user), `USER ${user} is not root`)
  const { min, max } = DEFAULTS.passivePorts
  const expose = /^EXPOSE\s+(.*)$/m.exec(text)?.[1]?.split(/\s+/) ?? []
  for (const port of ['2121/tcp', '9464/tcp', `${min}-${max}/tcp`]) t.ok(expose.includes(port), `EXPOSE ${port}`)
  t.match(text, /^HEALTHCHECK .*\n?.*CMD \["node".*\/healthz/m)
  t.match(text, /^ENTRYPOINT \["node", ?"dist\/main\.js"\]$/m)
})

t.test('compose: three services on the host network, files that exist, a stop grace over the shutdown grace', async (t) => {
  interface Service {
    network_mode?: string
    environment?: Record<string, string>
    volumes?: string[]
    stop_grace_period?: string
    build?: { context: string; dockerfile: string }
  }
  const compose = parseYaml(read('deploy/compose.yaml')) as { services: Record<string, Service> }
  t.same(Object.keys(compose.services).sort(), ['grafana', 'prometheus', 'proxy'])
  for (const [name, s] of Object.entries(compose.services)) t.equal(s.network_mode, 'host', `${name}: host network`)
  for (const s of Object.values(compose.services)) {
    for (const v of s.volumes ?? []) {
      const source = v.split(':')[0] ?? ''
      // Named volumes have no slash; bind mounts are relative to deploy/.
      if (source.includes('/')) t.ok(statSync(path(join('deploy', source)), { throwIfNoEntry: false }), `${v}: the source exists`)
    }
  }
  const proxy = compose.services['proxy']
  t.equal(proxy?.build?.dockerfile, 'deploy/Dockerfile')
  t.ok(seconds(proxy?.stop_grace_period ?? '0') > DEFAULTS.shutdownGraceMs / 1000, 'stop_grace_period')
  // Its environment, with compose's ${VAR:-default} and ${VAR:?message} resolved, loads.
  const env = Object.fromEntries(
    Object.entries(proxy?.environment ?? {}).map(([k, v]) => [
      k,
      String(v).replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1').replace(/\$\{[A-Z_]+:\?[^}]*\}/g, '192.0.2.10:21'),
    ]),
  )
  const config = loadConfig([], env)
  t.same(config.metricsListen, { host: '127.0.0.1', port: 9464 }, 'metrics where prometheus.yml scrapes')
  t.ok(config.shutdownGraceMs / 1000 < seconds(proxy?.stop_grace_period ?? '0'), 'grace fits stop_grace_period')
})

t.test('Kubernetes: the ConfigMap loads, probes and grace fit the proxy', async (t) => {
  const docs = filesUnder('deploy/kubernetes', (n) => n.endsWith('.yaml')).flatMap((f) =>
    parseAllDocuments(read(f)).map((d) => d.toJS() as { kind: string; metadata: { name: string }; [k: string]: unknown }),
  )
  const kinds = docs.map((d) => d.kind).sort()
  t.same(kinds, ['ConfigMap', 'Deployment', 'Kustomization', 'Namespace', 'Service'])

  const cm = docs.find((d) => d.kind === 'ConfigMap') as unknown as { data: Record<string, string> }
  const text = cm.data['config.yaml'] ?? ''
  const config = loadConfig(['--config', '/etc/ftp-pasv-proxy/config.yaml'], {}, () => text)
  // Kubernetes' NodePort range: kube-proxy's rules for a NodePort there would take the traffic.
  t.ok(config.passivePorts.max < 30000 || config.passivePorts.min > 32767, 'the passive pool is outside the NodePort range')
  t.equal(config.metricsListen?.port, 9464)

  interface Probe {
    httpGet: { path: string; port: string | number }
  }
  const deploy = docs.find((d) => d.kind === 'Deployment') as unknown as {
    spec: {
      template: {
        spec: {
          hostNetwork?: boolean
          terminationGracePeriodSeconds: number
          containers: { args: string[]; ports: { name: string; containerPort: number }[]; readinessProbe: Probe; livenessProbe: Probe }[]
        }
      }
    }
  }
  const pod = deploy.spec.template.spec
  t.equal(pod.hostNetwork, true, 'hostNetwork: the passive range needs no Service')
  t.ok(pod.terminationGracePeriodSeconds > config.shutdownGraceMs / 1000, 'terminationGracePeriodSeconds > shutdownGrace')
  const c = pod.containers[0]
  const portOf = (p: string | number | undefined): number | undefined =>
    typeof p === 'number' ? p : c?.ports.find((x) => x.name === p)?.containerPort
  t.equal(c?.readinessProbe.httpGet.path, '/readyz')
  t.equal(c?.livenessProbe.httpGet.path, '/healthz')
  t.equal(portOf(c?.readinessProbe.httpGet.port), 9464)
  t.equal(portOf(c?.livenessProbe.httpGet.port), 9464)
  t.same(c?.args.slice(1), ['--config', '/etc/ftp-pasv-proxy/config.yaml'])
})

t.test('Grafana provisioning: both files, and a data source that matches the scrape interval', async (t) => {
  for (const f of ['grafana/provisioning/dashboards/ftp-pasv-proxy.yaml', 'grafana/provisioning/datasources/prometheus.yaml']) {
    t.ok(statSync(path(f), { throwIfNoEntry: false }), f)
  }
  const ds = parseYaml(read('grafana/provisioning/datasources/prometheus.yaml')) as { datasources: { type: string; jsonData: { timeInterval: string } }[] }
  const prom = parseYaml(read('deploy/prometheus/prometheus.yml')) as { global: { scrape_interval: string } }
  t.equal(ds.datasources[0]?.type, 'prometheus')
  t.equal(ds.datasources[0]?.jsonData.timeInterval, prom.global.scrape_interval, "Grafana's timeInterval is the scrape interval")
})
