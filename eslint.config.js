// ESLint flat config: typescript-eslint's recommended rules over src/, test/, bench/.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** The one file allowed to import each restricted package. */
const HOMES = { 'better-sqlite3': 'src/store/sqlite-index.ts', 'p-queue': 'src/jobs/engine.ts' };

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'fixtures/**', 'data/**', 'OrthancStorage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  // Each third-party dependency has one home (docs/architecture.md). A later block would replace an earlier one's
  // rule for the same file, so each file gets one list: every restricted package but its own.
  ...Object.values(HOMES).map((home) => ({
    files: [home],
    rules: { 'no-restricted-imports': ['error', { paths: Object.keys(HOMES).filter((p) => HOMES[p] !== home) }] },
  })),
  {
    files: ['src/**/*.ts'],
    ignores: Object.values(HOMES),
    rules: { 'no-restricted-imports': ['error', { paths: Object.keys(HOMES) }] },
  },
);
