// The text form of a report: what was sent and seen, step by step, then the verdict in plain
// words. Pure. The password is not in the report, so it cannot be printed. Every line goes
// through printable(): server text reaches the terminal with its control bytes escaped.

import { formatEndpoint } from '../net/endpoint.js'
import { printable } from './printable.js'
import type { DiagnoseReport, PassiveFindings, Probe } from './report.js'
import { count } from './verdict.js'

export function renderText(r: DiagnoseReport): string {
  const out: string[] = []
  const target = formatEndpoint(r.target)
  out.push(`Diagnosing ${target} as ${r.login.user}`)
  if (r.control.ok) {
    out.push(`  control  connected to ${r.control.peer ?? '?'} in ${r.control.ms} ms: ${r.control.greeting ?? '(no greeting)'}`)
    out.push(`  login    ${r.login.reply ?? `no reply (${r.login.error ?? 'none'})`}`)
  } else {
    out.push(`  control  cannot connect: ${r.control.error ?? 'failed'}`)
  }
  for (const m of [r.pasv, r.epsv]) if (m.status !== 'not_sent') out.push(...passiveLines(m))
  out.push('')
  const fault = r.verdict.fault ?? 'none'
  const state = r.exitCode === 0 ? 'healthy' : r.exitCode === 1 ? `passive-mode fault: ${fault}` : `not diagnosed: ${fault}`
  out.push(`Verdict: ${state}, exit ${r.exitCode}`)
  section(out, 'What the server advertises', r.verdict.advertises)
  section(out, 'What is reachable from here', r.verdict.reachable)
  out.push(`Root cause: ${r.verdict.cause}`)
  section(out, 'Fix (any one of)', r.verdict.fix)
  section(out, 'Notes', r.verdict.notes)
  // Each entry is one line of ours; any LF or control inside it came from a value.
  return `${out.map(printable).join('\n')}\n`
}

function passiveLines(m: PassiveFindings): string[] {
  const head = `  ${m.command.padEnd(8)} ${m.reply ?? `no reply (${m.error ?? 'none'})`}`
  return [head, ...m.probes.map(probeLine)]
}

function probeLine(p: Probe): string {
  const where = `${p.kind.padEnd(10)} ${formatEndpoint({ host: p.host, port: p.port })}`
  if (!p.ok) return `             ${where}  ${p.error ?? 'failed'} after ${p.ms} ms`
  const l = p.listing
  const listing =
    l === undefined ? '' : l.ok ? `; LIST ${count(l.lines, 'line')}, ${count(l.bytes, 'byte')}: ${l.reply ?? ''}` : `; LIST failed: ${l.error ?? 'failed'}`
  return `             ${where}  connected in ${p.ms} ms${listing}`
}

function section(out: string[], title: string, lines: readonly string[]): void {
  if (lines.length === 0) return
  out.push(`${title}:`)
  for (const line of lines) out.push(`  - ${line}`)
}
