/** Running pacsnode as a child process (the real CLI), as users and CI do. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface RunningServer {
  child: ChildProcess;
  port: number;
  dicomPort: number;
  url: string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `pacsnode serve --config <file>`. `useBin` runs the built `bin/pacsnode` (what users run); otherwise the
 * TypeScript sources through tsx (no build needed).
 */
export function startServer(configPath: string, options: { useBin?: boolean } = {}): Promise<RunningServer> {
  const args = options.useBin
    ? [`${ROOT}bin/pacsnode`, 'serve', '--config', configPath]
    : ['--import', 'tsx', `${ROOT}src/cli/main.ts`, 'serve', '--config', configPath];
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, PACSNODE_LOG_LEVEL: process.env.PACSNODE_LOG_LEVEL ?? 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in time:\n${stderr}`)), 30000);
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
      const m = /pacsnode ready: http=(\d+) dicom=(\d+)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        const port = Number(m[1]);
        resolve({ child, port, dicomPort: Number(m[2]), url: `http://127.0.0.1:${port}`, stderr: () => stderr, exited });
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited early (code ${code}, signal ${signal}):\n${stderr}`));
    });
  });
}
