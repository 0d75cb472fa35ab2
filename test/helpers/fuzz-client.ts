/**
 * The worker thread that plays the association fuzz test's cases (`fuzz-cases.ts`) against the server in the
 * test's thread: the client's work then runs on its own core. Started by `startFuzzClient`; reports the outcomes
 * in batches, then 'done'.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { dumpCase, runFuzz, type Outcome } from './fuzz-cases.js';

export interface FuzzClientOptions {
  port: number;
  seed: number;
  indexes: number[];
  concurrency: number;
}

type FromWorker = { type: 'outcomes'; outcomes: Outcome[] } | { type: 'done' } | { type: 'failed'; error: string };

/**
 * Plays the cases in a worker thread; `onOutcome` receives each outcome (bytes left out; failing cases are written
 * to a file named in `dump`). Resolves when all are played.
 */
export function startFuzzClient(options: FuzzClientOptions, onOutcome: (o: Outcome) => void): Promise<void> {
  // A worker does not inherit tsx from `--import`: register it there before loading this file.
  const self = new URL(import.meta.url).href;
  const boot = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(self)}); })`;
  const worker = new Worker(boot, { eval: true, workerData: { kind: 'pacsnode-fuzz-client', options } });
  return new Promise<void>((resolve, reject) => {
    let done = false;
    worker.on('message', (m: FromWorker) => {
      if (m.type === 'outcomes') m.outcomes.forEach(onOutcome);
      else if (m.type === 'done') {
        done = true;
        void worker.terminate().then(() => resolve());
      } else reject(new Error(`the fuzz client failed: ${m.error}`));
    });
    worker.on('error', reject);
    worker.on('exit', (code) => done || reject(new Error(`the fuzz client exited with ${code} before it was done`)));
  });
}

if (!isMainThread && (workerData as { kind?: string } | undefined)?.kind === 'pacsnode-fuzz-client') {
  const { options } = workerData as { options: FuzzClientOptions };
  let pending: Outcome[] = [];
  const flush = () => {
    if (pending.length > 0) parentPort!.postMessage({ type: 'outcomes', outcomes: pending } satisfies FromWorker);
    pending = [];
  };
  runFuzz(options, (o) => {
    if (o.problems.length > 0) o.dump = dumpCase(o);
    delete o.sent;
    pending.push(o);
    if (pending.length >= 200) flush();
  }).then(
    () => {
      flush();
      parentPort!.postMessage({ type: 'done' } satisfies FromWorker);
    },
    (e: unknown) => parentPort!.postMessage({ type: 'failed', error: (e as Error)?.stack ?? String(e) } satisfies FromWorker),
  );
}
