// One style and one set of checks for src/, test/, bench/ and scripts/ (STYLE.md 18):
// neostandard (the style of undici, fastify and pino; its stylistic rules are the formatter,
// applied by `npm run lint -- --fix`) plus typescript-eslint's type-checked rules for what the
// compiler does not catch: promises nobody awaits, switches that miss a case, fields that could
// be readonly. ESLint rather than Biome for the type-checked rules: Biome has no equivalent of
// no-floating-promises or switch-exhaustiveness-check that reads the type checker.
import neostandard from 'neostandard'
import tseslint from 'typescript-eslint'

export default [
  ...neostandard({
    ts: true,
    ignores: ['dist/**', 'coverage/**', '.cache/**', 'tmp/**', 'node_modules/**', 'grafana/dashboards/**'],
  }),
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: {
        project: ['./tsconfig.test.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/prefer-readonly': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unnecessary-type-assertion': 'error',
      // The project's style where it differs from standard's: multi-line lists end with a
      // comma (a line added later touches one line of the diff), `function name(`.
      '@stylistic/comma-dangle': ['error', 'always-multiline'],
      '@stylistic/space-before-function-paren': ['error', { anonymous: 'always', named: 'never', asyncArrow: 'always' }],
      // `void promise` marks a promise deliberately not awaited (no-floating-promises wants it).
      'no-void': 'off',
      // It cannot see a loop condition that a callback or an await changes.
      'no-unmodified-loop-condition': 'off',
      // `new Promise((resolve) => ...)` and `(r) => setTimeout(r)` read the same.
      'promise/param-names': 'off',
    },
  },
  // The layers' import rules (docs/architecture.md), checked on every lint.
  {
    files: ['src/protocol/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: '^(?!\\./|\\.\\./errors\\.js$)', message: 'src/protocol is pure FTP wire code: it imports nothing but ../errors.js and itself.' }] }],
    },
  },
  {
    files: ['src/diagnose/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: '^\\.\\./(proxy/|config(-types)?\\.js$)', message: 'diagnose runs without a proxy: it must not import src/proxy or the config.' }] }],
    },
  },
  {
    files: ['src/proxy/command-policy.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: '^(node:)?(net|tls|dgram|timers(/promises)?)$|^pino$', message: 'The command policy is a pure function: no socket, timer or logger.' }] }],
      'no-restricted-globals': ['error', 'setTimeout', 'setInterval', 'setImmediate', 'process'],
    },
  },
  {
    // tap's t.test() returns a promise that tap itself awaits: not a floating one.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafePromises: [{ from: 'package', name: 'PromiseWithSubtest', package: '@tapjs/core' }] },
      ],
    },
  },
]
