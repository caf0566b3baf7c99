// `ftp-pasv-proxy diagnose URL [--password-env VAR] [--json] [--timeout 10s]`: gather (probe.ts), judge (verdict.ts),
// print (render.ts or JSON). Exit 0 healthy, 1 a passive-mode fault found, 2 usage error or
// nothing to diagnose (no control connection, login refused).

import { HELP, parseDiagnoseArgs, USAGE } from './args.js'
import { jsonText, printable } from './printable.js'
import { gatherFindings } from './probe.js'
import { renderText } from './render.js'
import type { DiagnoseReport } from './report.js'
import { judge } from './verdict.js'

export interface DiagnoseOutput {
  readonly stdout: (s: string) => void
  readonly stderr: (s: string) => void
}

/** `argv` is the words after `diagnose`; `env` is read only for the variable --password-env names. */
export async function runDiagnose(argv: readonly string[], out: DiagnoseOutput, env: Readonly<Record<string, string | undefined>> = {}): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    out.stdout(HELP)
    return 0
  }
  const args = parseDiagnoseArgs(argv, env)
  if (!args.ok) {
    out.stderr(`ftp-pasv-proxy diagnose: ${printable(args.message)}\n${USAGE}\n`)
    return 2
  }
  const findings = await gatherFindings(args.options)
  const report: DiagnoseReport = { ...findings, ...judge(findings) }
  out.stdout(args.options.json ? `${jsonText(report)}\n` : renderText(report))
  // Scripts reading --json still learn on stderr why there was nothing to diagnose.
  if (report.exitCode === 2) out.stderr(`ftp-pasv-proxy diagnose: ${printable(report.verdict.cause)}\n`)
  return report.exitCode
}
