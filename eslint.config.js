// ESLint flat config: typescript-eslint's recommended rules over src/, test/, bench/.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

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
  {
    // Each third-party dependency has one home (docs/architecture.md).
    files: ['src/**/*.ts'],
    ignores: ['src/store/sqlite-index.ts'],
    rules: { 'no-restricted-imports': ['error', { paths: ['better-sqlite3'] }] },
  },
);
