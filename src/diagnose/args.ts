// `diagnose` arguments: ftp://[user[:password]@]host[:port][/path] [--password-env VAR] [--json]
// [--timeout DURATION]. Pure: words and the environment in, options or a usage message out.

import { parseDuration } from '../duration.js'
import { parseArgs } from 'node:util'

export interface DiagnoseOptions {
  readonly host: string
  readonly port: number
  /** URL-decoded; `anonymous` when the URL names no user. */
  readonly user: string
  /** URL-decoded, or the value of the --password-env variable; `anonymous@` when neither gives one. Never printed. */
  readonly password: string
  /** The directory to LIST (URL-decoded path without the leading '/'); null lists the login directory. */
  readonly path: string | null
  readonly json: boolean
  /** Limit on each connect and on each wait for a reply or for listing data. */
  readonly timeoutMs: number
}

export type ParsedArgs = { readonly ok: true; readonly options: DiagnoseOptions } | { readonly ok: false; readonly message: string }

export const USAGE = 'usage: ftp-pasv-proxy diagnose ftp://[user[:password]@]host[:port][/dir] [--password-env VAR] [--json] [--timeout 10s]'

export const HELP = `${USAGE}

Checks an FTP server's passive mode as a client sees it: logs in, sends PASV and EPSV, dials the
addresses they name, lists a directory over each one that answers, and prints the root cause
and the fix. Run it from where the clients are.

  ftp://...            the server; anonymous login unless the URL names a user. User,
                       password and path are URL-decoded (p%40ss is p@ss).
  --password-env VAR   take the password from the environment variable VAR instead of the
                       URL, so it is not in the process list (ps shows a command line):
                       FTP_PASSWORD=... ftp-pasv-proxy diagnose ftp://alice@host --password-env FTP_PASSWORD
  --json               print the report as JSON
  --timeout DURATION   limit on each connect and each wait for a reply or listing data
                       (250ms, 3s, 1m or whole seconds; default 10s, at most 10m)
  -h, --help           this text

Exit 0 healthy, 1 a passive-mode fault found, 2 usage error or nothing to diagnose.
Details: docs/diagnose.md.
`

// Servers delay the reply to a wrong password on purpose, against guessing: pyftpdlib by 3 s
// (auth_failed_timeout), vsftpd by 1 s (delay_failed_login). A limit at or near that reports a
// refused login as silence; 10 s leaves room for those delays plus a slow link, and costs
// nothing when the server answers (a blackholed data address costs it once per probe).
const DEFAULT_TIMEOUT_MS = 10_000
// A diagnosis waits at most this long per step; more is surely a unit mistake.
const MAX_TIMEOUT_MS = 600_000
// The duration grammar of the proxy's settings (config.ts parseDuration, which is not exported).

/** `env` is read only for the variable --password-env names. */
export function parseDiagnoseArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = {}): ParsedArgs {
  let parsed
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { json: { type: 'boolean' }, timeout: { type: 'string' }, 'password-env': { type: 'string' } },
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
  const { passwordGiven, ...fields } = target
  const variable = values['password-env']
  if (variable === undefined) return { ok: true, options: { ...fields, json: values.json === true, timeoutMs } }
  const password = passwordFrom(variable, env, passwordGiven)
  if (password.error !== undefined) return usage(password.error)
  return { ok: true, options: { ...fields, password: password.value, json: values.json === true, timeoutMs } }
}

/** The password held by the environment variable `name`, or what is wrong. Never repeats a password. */
function passwordFrom(name: string, env: Readonly<Record<string, string | undefined>>, inUrl: boolean): { value: string; error?: never } | { value?: never; error: string } {
  // A name, not a value: someone who passes the password itself is not told it back.
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return { error: '--password-env takes the name of an environment variable (letters, digits and _)' }
  if (inUrl) return { error: `the URL has a password and --password-env names ${name} too: give the password one way` }
  const value = env[name]
  if (value === undefined) return { error: `--password-env: ${name} is not set in the environment` }
  if (value === '') return { error: `--password-env: ${name} is empty` }
  // As for the URL: a CR or LF would end PASS early and smuggle in another command.
  if (/[\r\n]/.test(value)) return { error: `--password-env: ${name} must not contain CR or LF` }
  return { value }
}

function usage(message: string): ParsedArgs {
  return { ok: false, message }
}

/** Milliseconds, or the message saying what is wrong. */
function parseTimeout(text: string): number | string {
  const ms = parseDuration(text)
  if (ms === null) return `--timeout ${JSON.stringify(text)} is not a duration; use 250ms, 3s, 1m or whole seconds`
  if (ms <= 0) return `--timeout ${text} must be more than 0`
  if (ms > MAX_TIMEOUT_MS) return `--timeout ${text} is above the limit of 10m`
  return ms
}

/** The URL's parts, or the message saying what is wrong. The message never repeats a password. */
function parseFtpUrl(text: string): (Omit<DiagnoseOptions, 'json' | 'timeoutMs'> & { passwordGiven: boolean }) | string {
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
  return { host, port, user, password, passwordGiven: url.password !== '', path: path === '' ? null : path }
}

/** The text with anything between '//' and the last '@' hidden: it may hold a password. */
function redact(text: string): string {
  return text.replace(/\/\/[^/]*@/, '//****@')
}
