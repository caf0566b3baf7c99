// An error no peer caused (here: the system refuses every bind of the pool) ends that session with
// a 421 and a log line; it never takes the process down.
import { Writable } from 'node:stream'
import { pino } from 'pino'
import t from 'tap'
import { collect, sessionHarness } from '../fixtures/session-harness.js'

t.test('a pool that cannot bind: 421 internal error, session closed, process alive', async (t) => {
  const lines: string[] = []
  const logger = pino(
    { level: 'info' },
    new Writable({
      write(c: Buffer, _e, cb) {
        lines.push(c.toString())
        cb()
      },
    }),
  )
  const h = sessionHarness(['--passive-ports', '22460-22461'], logger)
  h.pool.lease = () => Promise.reject(Object.assign(new Error('bind EACCES'), { code: 'EACCES' }))
  const toClient = collect(h.client)
  h.server.write('220 ready\r\n')
  h.client.write('PASV\r\n')
  h.server.write('227 Entering Passive Mode (127,0,0,1,4,1)\r\n')
  const out = (await toClient).toString()
  t.match(out, /^220 ready\r\n421 Service not available: internal error in the proxy; closing\.\r\n$/)
  await h.session.done
  t.ok(lines.some((l) => l.includes('"internal error; closing the session"') && l.includes('EACCES')), 'logged with the cause')
})
