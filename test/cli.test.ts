/** The command line as users run it: `bin/pacsnode serve --config FILE` (built by `npm test` before mocha). */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeInstance } from './helpers/factory.js';
import { ROOT, startServer } from './helpers/process.js';

describe('CLI: pacsnode serve', function () {
  this.timeout(60000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pacsnode-cli-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('--version prints package.json\'s version', () => {
    const r = spawnSync(process.execPath, [`${ROOT}bin/pacsnode`, '--version'], { encoding: 'utf8' });
    const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { version: string };
    expect(r.status).to.equal(0);
    expect(r.stdout.trim()).to.equal(pkg.version);
  });

  it('exits non-zero on a malformed configuration, naming the file and the position', () => {
    const path = join(dir, 'bad.json');
    writeFileSync(path, '{\n  // comments are fine\n  "HttpPort": 8042,\n  "Name": "x" "DicomAet": "Y"\n}\n');
    const r = spawnSync(process.execPath, [`${ROOT}bin/pacsnode`, 'serve', '--config', path], { encoding: 'utf8' });
    expect(r.status).to.equal(2);
    expect(r.stderr).to.contain(`${path}:4:15`);
  });

  it('exits non-zero on a value of the wrong type, naming the key', () => {
    const path = join(dir, 'bad.json');
    writeFileSync(path, '{ "HttpPort": "eighty" }');
    const r = spawnSync(process.execPath, [`${ROOT}bin/pacsnode`, 'serve', '--config', path], { encoding: 'utf8' });
    expect(r.status).to.equal(2);
    expect(r.stderr).to.contain('HttpPort');
  });

  it('warns about unknown keys and serves; SIGTERM lets an in-flight upload finish, then exits 0', async () => {
    const path = join(dir, 'config.json');
    writeFileSync(path, JSON.stringify({ HttpPort: 0, DicomPort: 0, StorageDirectory: join(dir, 's'), NoSuchOption: 1 }));
    const server = await startServer(path, { useBin: true });
    expect(server.stderr()).to.contain('NoSuchOption');
    const bytes = makeInstance({ pixelBytes: 256 * 1024 });
    // Send half the body, signal, then the rest: the upload must still be stored and answered.
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${server.url}/instances`, { method: 'POST', headers: { 'content-length': bytes.length } }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.write(bytes.subarray(0, bytes.length >> 1));
      setTimeout(() => {
        server.child.kill('SIGTERM');
        setTimeout(() => req.end(bytes.subarray(bytes.length >> 1)), 300);
      }, 300);
    });
    const res = await answer;
    expect(res.status).to.equal(200);
    expect(JSON.parse(res.body).Status).to.equal('Success');
    const exit = await server.exited;
    expect(exit.code).to.equal(0);
    // Restarted, the instance is there.
    const again = await startServer(path, { useBin: true });
    try {
      const stats = (await (await fetch(`${again.url}/statistics`)).json()) as { CountInstances: number };
      expect(stats.CountInstances).to.equal(1);
    } finally {
      again.child.kill('SIGINT');
      expect((await again.exited).code).to.equal(0);
    }
  });
});
