// The operator's HTTP endpoints: /metrics (Prometheus text format), /healthz (the process
// serves), /readyz (the upstream FTP server answers; see readiness.ts), and the status page
// when it is on (--status-page): GET / (status-page.ts), /status.json (status.ts, documented in
// docs/status.md) and /status/events (status-stream.ts).

import http from 'node:http'
import ipaddr from 'ipaddr.js'
import type { Registry } from 'prom-client'
import type { Endpoint } from '../config-types.js'
import type { UpstreamReadiness } from './readiness.js'
import { isLoopbackHost, type StatusBoard } from './status.js'
import { PAGE_CSP, renderPage } from './status-page.js'
import { StatusStream } from './status-stream.js'

export interface ObserveServer {
  readonly address: Endpoint
  close(): Promise<void>
}

export interface StatusPageOptions {
  readonly board: StatusBoard
  /** Whether the page is served now (--status-page; a reload may change it). */
  readonly enabled: () => boolean
  /** Limits of the live streams, for tests. */
  readonly maxStreams?: number
  readonly maxBufferedBytes?: number
}

// Sent with every status response: nothing is cached, sniffed, framed or sent on as a referrer.
const STATUS_HEADERS: Readonly<Record<string, string>> = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-resource-policy': 'same-origin',
}
const DATA_CSP = "default-src 'none'; frame-ancestors 'none'"

/**
 * Whether a request's Host header may read the status page of a listener on loopback. A web page
 * elsewhere can point a name of its own at 127.0.0.1 (DNS rebinding) and then read this origin as
 * its own: such a request names that host. An IP literal or localhost cannot be rebound.
 */
export function hostAllowed(hostHeader: string | undefined): boolean {
  if (hostHeader === undefined || hostHeader === '') return true
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(hostHeader) ?? /^([^:]+)(?::\d+)?$/.exec(hostHeader)
  const name = m?.[1]
  if (name === undefined) return false
  return ipaddr.isValid(name) || isLoopbackHost(name)
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
  status?: StatusPageOptions,
): Promise<ObserveServer> {
  const guarded = isLoopbackHost(listen.host)
  const statusOn = (): boolean => status !== undefined && status.enabled()
  const stream =
    status === undefined
      ? null
      : new StatusStream({
        snapshot: () => status.board.snapshot(),
        headers: { ...STATUS_HEADERS, 'content-security-policy': DATA_CSP },
        enabled: statusOn,
        ...(status.maxStreams === undefined ? {} : { maxStreams: status.maxStreams }),
        ...(status.maxBufferedBytes === undefined ? {} : { maxBufferedBytes: status.maxBufferedBytes }),
      })
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
    if (status !== undefined && stream !== null && statusOn() && (path === '/' || path === '/status.json' || path === '/status/events')) {
      if (guarded && !hostAllowed(req.headers.host)) {
        res.writeHead(403, { ...STATUS_HEADERS, 'content-type': 'text/plain' }).end('forbidden: the status page answers to an IP address or localhost only\n')
        return
      }
      if (path === '/status/events') {
        if (req.method === 'HEAD') res.writeHead(200, { ...STATUS_HEADERS, 'content-type': 'text/event-stream; charset=utf-8' }).end()
        else stream.open(req, res)
        return
      }
      status.board.snapshot().then(
        (snap) => {
          if (path === '/') {
            res.writeHead(200, { ...STATUS_HEADERS, 'content-type': 'text/html; charset=utf-8', 'content-security-policy': PAGE_CSP }).end(renderPage(snap))
          } else {
            res.writeHead(200, { ...STATUS_HEADERS, 'content-type': 'application/json; charset=utf-8', 'content-security-policy': DATA_CSP }).end(`${JSON.stringify(snap, null, 2)}\n`)
          }
        },
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`status failed: ${err.message}\n`),
      )
      return
    }
    const routes = statusOn() ? '/, /status.json, /metrics, /healthz or /readyz' : '/metrics, /healthz or /readyz'
    res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: try ${routes}\n`)
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
  status?.board.start()
  const a = server.address() as import('node:net').AddressInfo
  return {
    address: { host: a.address, port: a.port },
    close: () =>
      new Promise<void>((resolve) => {
        status?.board.stop()
        stream?.closeAll()
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
