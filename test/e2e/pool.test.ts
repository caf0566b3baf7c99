// The pool against a real server: after 200 sequential transfers every port can be leased again
// at once, and the proxy holds no file descriptor more than before. Ports: 22800-22899.
import { createHash } from 'node:crypto'
import { readdirSync } from 'node:fs'
import t from 'tap'
import { startProxy } from '../fixtures/proxy.js'
import { pasvEndpoint, RawFtp, readAll } from '../fixtures/raw-ftp.js'
import { makeRandomFile, startVsftpd } from './lib/servers.js'

t.setTimeout(180_000)
const POOL = { min: 22850, max: 22869 } // 20 ports

const server = await startVsftpd({ port: 22800, pasvMin: 22810, pasvMax: 22849, pasvAddress: '127.0.0.99' })
t.teardown(() => server.stop())
const file = await makeRandomFile(server.root, 'small.bin', 64 * 1024)
const proxy = await startProxy(['--upstream', '127.0.0.1:22800', '--passive-ports', `${POOL.min}-${POOL.max}`], 'warn')
t.teardown(() => proxy.close())
const openFds = (): number => readdirSync('/proc/self/fd').length

async function settle(): Promise<void> {
  const end = Date.now() + 5000
  while ((proxy.proxy.sessionCount > 0 || proxy.proxy.pool.inUse > 0) && Date.now() < end) await new Promise((r) => setTimeout(r, 20))
}

t.test('200 sequential transfers, then every port leased at once', async (t) => {
  const fdsBefore = openFds()
  let good = 0
  for (let s = 0; s < 10; s++) {
    const c = await RawFtp.connect(proxy.host, proxy.port)
    await c.login()
    for (let i = 0; i < 20; i++) {
      const ep = pasvEndpoint((await c.cmd('PASV')).text)
      const data = readAll(ep.host, ep.port)
      const r = await c.cmd('RETR small.bin')
      const sha = createHash('sha256').update(await data).digest('hex')
      if (r.code === 226 && sha === file.sha256) good++
    }
    await c.cmd('QUIT')
    c.close()
  }
  t.equal(good, 200, '200 transfers with equal sha256')
  await settle()
  t.equal(proxy.proxy.pool.inUse, 0, 'no port leased')

  const clients = await Promise.all(
    Array.from({ length: POOL.max - POOL.min + 2 }, async () => {
      const c = await RawFtp.connect(proxy.host, proxy.port)
      await c.login()
      return c
    }),
  )
  const first = clients.slice(0, -1)
  const replies = await Promise.all(first.map((c) => c.cmd('PASV')))
  t.equal(replies.filter((r) => r.code === 227).length, 20, 'as many concurrent PASV as the pool has ports succeed')
  const ports = new Set(replies.map((r) => pasvEndpoint(r.text).port))
  t.equal(ports.size, 20, 'each on its own port')
  t.equal((await clients[clients.length - 1]!.cmd('PASV')).code, 425, 'one more gets 425')
  for (const c of clients) c.close()
  await settle()
  t.equal(proxy.proxy.pool.inUse, 0)
  // Sockets close a turn or two after their sessions end, and a /proc read in flight holds an
  // fd for a moment: a leak is a count that stays up, so it is given 5 s to come down.
  const fdDeadline = Date.now() + 5000
  while (openFds() !== fdsBefore && Date.now() < fdDeadline) await new Promise((r) => setTimeout(r, 50))
  t.equal(openFds(), fdsBefore, 'open file descriptors back to their count before')
})
