// Durations as the settings and `diagnose` take them: `250ms`, `5s`, `2m`, `1h`, or a whole
// number of seconds. One parser for both, so the same text means the same everywhere.

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const
const DURATION = /^(\d+)(ms|s|m|h)?$/

/** Milliseconds, or null when the text is not a duration. */
export function parseDuration(text: string): number | null {
  const m = DURATION.exec(text)
  if (m === null) return null
  return Number(m[1]) * UNIT_MS[(m[2] ?? 's') as keyof typeof UNIT_MS]
}

/** The largest unit that divides ms exactly, so 900000 reads as 15m. */
export function formatDuration(ms: number): string {
  // Largest unit first; ms (size 1) divides every whole number, so the search always finds one.
  const [unit, size] = Object.entries(UNIT_MS)
    .reverse()
    .find(([, s]) => ms % s === 0) as [string, number]
  return `${ms / size}${unit}`
}
