/**
 * Crash safety: a server child process is killed with SIGKILL during concurrent ingest, restarted, and checked:
 * every acknowledged instance is present and byte-identical, and the storage area holds exactly the files the
 * index refers to (no orphan file, no dangling row, no temp file left).
 */
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeInstance } from './helpers/factory.js';
import { startServer } from './helpers/process.js';

function md5(b: Buffer): string {
  return createHash('md5').update(b).digest('hex');
}

function filesOnDisk(root: string): Set<string> {
  const out = new Set<string>();
  const walk = (dir: string, depth: number) => {
    for (const name of readdirSync(dir)) {
      if (depth === 0 && (name.startsWith('.pacsnode') || name.startsWith('pacsnode-index'))) continue;
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p, depth + 1);
      else out.add(name);
    }
  };
  walk(root, 0);
  return out;
}

describe('crash safety: SIGKILL during concurrent ingest', function () {
  this.timeout(120000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pacsnode-crash-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('loses no acknowledged instance and leaves no orphan, over three kills', async () => {
    const storage = join(dir, 'storage');
    const configPath = join(dir, 'config.json');
    writeFileSync(configPath, JSON.stringify({ HttpPort: 0, DicomPort: 0, StorageDirectory: storage, SyncStorageArea: true }));
    const acknowledged = new Map<string, string>(); // instance ID -> MD5 of the bytes sent

    for (let round = 0; round < 3; round++) {
      const server = await startServer(configPath);
      let stop = false;
      let inFlight = 0;
      const worker = async () => {
        while (!stop) {
          const bytes = makeInstance({ patientId: `CRASH${round}`, pixelBytes: 32768 + Math.floor(Math.random() * 65536) });
          inFlight++;
          try {
            const res = await fetch(`${server.url}/instances`, { method: 'POST', body: bytes });
            const body = (await res.json()) as { ID?: string; Status?: string };
            if (res.status === 200 && body.Status === 'Success' && body.ID) acknowledged.set(body.ID, md5(bytes));
          } catch {
            // The server died under us: this upload was never acknowledged.
            return;
          } finally {
            inFlight--;
          }
        }
      };
      const workers = [worker(), worker(), worker(), worker()];
      const target = acknowledged.size + 40 + Math.floor(Math.random() * 40);
      while (acknowledged.size < target) await new Promise((r) => setTimeout(r, 5));
      expect(inFlight, 'uploads were in flight at the kill').to.be.greaterThan(0);
      server.child.kill('SIGKILL');
      stop = true;
      await Promise.all(workers);
      await server.exited;
    }

    const server = await startServer(configPath);
    try {
      const listed = (await (await fetch(`${server.url}/instances?expand`)).json()) as { ID: string; FileUuid: string }[];
      const indexed = new Map(listed.map((i) => [i.ID, i.FileUuid]));
      for (const [id, sum] of acknowledged) {
        expect(indexed.has(id), `acknowledged instance ${id} is indexed`).to.equal(true);
        const file = Buffer.from(await (await fetch(`${server.url}/instances/${id}/file`)).arrayBuffer());
        expect(md5(file), `instance ${id} is byte-identical`).to.equal(sum);
      }
      // Every indexed instance has its file, and every file belongs to an indexed instance.
      const onDisk = filesOnDisk(storage);
      expect([...onDisk].sort()).to.deep.equal([...indexed.values()].sort());
      expect([...onDisk].filter((f) => f.endsWith('.tmp')), 'no write left half-way').to.deep.equal([]);
      const stats = (await (await fetch(`${server.url}/statistics`)).json()) as { CountInstances: number };
      expect(stats.CountInstances).to.equal(indexed.size);
      expect(acknowledged.size).to.be.greaterThan(100);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });
});
