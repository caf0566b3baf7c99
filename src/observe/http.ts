// The operator's HTTP endpoints: /metrics (Prometheus text format), /healthz (the process
// serves), /readyz (the upstream FTP server answers; see readiness.ts).

import http from 'node:http'
import type { Registry } from 'prom-client'
import type { Endpoint } from '../config-types.js'
import type { UpstreamReadiness } from './readiness.js'

export interface ObserveServer {
  readonly address: Endpoint
  close(): Promise<void>
}

/**
 * Resolves once `listen` is bound; rejects with Node's listen error (code, address, port) when it
 * cannot be. `onError` gets the server's errors after that (a failed accept, EMFILE), which would
 * otherwise be an unhandled `error` event that ends the process.
 */
export async function startObserveServer(
  listen: Endpoint,
  registry: Registry,
  readiness: UpstreamReadiness,
  onError: (err: Error) => void = () => {},
): Promise<ObserveServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end()
      return
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err.message}\n`),
      )
      return
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n')
      return
    }
    if (path === '/readyz') {
      const reason = readiness.reason()
      res.writeHead(reason === null ? 200 : 503, { 'content-type': 'text/plain' }).end(reason === null ? 'ready\n' : `not ready: ${reason}\n`)
      return
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz or /readyz\n')
  })
  // Keep-alive scrapes must not hold shutdown open.
  server.keepAliveTimeout = 5000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host: listen.host, port: listen.port }, () => {
      server.off('error', reject)
      server.on('error', onError)
      resolve()
    })
  })
  const a = server.address() as import('node:net').AddressInfo
  return {
    address: { host: a.address, port: a.port },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
