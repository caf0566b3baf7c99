// The proxy's words for how things end: a data connection's outcome and its reasons, a command
// the proxy refuses itself, a client refused before its session. Each list is a bounded set, so
// observe/ can use the values as metric labels as they are.

export const FAILURE_REASONS = [
  'upstream_refused',
  'upstream_timeout',
  'upstream_unreachable',
  'client_timeout',
  'pool_exhausted',
  'bad_passive_reply',
  'reset',
  // The server's 227 named an address or port the data-address policy does not allow.
  'data_address_refused',
  // The session or its client address already holds as many leases as allowed.
  'lease_limit',
  // No byte moved on a data connection for --data-idle-timeout, or its final reply never came.
  'data_idle',
  // A TLS handshake on a data connection failed (either side), or a client's did not resume its
  // control session under --client-data-tls-reuse required.
  'tls_handshake',
] as const
export type FailureReason = (typeof FAILURE_REASONS)[number]

export const CANCEL_REASONS = ['replaced', 'aborted', 'refused', 'closed'] as const
export type CancelReason = (typeof CANCEL_REASONS)[number]

export const COMMAND_REFUSALS = ['bounce', 'malformed', 'epsv_all', 'unsupported', 'tls', 'tls_required'] as const
export type CommandRefusal = (typeof COMMAND_REFUSALS)[number]

export const SESSION_REJECT_REASONS = ['upstream_unreachable', 'limit', 'acl'] as const
export type SessionRejectReason = (typeof SESSION_REJECT_REASONS)[number]

export type LeaseOutcome =
  | { readonly result: 'ok' }
  | { readonly result: 'failed'; readonly reason: FailureReason }
  | { readonly result: 'cancelled'; readonly reason: CancelReason }

export type Direction = 'download' | 'upload'

/** TLS handshakes: which side of the proxy, which channel, and how it went. */
export const TLS_SIDES = ['client', 'server'] as const
export type TlsSide = (typeof TLS_SIDES)[number]
export const TLS_CHANNELS = ['control', 'data'] as const
export type TlsChannel = (typeof TLS_CHANNELS)[number]
export const TLS_RESULTS = ['ok', 'resumed', 'failed'] as const
export type TlsResult = (typeof TLS_RESULTS)[number]
