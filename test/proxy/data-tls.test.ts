// Protected data legs (src/proxy/data-tls.ts) over real loopback sockets, with a certificate made
// by the test: a TLS leg that must be cut is destroyed, never reset under its TLS socket (which
// crashes Node 20 with SIGSEGV: this test process would die); a client data connection that does
// not resume its session is refused under --client-data-tls-reuse required, and one that does is
// taken, each counted.
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import t from 'tap'
import { createMetrics } from '../../src/observe/metrics.js'
import { resetLeg } from '../../src/proxy/data-relay.js'
import { protectLegs } from '../../src/proxy/data-tls.js'
import { loadConfig } from '../../src/config.js'
import { loadTlsSettings, serverSocket, type ClientTlsSide } from '../../src/net/tls.js'
import { makeCertificates } from '../fixtures/certs.js'

const dir = mkdtempSync(join(tmpdir(), 'data-tls-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const certs = makeCertificates(dir)
const context = tls.createSecureContext({ cert: readFileSync(certs.cert), key: readFileSync(certs.key) })
const side: ClientTlsSide = { context, server: tls.createServer({ secureContext: context }), sni: undefined, clientCert: 'none' }

/** A connected pair of TCP sockets on loopback: [ours, theirs]. */
async function pair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const theirs = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  const [ours] = (await once(server, 'connection')) as [net.Socket]
  server.close()
  await once(theirs, 'connect')
  // Resets are what these tests make: nobody's error.
  for (const s of [ours, theirs]) s.on('error', () => {})
  return [ours, theirs]
}

t.test('a TLS client leg that fails is destroyed, not reset: the process lives and the peer sees the close', async (t) => {
  const metrics = createMetrics({ version: 'test', defaultMetrics: false })
  const [clientTcp, clientPeer] = await pair()
  const [upstreamTcp, upstreamPeer] = await pair()
  const legs = protectLegs(clientTcp, upstreamTcp, { client: { side, requireReuse: false }, server: null, timeoutMs: 5000, metrics }, () => {})
  const peer = tls.connect({ socket: clientPeer, ca: readFileSync(certs.caCert), servername: 'localhost' })
  peer.on('error', () => {})
  await once(peer, 'secureConnect')
  const until = Date.now() + 5000
  while ((await handshakes(metrics, 'client', 'data', 'ok')) === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10))
  resetLeg(legs.client)
  resetLeg(legs.upstream)
  await once(peer, 'close')
  t.pass('the peer saw its connection close, and this process is still running')
  upstreamPeer.destroy()
  t.equal(await handshakes(metrics, 'client', 'data', 'ok'), 1, 'the handshake was counted')
})

t.test('--client-data-tls-reuse required: a data connection that does not resume is refused; one that does is taken', async (t) => {
  const metrics = createMetrics({ version: 'test', defaultMetrics: false })
  const dataTls = { client: { side, requireReuse: true }, server: null, timeoutMs: 5000, metrics }
  const ca = readFileSync(certs.caCert)
  // The control connection, on the proxy's side as the session makes it: its session is the one to resume.
  const { session, close } = await controlConnection(side)
  t.teardown(close)
  t.ok(session !== undefined, 'the client holds a session of its control connection')
  // A data connection with a full handshake: refused.
  const failures: string[] = []
  const [a, aPeer] = await pair()
  const [au] = await pair()
  protectLegs(a, au, dataTls, (err) => failures.push(err.message))
  const fresh = tls.connect({ socket: aPeer, ca, servername: 'localhost' })
  fresh.on('error', () => {})
  fresh.on('data', () => {})
  await once(fresh, 'close')
  t.equal(failures.length, 1, 'refused')
  t.match(failures[0], /did not resume/, 'with the reason')
  // One that resumes the control session: taken.
  const [b, bPeer] = await pair()
  const [bu] = await pair()
  protectLegs(b, bu, dataTls, (err) => failures.push(err.message))
  const resumed = tls.connect({ socket: bPeer, ca, servername: 'localhost', ...(session === undefined ? {} : { session }) })
  resumed.on('error', () => {})
  await once(resumed, 'secureConnect')
  t.ok(resumed.isSessionReused(), 'it resumed')
  const deadline = Date.now() + 5000
  while ((await handshakes(metrics, 'client', 'data', 'resumed')) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  t.equal(failures.length, 1, 'the resuming connection is not refused')
  t.equal(await handshakes(metrics, 'client', 'data', 'resumed'), 1)
  t.equal(await handshakes(metrics, 'client', 'data', 'failed'), 1)
  for (const s of [resumed, au, bu]) s.destroy()
})

/** A control connection made TLS on the proxy's side with `scope`, and the session its client got. */
async function controlConnection(scope: ClientTlsSide): Promise<{ session: Buffer | undefined; close: () => void }> {
  const [control, controlPeer] = await pair()
  const controlTls = serverSocket(control, scope)
  controlTls.on('error', () => {})
  controlTls.on('data', () => {})
  let session: Buffer | undefined
  const client = tls.connect({ socket: controlPeer, ca: readFileSync(certs.caCert), servername: 'localhost' })
  client.on('session', (s: Buffer) => (session = s))
  client.on('error', () => {})
  await once(client, 'secureConnect')
  // TLS 1.3 tickets come after the handshake.
  const until = Date.now() + 5000
  while (session === undefined && Date.now() < until) await new Promise((r) => setTimeout(r, 10))
  return {
    session,
    close: () => {
      client.destroy()
      controlTls.destroy()
    },
  }
}

async function handshakes(metrics: ReturnType<typeof createMetrics>, side: string, channel: string, result: string): Promise<number> {
  const data = await metrics.tlsHandshakes.get()
  return data.values.find((v) => v.labels['side'] === side && v.labels['channel'] === channel && v.labels['result'] === result)?.value ?? 0
}

t.test("another session's TLS session does not resume a data connection (each control session has its own scope)", async (t) => {
  // The attack the hostile review found: a second client from the same IP, with a TLS session
  // of its own, resumed it on the victim's passive port and got the victim's file.
  const config = loadConfig(['--upstream', '127.0.0.1:21', '--tls-cert', certs.cert, '--tls-key', certs.key], {})
  const settings = loadTlsSettings(config)
  const victim = settings.clientSide!.newScope()
  const attacker = settings.clientSide!.newScope()
  const metrics = createMetrics({ version: 'test', defaultMetrics: false })
  const ca = readFileSync(certs.caCert)
  // The attacker's own control connection gives it a session (of its scope).
  const { session, close } = await controlConnection(attacker)
  t.teardown(close)
  t.ok(session !== undefined, 'the attacker holds a session')
  // It resumes it on the victim's data port: refused under --client-data-tls-reuse required.
  const failures: string[] = []
  const [d, dPeer] = await pair()
  const [du] = await pair()
  protectLegs(d, du, { client: { side: victim, requireReuse: true }, server: null, timeoutMs: 5000, metrics }, (err) => failures.push(err.message))
  const thief = tls.connect({ socket: dPeer, ca, servername: 'localhost', ...(session === undefined ? {} : { session }) })
  thief.on('error', () => {})
  thief.on('data', () => {})
  await once(thief, 'close')
  t.notOk(thief.isSessionReused(), "the victim's scope did not resume the attacker's session")
  t.equal(failures.length, 1, 'the data connection was refused')
  du.destroy()
})
