// What the status page shows (GET /, /status.json, /status/events; docs/status.md). Its figures
// are read from the proxy's own metrics registry, so the page and /metrics cannot disagree; the
// windows (last minute, last hour) are differences against samples of those counters taken every
// SAMPLE_EVERY_MS, as Prometheus's increase() would compute them. What no metric may carry (no
// address, session id or path is a label, STYLE.md 10) comes from the proxy through the small
// StatusRecorder interface: the last FAILURE_RING failed data connections with their hints, and
// the address the server advertised last.
//
// Everything a peer sent (a server's reply, a path, a user name) is stored cleaned and cut to a
// bounded length here, and escaped where it is rendered (status-page.ts). Client addresses and
// user names are kept in memory but leave the process only under --status-show-clients.

import ipaddr from 'ipaddr.js'
import type { Config } from '../config-types.js'
import { ADDRESS_CLASSES, type AddressClass } from '../net/address-policy.js'
import {
  CANCEL_REASONS,
  FAILURE_REASONS,
  SESSION_REJECT_REASONS,
  type CancelReason,
  type FailureReason,
  type SessionRejectReason,
} from '../proxy/outcomes.js'
import { SERVER_ADDRESS_SETTINGS } from '../server-settings.js'
import { VERSION } from '../version.js'
import type { ProxyMetrics } from './metrics.js'
import type { UpstreamReadiness } from './readiness.js'

/** Failed data connections kept for the page, newest first; older ones are only counted. */
export const FAILURE_RING = 50
/** How often the counters are sampled for the windows and the chart. */
export const SAMPLE_EVERY_MS = 5_000
/** How often the gauges (sessions, pool ports in use) are sampled for their peaks. */
export const GAUGE_EVERY_MS = 1_000
const MINUTE_MS = 60_000
const HOUR_MS = 3_600_000
/** Bars of the chart: one per minute of the last hour. */
export const CHART_MINUTES = 60
// Longest text kept from a peer, in UTF-16 code units: enough for a reply line and a path, and a
// page of 50 failures stays small whatever the peers send.
const MAX_REPLY_CHARS = 300
const MAX_PATH_CHARS = 200
const MAX_USER_CHARS = 128
const MAX_TEXT_CHARS = 600

/** A failed data connection as the proxy reports it (src/proxy/passive.ts). */
export interface DataFailureReport {
  readonly reason: FailureReason
  readonly hint: string
  /** The session id of the log lines (`sid`). */
  readonly session: string
  /** The control client's address: shown only under --status-show-clients. */
  readonly client: string
  readonly user?: string | undefined
  /** The transfer command's verb and argument, when a transfer command had taken the lease. */
  readonly command?: string | undefined
  readonly path?: string | undefined
  /** The server's passive reply, as it came. */
  readonly serverReply?: string | undefined
  /** What the server advertised: "host:port", or "port N" for a 229. */
  readonly advertised?: string | undefined
  readonly advertisedClass?: AddressClass | null | undefined
  /** Each server data address dialled, with its error. */
  readonly dialled?: ReadonlyArray<{ readonly host: string; readonly port: number; readonly error?: string | undefined }> | undefined
  readonly error?: string | undefined
}

/** A server's passive reply named an address (src/proxy/passive.ts, beside the metric). */
export interface AdvertisedReport {
  readonly address: string
  readonly cls: AddressClass
  readonly matchesControl: boolean
  /** The server's address as the proxy reached it. */
  readonly control: string
}

/** What the proxy tells the status page that its metrics cannot carry. */
export interface StatusRecorder {
  dataFailure(report: DataFailureReport): void
  advertised(report: AdvertisedReport): void
}

export type VerdictLevel = 'ok' | 'bridging' | 'degraded' | 'failing' | 'idle' | 'unready'

export interface Verdict {
  readonly level: VerdictLevel
  readonly text: string
  /** The failure reason most seen in the last hour, when there were failures. */
  readonly reason: FailureReason | null
  /** The hint of the latest failure of that reason still kept, or of the advertised address. */
  readonly hint: string | null
}

export interface Quantiles {
  readonly count: number
  /** Seconds; null when no connect was measured. Estimated within the histogram's buckets. */
  readonly p50: number | null
  readonly p95: number | null
}

export interface WindowFigures {
  /** The span these figures cover, in seconds (a window is never longer than the uptime). */
  readonly seconds: number
  readonly data_connections: { readonly ok: number; readonly failed: number; readonly cancelled: number }
  readonly failures: Readonly<Record<FailureReason, number>>
  readonly cancelled: Readonly<Record<CancelReason, number>>
  /** Control sessions accepted. */
  readonly sessions: number
  readonly sessions_rejected: Readonly<Record<SessionRejectReason, number>>
  readonly bytes: { readonly download: number; readonly upload: number }
  readonly bytes_per_second: { readonly download: number; readonly upload: number }
  readonly data_connect_seconds: Quantiles
  /** Addresses the server advertised, by class: equal to its control address or not. */
  readonly advertised: Readonly<Record<AddressClass, { readonly matches_control: number; readonly differs: number }>>
}

export interface FailureJson {
  readonly at: string
  readonly session: string
  readonly reason: FailureReason
  readonly hint: string
  readonly command: string | null
  readonly path: string | null
  readonly server_reply: string | null
  readonly advertised: string | null
  readonly advertised_class: AddressClass | null
  readonly dialled: ReadonlyArray<{ readonly address: string; readonly error: string | null }>
  readonly error: string | null
  /** null unless --status-show-clients. */
  readonly client: string | null
  readonly user: string | null
}

export interface AdvertisedJson {
  readonly address: string
  readonly class: AddressClass
  readonly matches_control: boolean
  readonly control_address: string
  readonly at: string
}

export interface StatusSnapshot {
  readonly schema: 1
  readonly version: string
  readonly generated_at: string
  readonly started_at: string
  readonly uptime_seconds: number
  readonly verdict: Verdict
  readonly upstreams: ReadonlyArray<{
    readonly address: string
    readonly ready: boolean
    readonly not_ready_reason: string | null
    readonly last_advertised: AdvertisedJson | null
  }>
  readonly sessions: { readonly active: number; readonly peak_last_hour: number; readonly limit: number; readonly limit_per_client: number }
  readonly pool: { readonly in_use: number; readonly peak_last_hour: number; readonly size: number }
  readonly windows: { readonly last_minute: WindowFigures; readonly last_hour: WindowFigures; readonly since_start: WindowFigures }
  /** Data connections per minute of the last hour, oldest first; the last bar ends now. */
  readonly chart: { readonly minute_seconds: 60; readonly ok: readonly number[]; readonly failed: readonly number[]; readonly cancelled: readonly number[] }
  /** Newest first, at most failures_kept_max. */
  readonly failures: readonly FailureJson[]
  /** Failed data connections recorded since start, including those no longer kept. */
  readonly failures_recorded: number
  readonly failures_kept_max: number
  readonly show_clients: boolean
}

/** Whether the status page is served: --status-page, where auto means a loopback metrics listener. */
export function statusPageOn(config: Pick<Config, 'statusPage' | 'metricsListen'>): boolean {
  if (config.metricsListen === null || config.statusPage === 'off') return false
  if (config.statusPage === 'on') return true
  return isLoopbackHost(config.metricsListen.host)
}

/** 127.0.0.0/8, ::1 (and ::ffff:127.x), or the name localhost (RFC 6761 6.3: always loopback). */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '')
  if (h === 'localhost' || h.endsWith('.localhost')) return true
  if (!ipaddr.isValid(h)) return false
  return ipaddr.process(h).range() === 'loopback'
}

// Control characters (C0, DEL, C1), line and paragraph separators, and the bidirectional
// controls that could make a line read as something else (the "Trojan Source" characters).
// eslint-disable-next-line no-control-regex
const UNSAFE_CHARS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g

/**
 * A peer's text as the page may keep it: unsafe characters replaced by U+FFFD, CR dropped, tabs
 * and line feeds kept, cut to `max` characters with an ellipsis. Escaping is the renderer's job.
 */
export function cleanText(text: string, max: number): string {
  const cleaned = text.replace(/\r/g, '').replace(UNSAFE_CHARS, '\ufffd')
  return cleaned.length > max ? `${cleaned.slice(0, max - 1)}…` : cleaned
}

const optional = (text: string | undefined, max: number): string | null => (text === undefined || text === '' ? null : cleanText(text, max))

interface FailureEntry {
  readonly at: number
  readonly json: Omit<FailureJson, 'at' | 'client' | 'user'>
  readonly client: string
  readonly user: string | null
}

/**
 * The estimate Prometheus's histogram_quantile makes: the bucket where the q-th observation
 * falls, linearly within it (the first bucket starts at 0); in the +Inf bucket, the highest
 * finite bound. `buckets` are cumulative counts by upper bound, ascending, +Inf last.
 */
export function histogramQuantile(q: number, buckets: ReadonlyArray<{ readonly le: number; readonly count: number }>): number | null {
  const total = buckets[buckets.length - 1]?.count ?? 0
  if (total <= 0) return null
  const rank = q * total
  let prevLe = 0
  let prevCount = 0
  for (const b of buckets) {
    if (b.count >= rank) {
      if (b.le === Infinity) return prevLe
      const inBucket = b.count - prevCount
      return inBucket <= 0 ? b.le : prevLe + ((b.le - prevLe) * (rank - prevCount)) / inBucket
    }
    prevLe = b.le
    prevCount = b.count
  }
  return prevLe
}

/** The words the verdict uses for each failure reason. */
export const REASON_WORDS: Readonly<Record<FailureReason, string>> = {
  upstream_refused: "the server's data port refused the proxy",
  upstream_timeout: "the server's data port did not answer in time",
  upstream_unreachable: "the server's data address has no route from the proxy",
  client_timeout: 'clients did not come to the passive port the proxy advertised',
  pool_exhausted: 'every port of the passive pool was in use',
  bad_passive_reply: "the server's passive reply could not be read",
  reset: 'data connections broke mid-transfer',
  data_address_refused: "the server's passive reply names an address the proxy does not dial",
  lease_limit: 'sessions held as many passive ports as allowed',
  data_idle: 'data connections stalled',
  tls_handshake: 'TLS handshakes on data connections failed',
}

export interface VerdictInput {
  /** Why the upstream is not ready, or null. */
  readonly notReady: string | null
  readonly lastHour: Pick<WindowFigures, 'data_connections' | 'failures'>
  /** Newest first. */
  readonly failures: ReadonlyArray<Pick<FailureJson, 'reason' | 'hint'>>
  readonly lastAdvertised: { readonly address: string; readonly matchesControl: boolean; readonly control: string; readonly at: number } | null
  readonly now: number
}

/** The one line at the top of the page: working, bridging, or failing and why. A pure function. */
export function verdictOf(input: VerdictInput): Verdict {
  const { ok, failed, cancelled } = input.lastHour.data_connections
  if (input.notReady !== null) {
    return { level: 'unready', text: `The FTP server's control port does not answer: ${input.notReady}.`, reason: null, hint: null }
  }
  if (failed > 0) {
    let top: FailureReason = FAILURE_REASONS[0]
    for (const r of FAILURE_REASONS) if (input.lastHour.failures[r] > input.lastHour.failures[top]) top = r
    const hint = input.failures.find((f) => f.reason === top)?.hint ?? null
    const total = ok + failed + cancelled
    const head = ok === 0 ? 'Data connections are failing' : 'Some data connections fail'
    const text = `${head}: ${failed} of ${total} in the last hour, most because ${REASON_WORDS[top]} (${top}).`
    return { level: ok === 0 ? 'failing' : 'degraded', text, reason: top, hint }
  }
  const adv = input.lastAdvertised
  const recentAdv = adv !== null && input.now - adv.at <= HOUR_MS ? adv : null
  if (ok > 0 && recentAdv !== null && !recentAdv.matchesControl) {
    return {
      level: 'bridging',
      text: `Data connections work: the server advertises ${recentAdv.address}, not its own address ${recentAdv.control}; the proxy bridges it.`,
      reason: null,
      hint: `clients work through the proxy; to make them work without it, set the address clients can reach in the server: ${SERVER_ADDRESS_SETTINGS}`,
    }
  }
  if (ok > 0) return { level: 'ok', text: `Data connections work: ${ok} in the last hour, none failed.`, reason: null, hint: null }
  return { level: 'idle', text: 'No data connection has ended in the last hour.', reason: null, hint: null }
}

// ---- counters, sampled ---------------------------------------------------------------------

interface Sample {
  readonly at: number
  /** Values by the index of their key in #keys; a key not yet known then reads 0. */
  readonly values: readonly number[]
}

export interface StatusBoardOptions {
  readonly metrics: ProxyMetrics
  readonly readiness: UpstreamReadiness
  readonly config: () => Config
  /** The clock, for tests. */
  readonly now?: () => number
}

/**
 * The status page's memory: the failure ring, the last advertised address, samples of the
 * counters for the windows and the chart, and the gauges' peaks per minute. Everything it holds
 * is bounded: FAILURE_RING entries, one hour of samples, CHART_MINUTES + 1 peaks.
 */
export class StatusBoard implements StatusRecorder {
  readonly #opts: StatusBoardOptions
  readonly #now: () => number
  readonly startedAt: number
  readonly #ring: FailureEntry[] = []
  #recorded = 0
  #lastAdvertised: (AdvertisedReport & { readonly at: number }) | null = null
  readonly #keys = new Map<string, number>()
  readonly #samples: Sample[] = []
  /** Per minute (epoch minute): the highest sessions and pool ports in use seen. */
  #peaks: Array<{ readonly minute: number; sessions: number; pool: number }> = []
  #timer: NodeJS.Timeout | null = null
  #ticks = 0
  #sampling = false

  constructor(opts: StatusBoardOptions) {
    this.#opts = opts
    this.#now = opts.now ?? Date.now
    this.startedAt = this.#now()
  }

  dataFailure(report: DataFailureReport): void {
    this.#recorded++
    const entry: FailureEntry = {
      at: this.#now(),
      json: {
        session: cleanText(report.session, MAX_USER_CHARS),
        reason: report.reason,
        hint: cleanText(report.hint, MAX_TEXT_CHARS),
        command: optional(report.command, MAX_USER_CHARS),
        path: optional(report.path, MAX_PATH_CHARS),
        server_reply: optional(report.serverReply, MAX_REPLY_CHARS),
        advertised: optional(report.advertised, MAX_USER_CHARS),
        advertised_class: report.advertisedClass ?? null,
        dialled: (report.dialled ?? []).slice(0, 8).map((d) => ({
          address: cleanText(d.host.includes(':') ? `[${d.host}]:${d.port}` : `${d.host}:${d.port}`, MAX_USER_CHARS),
          error: optional(d.error, MAX_USER_CHARS),
        })),
        error: optional(report.error, MAX_REPLY_CHARS),
      },
      client: cleanText(report.client, MAX_USER_CHARS),
      user: optional(report.user, MAX_USER_CHARS),
    }
    this.#ring.unshift(entry)
    if (this.#ring.length > FAILURE_RING) this.#ring.length = FAILURE_RING
  }

  /** Counter samples held now: at most one hour's worth and one more (a bound the tests check). */
  get samplesHeld(): number {
    return this.#samples.length
  }

  advertised(report: AdvertisedReport): void {
    this.#lastAdvertised = { ...report, at: this.#now() }
  }

  /** Starts sampling: the counters every SAMPLE_EVERY_MS, the gauges every GAUGE_EVERY_MS. */
  start(): void {
    if (this.#timer !== null) return
    void this.tick(true)
    this.#timer = setInterval(() => void this.tick(), GAUGE_EVERY_MS)
    this.#timer.unref()
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
  }

  /** One turn of the sampler (the timer's; tests call it with their clock). */
  async tick(counters = ++this.#ticks % (SAMPLE_EVERY_MS / GAUGE_EVERY_MS) === 0): Promise<void> {
    if (this.#sampling) return
    this.#sampling = true
    try {
      const gauges = await this.#gauges()
      this.#notePeak(gauges.sessions, gauges.pool)
      if (counters) {
        const values = await this.#readCounters()
        const at = this.#now()
        this.#samples.push({ at, values })
        // One sample older than an hour stays: the baseline of the last hour.
        while (this.#samples.length > 1 && (this.#samples[1]?.at ?? at) <= at - HOUR_MS) this.#samples.shift()
      }
    } finally {
      this.#sampling = false
    }
  }

  /** Everything the page and /status.json show, as of now. */
  async snapshot(): Promise<StatusSnapshot> {
    const config = this.#opts.config()
    const [current, gauges] = await Promise.all([this.#readCounters(), this.#gauges()])
    const now = this.#now()
    this.#notePeak(gauges.sessions, gauges.pool)
    const sinceStart = this.#figures(current, { at: this.startedAt, values: [] }, now)
    const lastMinute = this.#figures(current, this.#baseline(now - MINUTE_MS), now)
    const lastHour = this.#figures(current, this.#baseline(now - HOUR_MS), now)
    const showClients = config.statusShowClients
    const failures: FailureJson[] = this.#ring.map((e) => ({
      at: new Date(e.at).toISOString(),
      ...e.json,
      client: showClients ? e.client : null,
      user: showClients ? e.user : null,
    }))
    const notReady = this.#opts.readiness.reason(now)
    const adv = this.#lastAdvertised
    const minuteFrom = Math.floor((now - HOUR_MS) / MINUTE_MS)
    const peaks = this.#peaks.filter((p) => p.minute > minuteFrom)
    return {
      schema: 1,
      version: VERSION,
      generated_at: new Date(now).toISOString(),
      started_at: new Date(this.startedAt).toISOString(),
      uptime_seconds: round3((now - this.startedAt) / 1000),
      verdict: verdictOf({ notReady, lastHour, failures, lastAdvertised: adv === null ? null : { address: adv.address, matchesControl: adv.matchesControl, control: adv.control, at: adv.at }, now }),
      upstreams: [
        {
          address: formatHostPort(config.upstream.host, config.upstream.port),
          ready: notReady === null,
          not_ready_reason: notReady,
          last_advertised:
            adv === null
              ? null
              : { address: adv.address, class: adv.cls, matches_control: adv.matchesControl, control_address: adv.control, at: new Date(adv.at).toISOString() },
        },
      ],
      sessions: {
        active: gauges.sessions,
        peak_last_hour: Math.max(gauges.sessions, ...peaks.map((p) => p.sessions)),
        limit: config.maxSessions,
        limit_per_client: config.maxSessionsPerClient,
      },
      pool: { in_use: gauges.pool, peak_last_hour: Math.max(gauges.pool, ...peaks.map((p) => p.pool)), size: gauges.poolSize },
      windows: { last_minute: lastMinute, last_hour: lastHour, since_start: sinceStart },
      chart: this.#chart(current, now),
      failures,
      failures_recorded: this.#recorded,
      failures_kept_max: FAILURE_RING,
      show_clients: showClients,
    }
  }

  /** The latest sample taken at or before `t`; before the first one, the start (every counter 0). */
  #baseline(t: number): Sample {
    let found: Sample = { at: this.startedAt, values: [] }
    for (const s of this.#samples) {
      if (s.at > t) break
      found = s
    }
    return found
  }

  #chart(current: readonly number[], now: number): StatusSnapshot['chart'] {
    const ok: number[] = []
    const failed: number[] = []
    const cancelled: number[] = []
    const at = (t: number): readonly number[] => (t >= now ? current : this.#baseline(t).values)
    for (let i = CHART_MINUTES; i > 0; i--) {
      const end = at(now - (i - 1) * MINUTE_MS)
      const start = at(now - i * MINUTE_MS)
      ok.push(this.#delta(end, start, 'dc:ok'))
      failed.push(this.#delta(end, start, 'dc:failed'))
      cancelled.push(this.#delta(end, start, 'dc:cancelled'))
    }
    return { minute_seconds: 60, ok, failed, cancelled }
  }

  #value(values: readonly number[], key: string): number {
    const i = this.#keys.get(key)
    return i === undefined ? 0 : (values[i] ?? 0)
  }

  #delta(end: readonly number[], start: readonly number[], key: string): number {
    // A counter never goes down; a difference below 0 could only be a reading mixed up.
    return Math.max(0, round3(this.#value(end, key) - this.#value(start, key)))
  }

  #figures(current: readonly number[], base: Sample, now: number): WindowFigures {
    const d = (key: string): number => this.#delta(current, base.values, key)
    const seconds = round3(Math.max(0, now - base.at) / 1000)
    const perSecond = (n: number): number => (seconds > 0 ? round3(n / seconds) : 0)
    const buckets = this.#bucketBounds().map((le) => ({ le, count: d(`connect:le:${le === Infinity ? '+Inf' : String(le)}`) }))
    const count = d('connect:count')
    const download = d('bytes:download')
    const upload = d('bytes:upload')
    const round6 = (x: number | null): number | null => (x === null ? null : Math.round(x * 1e6) / 1e6)
    return {
      seconds,
      data_connections: { ok: d('dc:ok'), failed: d('dc:failed'), cancelled: d('dc:cancelled') },
      failures: Object.fromEntries(FAILURE_REASONS.map((r) => [r, d(`fail:${r}`)])) as Record<FailureReason, number>,
      cancelled: Object.fromEntries(CANCEL_REASONS.map((r) => [r, d(`cancel:${r}`)])) as Record<CancelReason, number>,
      sessions: d('sessions'),
      sessions_rejected: Object.fromEntries(SESSION_REJECT_REASONS.map((r) => [r, d(`rejected:${r}`)])) as Record<SessionRejectReason, number>,
      bytes: { download, upload },
      bytes_per_second: { download: perSecond(download), upload: perSecond(upload) },
      data_connect_seconds: { count, p50: round6(histogramQuantile(0.5, buckets)), p95: round6(histogramQuantile(0.95, buckets)) },
      advertised: Object.fromEntries(
        ADDRESS_CLASSES.map((c) => [c, { matches_control: d(`adv:${c}:true`), differs: d(`adv:${c}:false`) }]),
      ) as Record<AddressClass, { matches_control: number; differs: number }>,
    }
  }

  /** The connect histogram's upper bounds, ascending, +Inf last, as read so far. */
  #bucketBounds(): number[] {
    const bounds: number[] = []
    for (const key of this.#keys.keys()) {
      if (!key.startsWith('connect:le:')) continue
      const le = key.slice('connect:le:'.length)
      bounds.push(le === '+Inf' ? Infinity : Number(le))
    }
    return bounds.sort((a, b) => a - b)
  }

  /**
   * A gauge's value as it changes (the proxy calls this when a session starts and when a pool
   * port is leased), so that a peak shorter than the sampling interval still counts.
   */
  notePeak(kind: 'sessions' | 'pool', value: number): void {
    this.#notePeak(kind === 'sessions' ? value : 0, kind === 'pool' ? value : 0)
  }

  #notePeak(sessions: number, pool: number): void {
    const minute = Math.floor(this.#now() / MINUTE_MS)
    const last = this.#peaks[this.#peaks.length - 1]
    if (last !== undefined && last.minute === minute) {
      last.sessions = Math.max(last.sessions, sessions)
      last.pool = Math.max(last.pool, pool)
      return
    }
    this.#peaks.push({ minute, sessions, pool })
    if (this.#peaks.length > CHART_MINUTES + 1) this.#peaks = this.#peaks.slice(-(CHART_MINUTES + 1))
  }

  async #gauges(): Promise<{ sessions: number; pool: number; poolSize: number }> {
    const m = this.#opts.metrics
    const [sessions, pool, poolSize] = await Promise.all([m.sessionsActive.get(), m.poolInUse.get(), m.poolSize.get()])
    return { sessions: sessions.values[0]?.value ?? 0, pool: pool.values[0]?.value ?? 0, poolSize: poolSize.values[0]?.value ?? 0 }
  }

  /** The counters the page shows, by key (see #keys), read from the registry now. */
  async #readCounters(): Promise<number[]> {
    const m = this.#opts.metrics
    const [dc, fail, cancel, sessions, rejected, bytes, connect, adv] = await Promise.all([
      m.dataConnections.get(),
      m.dataFailures.get(),
      m.dataCancelled.get(),
      m.sessionsTotal.get(),
      m.sessionsRejected.get(),
      m.dataBytes.get(),
      m.dataConnectSeconds.get(),
      m.advertisedAddress.get(),
    ])
    const values: number[] = []
    const put = (key: string, value: number): void => {
      let i = this.#keys.get(key)
      if (i === undefined) {
        i = this.#keys.size
        this.#keys.set(key, i)
      }
      values[i] = (values[i] ?? 0) + value
    }
    for (const v of dc.values) put(`dc:${String(v.labels.result)}`, v.value)
    for (const v of fail.values) put(`fail:${String(v.labels.reason)}`, v.value)
    for (const v of cancel.values) put(`cancel:${String(v.labels.reason)}`, v.value)
    for (const v of sessions.values) put('sessions', v.value)
    for (const v of rejected.values) put(`rejected:${String(v.labels.reason)}`, v.value)
    for (const v of bytes.values) put(`bytes:${String(v.labels.direction)}`, v.value)
    for (const v of connect.values) {
      const name = (v as { metricName?: string }).metricName ?? ''
      if (name.endsWith('_bucket')) put(`connect:le:${String(v.labels.le)}`, v.value)
      else if (name.endsWith('_count')) put('connect:count', v.value)
    }
    for (const v of adv.values) put(`adv:${String(v.labels.class)}:${String(v.labels.matches_control)}`, v.value)
    for (let i = 0; i < values.length; i++) values[i] ??= 0
    return values
  }
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000
}

function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}
