// Prometheus metrics. One prom-client Registry per proxy instance, injected (the global one
// throws on a second proxy in one process). Labels are bounded sets: never an IP, a user, a
// port or a session id (STYLE.md 10). The reasons and outcomes are the proxy's own words
// (src/proxy/outcomes.ts); here they become label values.

import client from 'prom-client'
import { ADDRESS_CLASSES, type AddressClass } from '../net/address-policy.js'
import {
  CANCEL_REASONS,
  COMMAND_REFUSALS,
  FAILURE_REASONS,
  SESSION_REJECT_REASONS,
  TLS_CHANNELS,
  TLS_RESULTS,
  TLS_SIDES,
  type LeaseOutcome,
  type TlsChannel,
  type TlsResult,
  type TlsSide,
} from '../proxy/outcomes.js'

export interface ProxyMetrics {
  readonly registry: client.Registry
  readonly sessionsActive: client.Gauge
  readonly sessionsTotal: client.Counter
  readonly sessionsRejected: client.Counter<'reason'>
  readonly passiveReplies: client.Counter<'reply'>
  readonly advertisedAddress: client.Counter<'class' | 'matches_control'>
  readonly dataConnections: client.Counter<'result'>
  readonly dataFailures: client.Counter<'reason'>
  readonly dataCancelled: client.Counter<'reason'>
  readonly foreignDataConnections: client.Counter
  readonly dataBytes: client.Counter<'direction'>
  readonly dataConnectSeconds: client.Histogram
  readonly dataTransferSeconds: client.Histogram
  readonly poolSize: client.Gauge
  readonly poolInUse: client.Gauge
  readonly commandsRefused: client.Counter<'reason'>
  /** Which server data address a data connection was dialled to: the control peer or the advertised one. */
  readonly dataTargets: client.Counter<'target'>
  readonly configReloads: client.Counter<'result'>
  readonly tlsHandshakes: client.Counter<'side' | 'channel' | 'result'>
  tlsHandshake(side: TlsSide, channel: TlsChannel, result: TlsResult): void
  leaseEnded(outcome: LeaseOutcome): void
  advertised(cls: AddressClass, matchesControl: boolean): void
}

export function createMetrics(options: { version: string; defaultMetrics?: boolean }): ProxyMetrics {
  const registry = new client.Registry()
  const registers = [registry]
  if (options.defaultMetrics !== false) client.collectDefaultMetrics({ register: registry })

  const buildInfo = new client.Gauge({
    name: 'ftp_proxy_build_info',
    help: 'Always 1; the version label names the running ftp-pasv-proxy.',
    labelNames: ['version'],
    registers,
  })
  buildInfo.set({ version: options.version }, 1)

  const sessionsActive = new client.Gauge({ name: 'ftp_proxy_sessions_active', help: 'Control sessions open now.', registers })
  const sessionsTotal = new client.Counter({ name: 'ftp_proxy_sessions_total', help: 'Control sessions accepted.', registers })
  const sessionsRejected = new client.Counter({
    name: 'ftp_proxy_sessions_rejected_total',
    help: 'Client connections refused before a session started, by reason.',
    labelNames: ['reason'],
    registers,
  })
  const passiveReplies = new client.Counter({
    name: 'ftp_proxy_passive_replies_total',
    help: 'Passive replies rewritten for clients, by the reply the client got.',
    labelNames: ['reply'],
    registers,
  })
  const advertisedAddress = new client.Counter({
    name: 'ftp_proxy_advertised_address_total',
    help: 'Addresses the server put in a 227, by class and by whether it equals the address the proxy reached the server at.',
    labelNames: ['class', 'matches_control'],
    registers,
  })
  const dataConnections = new client.Counter({
    name: 'ftp_proxy_data_connections_total',
    help: 'Data-connection setups, counted once when they end, by result.',
    labelNames: ['result'],
    registers,
  })
  const dataFailures = new client.Counter({
    name: 'ftp_proxy_data_connection_failures_total',
    help: 'Failed data-connection setups by reason; the reasons add up to result="failed".',
    labelNames: ['reason'],
    registers,
  })
  const dataCancelled = new client.Counter({
    name: 'ftp_proxy_data_connections_cancelled_total',
    help: 'Cancelled data-connection setups by reason.',
    labelNames: ['reason'],
    registers,
  })
  const foreignDataConnections = new client.Counter({
    name: 'ftp_proxy_foreign_data_connections_total',
    help: 'Data connections refused because they came from another IP than the control client (RFC 2577).',
    registers,
  })
  const dataBytes = new client.Counter({
    name: 'ftp_proxy_data_bytes_total',
    help: 'Bytes relayed over data connections, by direction as seen from the client.',
    labelNames: ['direction'],
    registers,
  })
  // Buckets for FTP: a connect is milliseconds on a LAN, seconds across a bad NAT; a transfer
  // runs from a directory listing (ms) to a large file (minutes, hours).
  const dataConnectSeconds = new client.Histogram({
    name: 'ftp_proxy_data_connect_seconds',
    help: 'Time to connect to the server data endpoint, successful connects only.',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  })
  const dataTransferSeconds = new client.Histogram({
    name: 'ftp_proxy_data_transfer_seconds',
    help: 'Duration of relayed data connections, from client connect to both legs closed.',
    buckets: [0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 14400],
    registers,
  })
  const poolSize = new client.Gauge({ name: 'ftp_proxy_port_pool_size', help: 'Ports in the passive pool.', registers })
  const poolInUse = new client.Gauge({ name: 'ftp_proxy_port_pool_in_use', help: 'Pool ports leased now.', registers })
  const commandsRefused = new client.Counter({
    name: 'ftp_proxy_commands_refused_total',
    help: 'Client commands the proxy refused itself: bounce (RFC 2577), malformed, after EPSV ALL, unsupported, TLS while the client side is off (AUTH, PBSZ, PROT), TLS required before login (tls_required).',
    labelNames: ['reason'],
    registers,
  })

  const dataTargets = new client.Counter({
    name: 'ftp_proxy_data_targets_total',
    help: "Data connections dialled to the server, by which address answered: the control connection's peer or the address the server advertised.",
    labelNames: ['target'],
    registers,
  })
  for (const target of ['control', 'advertised']) dataTargets.inc({ target }, 0)

  // Every labelled series exists at 0 from the start: a dashboard shows 0, not "no data".
  for (const reason of SESSION_REJECT_REASONS) sessionsRejected.inc({ reason }, 0)
  for (const reply of ['227', '229']) passiveReplies.inc({ reply }, 0)
  for (const cls of ADDRESS_CLASSES) for (const m of ['true', 'false']) advertisedAddress.inc({ class: cls, matches_control: m }, 0)
  for (const result of ['ok', 'failed', 'cancelled']) dataConnections.inc({ result }, 0)
  for (const reason of FAILURE_REASONS) dataFailures.inc({ reason }, 0)
  for (const reason of CANCEL_REASONS) dataCancelled.inc({ reason }, 0)
  for (const direction of ['download', 'upload']) dataBytes.inc({ direction }, 0)
  for (const reason of COMMAND_REFUSALS) commandsRefused.inc({ reason }, 0)
  const configReloads = new client.Counter({
    name: 'ftp_proxy_config_reloads_total',
    help: 'Config reloads on SIGHUP: ok, or rejected (the running config stays).',
    labelNames: ['result'],
    registers,
  })
  for (const result of ['ok', 'rejected']) configReloads.inc({ result }, 0)
  const tlsHandshakes = new client.Counter({
    name: 'ftp_proxy_tls_handshakes_total',
    help: 'TLS handshakes (FTPS): toward the client or the server, on the control or a data connection; ok, resumed (a data connection resuming its control session), or failed.',
    labelNames: ['side', 'channel', 'result'],
    registers,
  })
  for (const side of TLS_SIDES) for (const channel of TLS_CHANNELS) for (const result of TLS_RESULTS) tlsHandshakes.inc({ side, channel, result }, 0)

  return {
    registry,
    sessionsActive,
    sessionsTotal,
    sessionsRejected,
    passiveReplies,
    advertisedAddress,
    dataConnections,
    dataFailures,
    dataCancelled,
    foreignDataConnections,
    dataBytes,
    dataConnectSeconds,
    dataTransferSeconds,
    poolSize,
    poolInUse,
    commandsRefused,
    dataTargets,
    configReloads,
    tlsHandshakes,
    tlsHandshake(side, channel, result) {
      tlsHandshakes.inc({ side, channel, result })
    },
    leaseEnded(outcome) {
      dataConnections.inc({ result: outcome.result })
      if (outcome.result === 'failed') dataFailures.inc({ reason: outcome.reason })
      else if (outcome.result === 'cancelled') dataCancelled.inc({ reason: outcome.reason })
    },
    advertised(cls, matchesControl) {
      advertisedAddress.inc({ class: cls, matches_control: String(matchesControl) })
    },
  }
}
