// `ftp-pasv-proxy demo`: a built-in server that fails like PRODFTP (its 227 names 127.0.0.99,
// where nothing listens), a direct download that fails, the same download through the proxy
// that succeeds, and what the proxy rewrote. Loopback only. Exit 0 when the demo showed both.

import { createHash, randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { loadConfig } from '../config.js'
import { ProxyServer } from '../proxy/server.js'
import { fetchFile } from './ftp-client.js'
import { startFtpServer } from './ftp-server.js'

const UNREACHABLE = '127.0.0.99'
const FILE = 'reports/daily.csv'

export async function runDemo(argv: readonly string[]): Promise<number> {
  if (argv.length > 0) {
    process.stderr.write(`ftp-pasv-proxy demo: takes no arguments (got ${argv.join(' ')})\n`)
    return 2
  }
  const out = (line = ''): boolean => process.stdout.write(`${line}\n`)
  const content = randomBytes(4 * 1024 * 1024)
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
  const server = await startFtpServer({ files: { [FILE]: content }, advertiseAddress: UNREACHABLE })
  const logLines: Array<Record<string, unknown>> = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l !== '') logLines.push(JSON.parse(l) as Record<string, unknown>)
      cb()
    },
  })
  const config = loadConfig(['--listen', '127.0.0.1:0', '--upstream', `${server.host}:${server.port}`], {})
  const proxy = new ProxyServer({ config, logger: pino({ level: 'info' }, sink) })
  try {
    await proxy.listen()
    const listen = proxy.addresses()[0]!
    out(`Built-in FTP server at ${server.host}:${server.port}, behaving like PRODFTP:`)
    out(`its 227 reply names ${UNREACHABLE}, an address where nothing listens.`)
    out(`File: /${FILE}, ${content.length} bytes, sha256 ${sha(content)}`)
    out()
    out('1. Direct download, the client honouring the 227 address (as wget does):')
    const direct = await fetchFile({ host: server.host, port: server.port, path: FILE, timeoutMs: 5000 })
    for (const l of direct.transcript) out(`   ${l}`)
    out(direct.ok ? '   => succeeded (unexpected)' : `   => FAILED: ${direct.error ?? 'no data'}`)
    out()
    out(`2. The same download through ftp-pasv-proxy at ${listen.host}:${listen.port}:`)
    const viaProxy = await fetchFile({ host: listen.host, port: listen.port, path: FILE, timeoutMs: 5000 })
    for (const l of viaProxy.transcript) out(`   ${l}`)
    const same = viaProxy.data !== undefined && viaProxy.data.equals(content)
    out(
      viaProxy.ok && same
        ? `   => SUCCEEDED: ${viaProxy.data!.length} bytes, sha256 ${sha(viaProxy.data!)} (identical)`
        : `   => FAILED: ${viaProxy.error ?? 'data differs'}`,
    )
    out()
    out('3. What the proxy rewrote:')
    for (const l of logLines.filter((x) => x.msg === 'passive reply rewritten')) {
      out(`   server said:  ${String(l.fromServer)}`)
      out(`   proxy dialled ${String(l.dialled)}: the server's own address, always tried first; the`)
      out(`                 advertised ${String(l.advertised)} is ${String(l.advertisedClass)}, which a server's reply may`)
      out('                 never make the proxy dial (see --upstream-data-networks)')
      out(`   client got:   ${String(l.toClient)}`)
    }
    return !direct.ok && viaProxy.ok && same ? 0 : 1
  } finally {
    await proxy.close(0)
    await server.close()
  }
}
