// Failure metrics by cause, exactly: a scripted run inside a network namespace this test
// creates (see test/fixtures/netns-scenario.ts), its /metrics scraped over HTTP.
import { execFileSync, spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'

t.setTimeout(120_000)
const NS = `fpp-metrics-${process.pid}`
const ip = (...args: string[]): void => {
  execFileSync('ip', args, { stdio: 'pipe' })
}
const inNs = (...args: string[]): void => {
  execFileSync('ip', ['netns', 'exec', NS, ...args], { stdio: 'pipe' })
}

ip('netns', 'add', NS)
t.teardown(() => ip('netns', 'delete', NS))
inNs('ip', 'link', 'set', 'lo', 'up')
// A veth pair with both ends inside the namespace gives it a 10.200.0.2 of its own (the dummy
// link type needs a kernel module these machines lack).
inNs('ip', 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1')
inNs('ip', 'addr', 'add', '10.200.0.2/24', 'dev', 'v0')
inNs('ip', 'link', 'set', 'v0', 'up')
inNs('ip', 'link', 'set', 'v1', 'up')
// A drop rule makes a connect time out, as a firewall that blackholes the passive range does.
// Only SYNs: a rule on the port alone also dropped the SYN-ACK of any connect to 10.200.0.2 whose
// ephemeral source port fell in 40000-40099 (1 in 280), which timed out a dial to a listening
// data port now and then (CI, twice: "data port did not answer ... ETIMEDOUT").
inNs('nft', 'add table inet fpp; add chain inet fpp input { type filter hook input priority 0; }; add rule inet fpp input ip daddr 10.200.0.2 tcp dport 40000-40099 tcp flags & (syn | ack) == syn drop')

const loader = fileURLToPath(new URL('../../node_modules/@tapjs/typescript/dist/esm/import.mjs', import.meta.url))
const script = fileURLToPath(new URL('../fixtures/netns-scenario.ts', import.meta.url))
const run = spawnSync('ip', ['netns', 'exec', NS, process.execPath, `--import=${loader}`, script], { encoding: 'utf8', timeout: 90_000 })
t.equal(run.status, 0, `scenario ran: ${run.stderr}`)

function value(name: string, labels = ''): number {
  const line = run.stdout.split('\n').find((l) => l.startsWith(`${name}${labels === '' ? ' ' : `{${labels}} `}`))
  if (line === undefined) throw new Error(`no series ${name}{${labels}}`)
  return Number(line.slice(line.lastIndexOf(' ') + 1))
}

t.test('the values scraped from /metrics are exactly the expected ones', async (t) => {
  t.equal(value('ftp_proxy_data_connections_total', 'result="ok"'), 3)
  t.equal(value('ftp_proxy_data_connections_total', 'result="failed"'), 6)
  t.equal(value('ftp_proxy_data_connections_total', 'result="cancelled"'), 2)
  const failures: Record<string, number> = {
    upstream_refused: 1,
    upstream_timeout: 1,
    upstream_unreachable: 1,
    client_timeout: 1,
    pool_exhausted: 1,
    bad_passive_reply: 1,
    reset: 0,
  }
  let sum = 0
  for (const [reason, n] of Object.entries(failures)) {
    const v = value('ftp_proxy_data_connection_failures_total', `reason="${reason}"`)
    t.equal(v, n, reason)
    sum += v
  }
  t.equal(sum, value('ftp_proxy_data_connections_total', 'result="failed"'), 'the reasons add up to the failed count')
  t.equal(value('ftp_proxy_data_connections_cancelled_total', 'reason="closed"'), 2)
  t.equal(value('ftp_proxy_data_connections_cancelled_total', 'reason="replaced"'), 0)
  t.equal(value('ftp_proxy_foreign_data_connections_total'), 1)
  t.equal(value('ftp_proxy_passive_replies_total', 'reply="227"'), 6)
  t.equal(value('ftp_proxy_passive_replies_total', 'reply="229"'), 0)
  t.equal(value('ftp_proxy_advertised_address_total', 'class="private",matches_control="true"'), 9)
  t.equal(value('ftp_proxy_advertised_address_total', 'class="private",matches_control="false"'), 1)
  t.equal(value('ftp_proxy_advertised_address_total', 'class="public",matches_control="false"'), 0, 'series at 0 exist')
  t.equal(value('ftp_proxy_sessions_total'), 3)
  t.equal(value('ftp_proxy_sessions_active'), 0)
  t.equal(value('ftp_proxy_data_bytes_total', 'direction="download"'), 300_000)
  t.equal(value('ftp_proxy_port_pool_size'), 2)
  t.equal(value('ftp_proxy_port_pool_in_use'), 0)
  t.equal(value('ftp_proxy_data_transfer_seconds_count'), 3)
})
