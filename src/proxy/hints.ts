// Plain-words hints for failed data connections: what an engineer reading a capture would say.

import type { AddressClass } from '../net/address-policy.js'
import type { FailureReason } from './outcomes.js'
import { PASSIVE_RANGE_SETTINGS, SERVER_ADDRESS_SETTINGS } from '../server-settings.js'

const SERVER_FIX = `set the address clients can reach in the server: ${SERVER_ADDRESS_SETTINGS}`

export function hintFor(reason: FailureReason, advertised: string | null, cls: AddressClass | null, controlPeer: string): string {
  const differs = advertised !== null && advertised !== controlPeer
  switch (reason) {
    case 'upstream_refused':
    case 'upstream_timeout':
    case 'upstream_unreachable': {
      const how = reason === 'upstream_refused' ? 'refused the connection' : reason === 'upstream_timeout' ? 'did not answer in time' : 'has no route'
      if (differs) {
        return `the server advertised ${cls ?? 'an'} address ${advertised} that differs from its control address ${controlPeer}, and its data port ${how} from the proxy; ${SERVER_FIX}, or run the proxy where that address is reachable, or use --upstream-data-address control`
      }
      return `the server's data port ${how} from the proxy: check the server's passive port range (${PASSIVE_RANGE_SETTINGS}) and any firewall between proxy and server`
    }
    case 'client_timeout':
      return 'the client did not connect to the passive port the proxy advertised: check that the advertised address (--advertise-address) and the pool range (--passive-ports) are reachable from clients'
    case 'pool_exhausted':
      return 'every port of the passive pool is leased: widen --passive-ports or lower --data-accept-timeout'
    case 'bad_passive_reply':
      return 'the server sent a 227/229 the proxy cannot parse: check the server version and its passive-mode settings'
    case 'reset':
      return 'a data connection broke mid-transfer: the client or the server closed it abruptly'
    case 'data_address_refused':
      return `the server's passive reply names ${advertised ?? 'an address'} (${cls ?? 'unknown'}), which the proxy does not dial by default: if that address really serves the server's data ports, list its network in --upstream-data-networks (and allow ports below 1024 with --upstream-data-low-ports); otherwise ${SERVER_FIX}`
    case 'lease_limit':
      return 'this session or client address holds as many passive ports as allowed: raise --max-leases-per-session or --max-leases-per-client if clients legitimately open several data connections at once'
    case 'tls_handshake':
      return "a TLS handshake on the data connection failed: look at the log line's error (no common protocol version, a certificate rejected, a session not resumed: vsftpd's require_ssl_reuse needs the data connection to resume the control connection's session)"
    case 'data_idle':
      return 'no byte moved on the data connection, or the server sent no final reply, for --data-idle-timeout: a stalled peer or a dead path between proxy and server'
  }
}

/**
 * Plain-words advice for a failed TLS handshake on a control connection, from the error Node and
 * OpenSSL give: no common version, a certificate refused, or no handshake at all.
 */
export function tlsHintFor(side: 'client' | 'server', err: Error): string {
  const code = (err as NodeJS.ErrnoException).code ?? ''
  const text = `${code} ${err.message}`
  if (/PROTOCOL|VERSION|no protocols available/i.test(text)) {
    return side === 'client'
      ? 'the client offers no TLS version the proxy speaks (TLS 1.2 or later): upgrade the client or its TLS settings'
      : 'the FTP server speaks no TLS version the proxy accepts (TLS 1.2 or later)'
  }
  if (side === 'client' && /client showed no certificate|client's certificate is not accepted|peer did not return a certificate/i.test(text)) {
    return "the proxy refused the client's certificate (--client-cert): give the client a certificate signed by a CA in --tls-ca"
  }
  if (/CERT|SELF_SIGNED|ALTNAME|ISSUER|verify/i.test(text)) {
    return side === 'client'
      ? "the client refused the proxy's certificate: give it the CA of --tls-cert, or a certificate for the name it dials"
      : "the FTP server's certificate was refused: give its CA with --upstream-ca, its name with --upstream-tls-servername, or (test servers only) --upstream-tls-insecure"
  }
  if (code === 'ETIMEDOUT') return `no TLS handshake within --tls-handshake-timeout: the ${side === 'client' ? 'client' : 'FTP server'} did not start or finish one`
  return `the ${side === 'client' ? 'client' : 'FTP server'} broke off the TLS handshake: see the error`
}
