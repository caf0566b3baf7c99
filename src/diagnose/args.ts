// `diagnose` arguments: ftp://[user[:password]@]host[:port][/path] [--json] [--timeout DURATION].
// Pure: words in, options or a usage message out.

import { parseArgs } from 'node:util'

export interface DiagnoseOptions {
  readonly host: string
  readonly port: number
  /** URL-decoded; `anonymous` when the URL names no user. */
  readonly user: string
  /** URL-decoded; `anonymous@` when the URL names none. Never printed. */
  readonly password: string
  /** The directory to LIST (URL-decoded path without the leading '/'); null lists the login directory. */
  readonly path: string | null
  readonly json: boolean
  /** Limit on each connect and on each wait for a reply or for listing data. */
  readonly timeoutMs: number
}

export type ParsedArgs = { readonly ok: true; readonly options: DiagnoseOptions } | { readonly ok: false; readonly message: string }

export const USAGE = 'usage: ftp-pasv-proxy diagnose ftp://[user[:password]@]host[:port][/dir] [--json] [--timeout 3s]'

const DEFAULT_TIMEOUT_MS = 3_000
// A diagnosis waits at most this long per step; more is surely a unit mistake.
const MAX_TIMEOUT_MS = 600_000
// The duration grammar of the proxy's settings (config.ts parseDuration, which is not exported).
const DURATION = /^(\d+)(ms|s|m|h)?$/
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const

export function parseDiagnoseArgs(argv: readonly string[]): ParsedArgs {
  let parsed
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { json: { type: 'boolean' }, timeout: { type: 'string' } },
      allowPositionals: true,
      strict: true,
    })
  } catch (err) {
    return usage((err as Error).message)
  }
  const { values, positionals } = parsed
  if (positionals.length === 0) return usage('no URL given')
  if (positionals.length > 1) return usage(`one URL only, got ${positionals.length}: ${positionals.join(' ')}`)
  const timeoutMs = values.timeout === undefined ? DEFAULT_TIMEOUT_MS : parseTimeout(values.timeout)
  if (typeof timeoutMs === 'string') return usage(timeoutMs)
  const target = parseFtpUrl(positionals[0] as string)
  if (typeof target === 'string') return usage(target)
  return { ok: true, options: { ...target, json: values.json === true, timeoutMs } }
}

function usage(message: string): ParsedArgs {
  return { ok: false, message }
}

/** Milliseconds, or the message saying what is wrong. */
function parseTimeout(text: string): number | string {
  const m = DURATION.exec(text)
  if (m === null) return `--timeout ${JSON.stringify(text)} is not a duration; use 250ms, 3s, 1m or whole seconds`
  const ms = Number(m[1]) * UNIT_MS[(m[2] ?? 's') as keyof typeof UNIT_MS]
  if (ms <= 0) return `--timeout ${text} must be more than 0`
  if (ms > MAX_TIMEOUT_MS) return `--timeout ${text} is above the limit of 10m`
  return ms
}

/** The URL's parts, or the message saying what is wrong. The message never repeats a password. */
function parseFtpUrl(text: string): Omit<DiagnoseOptions, 'json' | 'timeoutMs'> | string {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return `${JSON.stringify(redact(text))} is not a URL; expected ftp://[user[:password]@]host[:port]`
  }
  if (url.protocol !== 'ftp:') return `the URL must start with ftp:// (got ${url.protocol}//)`
  // WHATWG URL keeps IPv6 hosts in brackets; it refuses an ftp: URL without a host.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1')
  // URL drops the scheme's default port (21), so '' means 21; ':0' comes through as '0'.
  const port = url.port === '' ? 21 : Number(url.port)
  if (port === 0) return 'port 0 cannot be dialled; give the server port, 1-65535'
  let user: string
  let password: string
  let path: string
  try {
    user = url.username === '' ? 'anonymous' : decodeURIComponent(url.username)
    password = url.password === '' ? 'anonymous@' : decodeURIComponent(url.password)
    path = decodeURIComponent(url.pathname.replace(/^\//, ''))
  } catch {
    return 'the URL has a malformed %-escape in its user, password or path'
  }
  // A CR or LF would end the command early and smuggle in another one.
  if ([user, password, path].some((field) => /[\r\n]/.test(field))) {
    return 'user, password and path must not contain CR or LF'
  }
  return { host, port, user, password, path: path === '' ? null : path }
}

/** The text with anything between '//' and the last '@' hidden: it may hold a password. */
function redact(text: string): string {
  return text.replace(/\/\/[^/]*@/, '//****@')
}
