// FEAT through a session whose client side offers TLS: the server's own AUTH, PBSZ and PROT lines
// never reach the client (they are the proxy's to offer), the proxy's are added before the end
// line, and a one-line 211 from the server becomes a multi-line one that carries them.
import t from 'tap'
import { sessionHarness } from '../fixtures/session-harness.js'

// The certificate paths are not read by a bare session: only --client-tls counts here.
const TLS_ON = ['--tls-cert', 'c.pem', '--tls-key', 'k.pem']

async function feat(args: string[], serverReply: string): Promise<string> {
  const h = sessionHarness(args)
  const got: Buffer[] = []
  h.client.on('data', (b: Buffer) => got.push(b))
  h.server.write('220 ready\r\n')
  h.client.write('FEAT\r\n')
  h.server.write(serverReply)
  const until = Date.now() + 5000
  while (!/^(211|5\d\d) /m.test(Buffer.concat(got).toString('latin1')) && Date.now() < until) await new Promise((r) => setTimeout(r, 5))
  h.session.close('test over')
  return Buffer.concat(got).toString('latin1')
}

t.test("a multi-line 211: the server's TLS lines out, the proxy's in before the end", async (t) => {
  const out = await feat(TLS_ON, '211-Features:\r\n AUTH TLS\r\n AUTH SSL\r\n PBSZ\r\n PROT\r\n EPSV\r\n211 End\r\n')
  t.equal(out, '220 ready\r\n211-Features:\r\n EPSV\r\n AUTH TLS\r\n PBSZ\r\n PROT\r\n211 End\r\n')
})

t.test('a one-line 211 becomes multi-line with the proxy\'s features', async (t) => {
  const out = await feat(TLS_ON, '211 no features\r\n')
  t.equal(out, '220 ready\r\n211-Features:\r\n AUTH TLS\r\n PBSZ\r\n PROT\r\n211 End\r\n')
})

t.test('with the client side off, the TLS lines are only taken out', async (t) => {
  const out = await feat([], '211-Features:\r\n AUTH TLS\r\n EPSV\r\n211 End\r\n')
  t.equal(out, '220 ready\r\n211-Features:\r\n EPSV\r\n211 End\r\n')
})

t.test('a FEAT the server refuses passes as it came', async (t) => {
  const out = await feat(TLS_ON, '502 no FEAT here\r\n')
  t.equal(out, '220 ready\r\n502 no FEAT here\r\n')
})
