// The proxy's /metrics as Prometheus sees it: a known scenario through the built program in
// front of vsftpd (pasv_address=127.0.0.99, like PRODFTP), then `promtool check metrics` on the
// scrape and a real Prometheus scraping the proxy and answering PromQL with the exact counts.
// Ports: 23200-23249 and 23290.
import { once } from 'node:events'
import { createHash } from 'node:crypto'
import t from 'tap'
import { RawFtp, pasvEndpoint, readAll } from '../fixtures/raw-ftp.js'
import { httpGet, promQuery, promtoolCheckMetrics, startPrometheus, startProxyProcess } from './lib/prometheus.js'
import type { Sample } from './lib/prometheus.js'
import { makeRandomFile, startVsftpd } from './lib/servers.js'

t.setTimeout(120_000)

const FTP_PORT = 23200
const PROXY_PORT = 23210
const METRICS_PORT = 23220
const PROMETHEUS_PORT = 23290
const JOB = 'ftp-pasv-proxy'
const FILES = { 'a.bin': 100_000, 'b.bin': 50_000 } as const
const FAILURE_REASONS = ['upstream_refused', 'upstream_timeout', 'upstream_unreachable', 'client_timeout', 'pool_exhausted', 'bad_passive_reply', 'reset', 'data_address_refused', 'lease_limit', 'data_idle']

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** The value of one series in a text-format scrape; throws when it is absent. */
function value(text: string, name: string, labels = ''): number {
  const prefix = `${name}${labels === '' ? '' : `{${labels}}`} `
  const line = text.split('\n').find((l) => l.startsWith(prefix))
  if (line === undefined) throw new Error(`no series ${prefix.trim()} in the scrape`)
  return Number(line.slice(prefix.length))
}

async function scrape(base: string): Promise<string> {
  const res = await httpGet(`${base}/metrics`)
  if (res.status !== 200) throw new Error(`/metrics: HTTP ${res.status}: ${res.body}`)
  return res.body
}

/** Polls the PromQL query until it returns a sample (at most 30 s); the samples of that answer. */
async function queryWhenPresent(base: string, query: string): Promise<Sample[]> {
  const deadline = Date.now() + 30_000
  for (let i = 0; i < 120 && Date.now() < deadline; i++) {
    const samples = await promQuery(base, query)
    if (samples.length > 0) return samples
    await sleep(250)
  }
  throw new Error(`Prometheus returned no sample for ${query} within 30 s`)
}

const server = await startVsftpd({ port: FTP_PORT, pasvMin: 23201, pasvMax: 23209, pasvAddress: '127.0.0.99' })
t.teardown(() => server.stop())
const digests = new Map<string, string>()
for (const [name, size] of Object.entries(FILES)) digests.set(name, (await makeRandomFile(server.root, name, size)).sha256)

const proxy = await startProxyProcess([
  '--listen', `127.0.0.1:${PROXY_PORT}`,
  '--upstream', `127.0.0.1:${FTP_PORT}`,
  '--passive-ports', '23211-23219',
  '--metrics-listen', `127.0.0.1:${METRICS_PORT}`,
  '--data-accept-timeout', '500ms',
])
t.teardown(() => proxy.stop())
t.equal(proxy.metricsBase, `http://127.0.0.1:${METRICS_PORT}`, 'the proxy logs its metrics address')

let metrics = ''

t.test('scenario: 2 RETRs through the proxy, 1 PASV the client never connects to', async (t) => {
  const ftp = await RawFtp.connect('127.0.0.1', PROXY_PORT)
  t.teardown(() => ftp.close())
  await ftp.login(server.user, server.password)
  t.equal((await ftp.cmd('TYPE I')).code, 200)
  for (const name of Object.keys(FILES)) {
    const pasv = await ftp.cmd('PASV')
    t.equal(pasv.code, 227, `PASV for ${name}`)
    const { host, port } = pasvEndpoint(pasv.text)
    t.equal(host, '127.0.0.1', 'the client gets the proxy address, not 127.0.0.99')
    const data = readAll(host, port)
    const done = await ftp.cmd(`RETR ${name}`)
    t.equal(done.code, 226, `RETR ${name}: ${done.text}`)
    t.equal(sha256(await data), digests.get(name), `${name} arrives intact`)
  }
  const pasv = await ftp.cmd('PASV')
  t.equal(pasv.code, 227, 'the PASV that nobody connects to')

  // The pool port waits 500 ms for the client, then the setup fails as client_timeout.
  const deadline = Date.now() + 10_000
  for (let i = 0; i < 100 && Date.now() < deadline; i++) {
    metrics = await scrape(proxy.metricsBase)
    if (value(metrics, 'ftp_proxy_data_connections_total', 'result="failed"') > 0) break
    await sleep(100)
  }
  t.equal((await ftp.cmd('QUIT')).code, 221)
  if (!ftp.socket.destroyed) await once(ftp.socket, 'close')
  for (let i = 0; i < 100 && Date.now() < deadline; i++) {
    metrics = await scrape(proxy.metricsBase)
    if (value(metrics, 'ftp_proxy_sessions_active') === 0) break
    await sleep(100)
  }

  t.equal(value(metrics, 'ftp_proxy_data_connections_total', 'result="ok"'), 2)
  t.equal(value(metrics, 'ftp_proxy_data_connections_total', 'result="failed"'), 1)
  t.equal(value(metrics, 'ftp_proxy_data_connections_total', 'result="cancelled"'), 0)
  let sum = 0
  for (const reason of FAILURE_REASONS) {
    const v = value(metrics, 'ftp_proxy_data_connection_failures_total', `reason="${reason}"`)
    t.equal(v, reason === 'client_timeout' ? 1 : 0, `failures{reason="${reason}"}`)
    sum += v
  }
  t.equal(sum, 1, 'the reasons add up to the failed count')
  t.equal(value(metrics, 'ftp_proxy_passive_replies_total', 'reply="227"'), 3)
  t.equal(value(metrics, 'ftp_proxy_passive_replies_total', 'reply="229"'), 0)
  t.equal(value(metrics, 'ftp_proxy_advertised_address_total', 'class="loopback",matches_control="false"'), 3, '127.0.0.99 is loopback and not the control address')
  t.equal(value(metrics, 'ftp_proxy_advertised_address_total', 'class="loopback",matches_control="true"'), 0)
  t.equal(value(metrics, 'ftp_proxy_sessions_total'), 1)
  t.equal(value(metrics, 'ftp_proxy_sessions_active'), 0)
  t.equal(value(metrics, 'ftp_proxy_data_bytes_total', 'direction="download"'), 150_000)
  t.equal(value(metrics, 'ftp_proxy_data_bytes_total', 'direction="upload"'), 0)
  t.equal(value(metrics, 'ftp_proxy_data_transfer_seconds_count'), 2)
  t.equal(value(metrics, 'ftp_proxy_port_pool_size'), 9)
  t.equal(value(metrics, 'ftp_proxy_port_pool_in_use'), 0)
})

t.test('promtool check metrics', async (t) => {
  t.not(metrics, '', 'the scenario scraped /metrics')
  const own = metrics
    .split('\n')
    .filter((l) => /^(# (HELP|TYPE) )?ftp_proxy_/.test(l))
    .join('\n') + '\n'
  t.ok(own.split('\n').length > 40, 'the proxy has its own series')
  const mine = await promtoolCheckMetrics(own)
  t.equal(mine.code, 0, `the ftp_proxy_ lines are clean: ${mine.output}`)
  t.equal(mine.output.trim(), '', 'promtool has nothing to say about them')

  const all = await promtoolCheckMetrics(metrics)
  t.ok(all.code === 0 || all.code === 3, `the whole scrape parses (exit ${all.code}: 0 clean, 3 lint warnings)`)
  const findings = all.output.split('\n').filter((l) => l.trim() !== '')
  t.notOk(findings.some((l) => /error while linting|pars(e|ing) error/i.test(l)), `no parse error: ${all.output}`)
  t.notOk(findings.some((l) => l.startsWith('ftp_proxy_')), 'no finding names a proxy series')
  t.comment(`promtool on the whole scrape: exit ${all.code}; ${findings.join(' | ')}`)
})

t.test('a real Prometheus scrapes the proxy and answers PromQL', async (t) => {
  const prom = await startPrometheus({ port: PROMETHEUS_PORT, target: `127.0.0.1:${METRICS_PORT}`, job: JOB })
  t.teardown(() => prom.stop())
  const started = Date.now()
  const failures = await queryWhenPresent(prom.base, 'ftp_proxy_data_connection_failures_total{reason="client_timeout"}')
  t.comment(`first sample ${Date.now() - started} ms after /-/ready`)
  t.equal(failures.length, 1, 'one series')
  t.equal(failures[0]?.value, 1, 'client_timeout failures = 1')
  t.match(failures[0]?.labels, { job: JOB, instance: `127.0.0.1:${METRICS_PORT}`, reason: 'client_timeout' })

  const ok = await queryWhenPresent(prom.base, 'sum(ftp_proxy_data_connections_total{result="ok"})')
  t.equal(ok.length, 1)
  t.equal(ok[0]?.value, 2, 'sum of ok data connections = 2')
  const failed = await queryWhenPresent(prom.base, 'sum(ftp_proxy_data_connection_failures_total) - sum(ftp_proxy_data_connections_total{result="failed"})')
  t.equal(failed[0]?.value, 0, 'in PromQL too the reasons add up to the failed count')
  const up = await queryWhenPresent(prom.base, `up{job="${JOB}"}`)
  t.equal(up[0]?.value, 1, 'the target is up')
})
