// Finds the real programs the end-to-end tests drive. The three FTP servers conflict with each
// other as Debian packages, so scripts/install-deps.sh unpacks them under .cache/debs/<name>/;
// a copy on PATH (installed with apt) wins, the same order the install script verifies.
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url))

const CACHE_DIRS = ['vsftpd', 'proftpd', 'pure-ftpd']

// root's sbin dirs are not on every PATH (CI runs with the machine's environment).
const EXTRA_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin']

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/** Absolute path of `name`, or a thrown Error that says how to install it (tests never skip). */
export function findBinary(name: string): string {
  const pathDirs = (process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== '')
  const cacheDirs = CACHE_DIRS.flatMap((pkg) =>
    ['usr/sbin', 'usr/bin'].map((sub) => join(repoRoot, '.cache/debs', pkg, sub)),
  )
  for (const dir of [...pathDirs, ...EXTRA_DIRS, ...cacheDirs]) {
    const candidate = join(dir, name)
    if (isExecutable(candidate)) return candidate
  }
  throw new Error(
    `${name} not found on PATH nor under .cache/debs/: run "bash scripts/install-deps.sh" as root`,
  )
}
