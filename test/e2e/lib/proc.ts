// Runs one program to completion with a deadline, for the client helpers and the servers' setup
// tools (openssl, pure-pw).
import { spawn } from 'node:child_process'
import { findBinary } from './bin.js'

export interface ProcessResult {
  /** Exit code; null when the process died of a signal (our timeout kill included). */
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface RunOptions {
  timeoutMs: number;
}

/**
 * Runs `name` (looked up with findBinary, so a missing tool is a thrown Error, not a failed
 * result) and resolves when it has exited and its output is closed. On timeout the process is
 * killed by its own PID with SIGKILL and `timedOut` is set.
 */
export function runProcess(name: string, args: readonly string[], opts: RunOptions): Promise<ProcessResult> {
  const file = findBinary(name)
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL')
    }, opts.timeoutMs)
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.on('error', (e) => {
      clearTimeout(timer)
      reject(new Error(`cannot run ${file}: ${e.message}`, { cause: e }))
    })
    // 'close' (not 'exit') so that every byte of output has been read.
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
      })
    })
  })
}
