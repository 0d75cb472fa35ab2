import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { WriterPool } from '../src/store/writer-pool.js';

describe('writer threads', function () {
  let dir: string;
  let pool: WriterPool;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pacsnode-writers-'));
    pool = new WriterPool(2);
  });
  afterEach(async () => {
    await pool.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('makes again a folder believed to exist but removed', async () => {
    await pool.write(join(dir, 'gone', 'f'), Buffer.from('x'), false, join(dir, 'gone'), true);
    expect(readFileSync(join(dir, 'gone', 'f'), 'utf8')).to.equal('x');
  });

  it('writes whole files, creating their folder, and refuses to overwrite', async () => {
    await pool.write(join(dir, 'a', 'b', 'f1'), Buffer.from('hello'), true, join(dir, 'a', 'b'));
    expect(readFileSync(join(dir, 'a', 'b', 'f1'), 'utf8')).to.equal('hello');
    let error: unknown;
    try {
      await pool.write(join(dir, 'a', 'b', 'f1'), Buffer.from('again'), false, join(dir, 'a', 'b'), true);
    } catch (e) {
      error = e;
    }
    expect((error as { code?: string }).code).to.equal('EEXIST');
  });

  it('replaces a thread that died and keeps writing', async () => {
    const workers = (pool as unknown as { workers: Worker[] }).workers;
    const first = workers[0]!;
    await first.terminate();
    await new Promise((r) => setTimeout(r, 50));
    expect(workers[0]).to.not.equal(first);
    for (let i = 0; i < 4; i++) await pool.write(join(dir, `g${i}`), Buffer.from([i]), false, dir, true);
    expect(readFileSync(join(dir, 'g2'))[0]).to.equal(2);
  });
});
