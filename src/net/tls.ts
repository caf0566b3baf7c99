// TLS for FTPS (RFC 4217), as sockets see it: the proxy's certificate toward clients, the checks
// toward the server, and one handshake on an existing connection in either role with a deadline.
// RFC 4217's roles follow the FTP roles, not the TCP direction: toward a client the proxy is
// always the TLS server, toward the server always the TLS client, control and data alike.

import { X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import type { Duplex } from 'node:stream'
import tls from 'node:tls'
import type { ClientCertMode, Config } from '../config-types.js'
import { Deadline } from '../deadline.js'
import { ConfigError } from '../errors.js'

export interface TlsSettings {
  /**
   * The proxy's certificate for FTPS clients; null when the client side is off. Each control
   * session gets a scope of its own (`newScope`), so that only its own connections resume it.
   */
  readonly clientSide: { readonly newScope: () => ClientTlsSide } | null
  /** How the proxy checks the server: the same on the control and every data connection. */
  readonly server: ServerTlsOptions
}

/**
 * The proxy as TLS server toward one session's client: its certificate in a context of the
 * session's own, and a session cache of the session's own, so that the client's data
 * connections can resume its control connection's session (TLS 1.3 tickets, TLS 1.2 session ids:
 * curl's way under TLS 1.2) and nobody else's can: a context's ticket keys are random per
 * context, so another client's ticket or id does not resume here (--client-data-tls-reuse
 * required then means this control connection's session). The tls.Server never listens: it only
 * carries the cache events for the sockets made on it.
 */
export interface ClientTlsSide {
  readonly context: tls.SecureContext
  readonly server: tls.Server
  /** The certificate for the name a client asks for (SNI), when it is not the default's. */
  readonly sni: ((servername: string, done: (err: Error | null, context?: tls.SecureContext) => void) => void) | undefined
  /** Whether clients show a certificate, checked against --tls-ca (--client-cert). */
  readonly clientCert: ClientCertMode
}

// TLS 1.2 sessions kept per control session for resumption: a client opens a new one only when
// it does not resume; the oldest go first. OpenSSL itself refuses one older than the context's
// session timeout (300 s by default).
const MAX_CACHED_SESSIONS = 16
// Names what a TLS session of the proxy's is for (RFC 5246's session id context); every session
// is resumable only within its control session's own context in any case.
const SESSION_ID_CONTEXT = 'ftp-pasv-proxy'

export interface ServerTlsOptions {
  /**
   * SNI and the name checked; undefined for an IP upstream. The same on every connection to the
   * server: a different SNI defeats TLS 1.3 resumption, which vsftpd requires on data.
   */
  readonly servername: string | undefined
  /** The upstream host, for the certificate check when there is no servername (an IP). */
  readonly host: string
  readonly ca: string | undefined
  readonly rejectUnauthorized: boolean
  /** The proxy's own certificate and key, for a server that asks for one (--upstream-tls-cert). */
  readonly cert: string | undefined
  readonly key: string | undefined
}

/** Reads the certificate files once; a file that cannot be read or used is a ConfigError. */
export function loadTlsSettings(config: Config, read: (path: string) => string = (p) => readFileSync(p, 'utf8')): TlsSettings {
  const file = (key: string, path: string): string => {
    try {
      return read(path)
    } catch (err) {
      throw new ConfigError(key, `cannot read ${path}: ${(err as Error).message}`)
    }
  }
  let clientSide: TlsSettings['clientSide'] = null
  if (config.clientTls !== 'off' && config.tlsCert.length > 0) {
    const ca = config.tlsCa === null ? undefined : file('tlsCa', config.tlsCa)
    const pairs = config.tlsCert.map((certPath, i) => {
      const keyPath = config.tlsKey[i] ?? ''
      const cert = file('tlsCert', certPath)
      const key = file('tlsKey', keyPath)
      // sessionIdContext: OpenSSL will not resume a session of a server that asks for client
      // certificates without one (the client gets an internal_error alert).
      const make = (): tls.SecureContext => tls.createSecureContext({ cert, key, minVersion: 'TLSv1.2', sessionIdContext: SESSION_ID_CONTEXT, ...(ca === undefined ? {} : { ca }) })
      try {
        // Once now, so that a certificate that cannot be used stops the start.
        return { x509: new X509Certificate(cert), context: make(), make }
      } catch (err) {
        throw new ConfigError('tlsCert', `${certPath} and ${keyPath} do not make a usable certificate: ${(err as Error).message}`)
      }
    })
    const [first, ...others] = pairs
    if (first === undefined) throw new ConfigError('tlsCert', 'no certificate given')
    // The other certificates by the name asked for; shared by every session, because the
    // handshake takes only their certificate and key from them: the session cache, the ticket
    // keys and the client CA list stay the session's own context's.
    const sni =
      others.length === 0
        ? undefined
        : (servername: string, done: (err: Error | null, context?: tls.SecureContext) => void): void => {
            if (first.x509.checkHost(servername) !== undefined) return done(null)
            done(null, others.find((p) => p.x509.checkHost(servername) !== undefined)?.context)
          }
    const scope = (): ClientTlsSide => {
      const context = first.make()
      return { context, server: sessionCache(tls.createServer({ secureContext: context })), sni, clientCert: config.clientCert }
    }
    clientSide = { newScope: scope }
  }
  if ((config.upstreamTlsCert === null) !== (config.upstreamTlsKey === null)) {
    throw new ConfigError('upstreamTlsCert', 'give --upstream-tls-cert and --upstream-tls-key together')
  }
  const upstreamCert = config.upstreamTlsCert === null ? undefined : file('upstreamTlsCert', config.upstreamTlsCert)
  const upstreamKey = config.upstreamTlsKey === null ? undefined : file('upstreamTlsKey', config.upstreamTlsKey)
  if (upstreamCert !== undefined) {
    try {
      tls.createSecureContext({ cert: upstreamCert, key: upstreamKey })
    } catch (err) {
      throw new ConfigError('upstreamTlsCert', `${config.upstreamTlsCert} and ${config.upstreamTlsKey} do not make a usable certificate: ${(err as Error).message}`)
    }
  }
  const host = config.upstream.host
  return {
    clientSide,
    server: {
      servername: config.upstreamTlsServername ?? (net.isIP(host) === 0 ? host : undefined),
      host,
      ca: config.upstreamCa === null ? undefined : file('upstreamCa', config.upstreamCa),
      rejectUnauthorized: !config.upstreamTlsInsecure,
      cert: upstreamCert,
      key: upstreamKey,
    },
  }
}

/** A TLS socket on an existing connection, and its handshake: resolves when secure, rejects on failure or the deadline. */
export interface Handshake {
  readonly socket: tls.TLSSocket
  readonly secure: Promise<void>
}

/** The proxy as TLS server on `socket` (toward an FTP client). */
export function acceptTls(socket: net.Socket | Duplex, side: ClientTlsSide, timeoutMs: number): Handshake {
  const t = serverSocket(socket, side)
  return { socket: t, secure: handshake(t, 'secure', timeoutMs, () => clientCertificateProblem(t, side)) }
}

/**
 * A TLS server socket on `socket` with the proxy's certificates (by SNI), its session cache, and
 * the client certificate asked for: under required a client without one fails the handshake
 * (OpenSSL sends the alert); one that does not check out is refused by clientCertificateProblem
 * once the handshake is done.
 */
export function serverSocket(socket: net.Socket | Duplex, side: ClientTlsSide): tls.TLSSocket {
  return new tls.TLSSocket(socket, {
    isServer: true,
    secureContext: side.context,
    server: side.server,
    ...(side.sni === undefined ? {} : { SNICallback: side.sni }),
    ...(side.clientCert === 'none' ? {} : { requestCert: true, rejectUnauthorized: side.clientCert === 'required' }),
  })
}

/**
 * Why a client's certificate is refused once its handshake is done, or null: under optional a
 * certificate that does not check out against --tls-ca, under required also none at all.
 * Node's tls.Server asks its socket's handle for OpenSSL's verify result after each handshake
 * (lib/_tls_wrap.js, onServerSocketSecure); a TLS socket made on an existing connection, as every
 * one here is, is asked by no one, so it is asked here, the same way.
 */
export function clientCertificateProblem(t: tls.TLSSocket, side: ClientTlsSide): Error | null {
  if (side.clientCert === 'none') return null
  const handle = (t as unknown as { _handle?: { verifyError?: () => Error | null } })._handle
  if (typeof handle?.verifyError !== 'function') return new Error('this Node gives no verify result for TLS sockets; client certificates cannot be checked')
  const shown = t.getPeerX509Certificate() !== undefined
  if (!shown) return side.clientCert === 'required' ? new Error('the client showed no certificate (--client-cert required)') : null
  const err = handle.verifyError()
  return err === null ? null : new Error(`the client's certificate is not accepted (${(err as NodeJS.ErrnoException).code ?? err.message}; --tls-ca)`)
}

function sessionCache(server: tls.Server): tls.Server {
  const sessions = new Map<string, Buffer>()
  server.on('newSession', (id: Buffer, data: Buffer, done: () => void) => {
    sessions.set(id.toString('hex'), data)
    if (sessions.size > MAX_CACHED_SESSIONS) sessions.delete(sessions.keys().next().value as string)
    done()
  })
  server.on('resumeSession', (id: Buffer, done: (err: Error | null, data: Buffer | null) => void) => {
    done(null, sessions.get(id.toString('hex')) ?? null)
  })
  return server
}

/** The proxy as TLS client on `socket` (toward the FTP server), resuming `session` when given. */
export function connectTls(socket: net.Socket, options: ServerTlsOptions, session: Buffer | undefined, timeoutMs: number): Handshake {
  const t = clientSocket(socket, options, session)
  return { socket: t, secure: handshake(t, 'secureConnect', timeoutMs) }
}

/** A TLS client socket on `socket` toward the FTP server: its checks, and `session` to resume. */
export function clientSocket(socket: net.Socket, options: ServerTlsOptions, session: Buffer | undefined): tls.TLSSocket {
  return tls.connect({
    socket,
    ...(options.servername === undefined ? {} : { servername: options.servername }),
    ...(options.ca === undefined ? {} : { ca: options.ca }),
    ...(session === undefined ? {} : { session }),
    ...(options.cert === undefined ? {} : { cert: options.cert, key: options.key }),
    rejectUnauthorized: options.rejectUnauthorized,
    minVersion: 'TLSv1.2',
    // An IP upstream has no SNI; its certificate is checked against the IP.
    checkServerIdentity: (name, cert) => tls.checkServerIdentity(options.servername ?? options.host ?? name, cert),
  })
}

function handshake(t: tls.TLSSocket, event: 'secure' | 'secureConnect', timeoutMs: number, check: () => Error | null = () => null): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = new Deadline(timeoutMs, () => {
      t.destroy(Object.assign(new Error(`TLS handshake not done within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }))
    })
    const onError = (err: Error): void => {
      deadline.cancel()
      reject(err)
    }
    t.once('error', onError)
    t.once('close', () => onError(new Error('the connection closed during the TLS handshake')))
    t.once(event, () => {
      deadline.cancel()
      const problem = check()
      if (problem !== null) {
        t.destroy(problem)
        return
      }
      t.off('error', onError)
      resolve()
    })
  })
}

/** Protocol and cipher of a secure socket, for the logs. */
export function tlsDescription(t: tls.TLSSocket): { readonly version: string | null; readonly cipher: string | null; readonly resumed: boolean } {
  return { version: t.getProtocol(), cipher: t.getCipher()?.name ?? null, resumed: t.isSessionReused() }
}
