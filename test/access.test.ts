/** Access control with Orthanc's semantics (DicomModalities, DicomAlwaysAllow*, called AET, modality host). */
import { expect } from 'chai';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDicomHandlers } from '../src/app/dicom-handlers.js';
import type { Config } from '../src/config/schema.js';
import { DicomScpServer } from '../src/dimse/scp/server.js';
import { ModalityRegistry, parseModality } from '../src/modalities/registry.js';
import { makeInstance } from './helpers/factory.js';
import { tempContext, type TestContext } from './helpers/context.js';
import { run } from './helpers/interop.js';

describe('modality registry', function () {
  it('reads the short and the long forms, with the Allow* flags defaulting to true', () => {
    expect(parseModality('a', ['AET1', 'host', 104])).to.include({ aet: 'AET1', host: 'host', port: 104, allowFind: true, manufacturer: 'Generic' });
    expect(parseModality('b', ['AET2', 'h', '11112', 'GE'])).to.include({ port: 11112, manufacturer: 'GE' });
    expect(parseModality('c', { AET: 'C', Host: 'h', Port: 1, AllowStore: false })).to.include({ allowStore: false, allowEcho: true });
  });

  it('reads UseDicomTls (long form only, default false)', () => {
    expect(parseModality('a', ['AET1', 'host', 104]).useDicomTls).to.equal(false);
    expect(parseModality('c', { AET: 'C', Host: 'h', Port: 1 }).useDicomTls).to.equal(false);
    expect(parseModality('d', { AET: 'D', Host: 'h', Port: 1, UseDicomTls: true }).useDicomTls).to.equal(true);
    expect(() => parseModality('e', { AET: 'E', Host: 'h', Port: 1, UseDicomTls: 1 })).to.throw(/UseDicomTls must be a Boolean/);
  });

  it('refuses malformed entries with a message naming them', () => {
    expect(() => parseModality('x', ['A', 'h'])).to.throw(/DicomModalities.x/);
    expect(() => parseModality('y', { AET: '', Host: 'h', Port: 1 })).to.throw(/AET must be 1..16/);
    expect(() => parseModality('z', { AET: 'Z', Host: 'h', Port: 70000 })).to.throw(/Port must be/);
    expect(() => parseModality('w', { AET: 'W', Host: 'h', Port: 1, AllowFind: 'yes' })).to.throw(/AllowFind must be a Boolean/);
  });

  it('applies Orthanc\'s connection and request rules', () => {
    const none = { echo: false, store: false, find: false, get: false, move: false };
    const reg = new ModalityRegistry(
      { a: { AET: 'KNOWN', Host: '10.0.0.9', Port: 104, AllowFind: false } },
      { checkCalledAet: true, ourAet: 'US', checkModalityHost: true, strictAetComparison: false, alwaysAllow: none },
    );
    expect(reg.isAllowedConnection('KNOWN', 'US', '10.0.0.9')).to.equal('ok');
    expect(reg.isAllowedConnection('known', 'us', '::ffff:10.0.0.9')).to.equal('ok');
    expect(reg.isAllowedConnection('KNOWN', 'OTHER', '10.0.0.9')).to.equal('called');
    expect(reg.isAllowedConnection('KNOWN', 'US', '10.0.0.8')).to.equal('calling');
    expect(reg.isAllowedConnection('STRANGER', 'US', '10.0.0.9')).to.equal('calling');
    expect(reg.isAllowedRequest('echo', 'KNOWN', '10.0.0.9')).to.equal(true);
    expect(reg.isAllowedRequest('find', 'KNOWN', '10.0.0.9')).to.equal(false);
    const open = new ModalityRegistry({}, { checkCalledAet: false, ourAet: 'US', checkModalityHost: false, strictAetComparison: true, alwaysAllow: { ...none, store: true } });
    expect(open.isAllowedConnection('ANYONE', 'X', '1.2.3.4')).to.equal('ok');
    expect(open.isAllowedRequest('store', 'ANYONE', '1.2.3.4')).to.equal(true);
    expect(open.isAllowedRequest('echo', 'ANYONE', '1.2.3.4')).to.equal(false);
  });
});

describe('DICOM access control with DCMTK peers', function () {
  this.timeout(60000);
  let dir: string;
  before(function () {
    if (!existsSync('/usr/bin/echoscu')) this.skip(); // dcmtk is installed by .ci/run
    dir = mkdtempSync(join(tmpdir(), 'pacsnode-access-'));
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function withServer(overrides: Partial<Config>, body: (port: number, t: TestContext) => Promise<void>) {
    const t = await tempContext(overrides);
    const server = new DicomScpServer(createDicomHandlers(t.ctx), { aet: 'PACSNODE', maxPduLength: 16384, idleTimeoutMs: 30000 });
    const port = await server.listen(0, '127.0.0.1');
    try {
      await body(port, t);
    } finally {
      await server.close(500);
      await t.close();
    }
  }

  const strict = { DicomAlwaysAllowEcho: false, DicomAlwaysAllowStore: false, DicomAlwaysAllowFind: false } satisfies Partial<Config>;

  it('rejects an unknown calling AE title when nothing is always allowed', async () => {
    await withServer({ ...strict, DicomModalities: { known: ['KNOWN', '127.0.0.1', 104] } }, async (port) => {
      const stranger = await run('echoscu', ['-aet', 'STRANGER', '-aec', 'PACSNODE', '127.0.0.1', String(port)]);
      expect(stranger.code).to.not.equal(0);
      expect(stranger.out).to.match(/Association Rejected|Calling AE Title Not Recognized/i);
      const known = await run('echoscu', ['-aet', 'KNOWN', '-aec', 'PACSNODE', '127.0.0.1', String(port)]);
      expect(known.code, known.out).to.equal(0);
    });
  });

  it('refuses at negotiation a service the modality may not use (AllowStore false), and allows the others', async () => {
    await withServer({ ...strict, DicomModalities: { m: { AET: 'M', Host: '127.0.0.1', Port: 104, AllowStore: false } } }, async (port, t) => {
      const file = join(dir, 'one.dcm');
      writeFileSync(file, makeInstance());
      const store = await run('storescu', ['-aet', 'M', '-aec', 'PACSNODE', '127.0.0.1', String(port), file]);
      expect(store.code).to.not.equal(0);
      expect(t.ctx.index.statistics().countInstances).to.equal(0);
      const echo = await run('echoscu', ['-aet', 'M', '-aec', 'PACSNODE', '127.0.0.1', String(port)]);
      expect(echo.code, echo.out).to.equal(0);
    });
  });

  it('DicomAlwaysAllowStore lets any calling AE title store, and only store', async () => {
    const file = join(dir, 'stranger.dcm');
    writeFileSync(file, makeInstance());
    await withServer({ ...strict, DicomAlwaysAllowStore: true }, async (port, t) => {
      const store = await run('storescu', ['-aet', 'STRANGER', '-aec', 'PACSNODE', '127.0.0.1', String(port), file]);
      expect(store.code, store.out).to.equal(0);
      expect(t.ctx.index.statistics().countInstances).to.equal(1);
      const echo = await run('echoscu', ['-aet', 'STRANGER', '-aec', 'PACSNODE', '127.0.0.1', String(port)]);
      expect(echo.code).to.not.equal(0);
    });
    await withServer(strict, async (port, t) => {
      const store = await run('storescu', ['-aet', 'STRANGER', '-aec', 'PACSNODE', '127.0.0.1', String(port), file]);
      expect(store.code).to.not.equal(0);
      expect(t.ctx.index.statistics().countInstances).to.equal(0);
    });
  });

  it('checks the called AE title and the modality host when asked', async () => {
    await withServer({ DicomCheckCalledAet: true, DicomAet: 'PACSNODE' }, async (port) => {
      const wrong = await run('echoscu', ['-aec', 'SOMEONE', '127.0.0.1', String(port)]);
      expect(wrong.out).to.match(/Association Rejected|Called AE Title Not Recognized/i);
      const right = await run('echoscu', ['-aec', 'PACSNODE', '127.0.0.1', String(port)]);
      expect(right.code, right.out).to.equal(0);
    });
    await withServer({ ...strict, DicomCheckModalityHost: true, DicomModalities: { far: ['FAR', '10.9.9.9', 104] } }, async (port) => {
      const r = await run('echoscu', ['-aet', 'FAR', '-aec', 'PACSNODE', '127.0.0.1', String(port)]);
      expect(r.out).to.match(/Association Rejected|Calling AE Title Not Recognized/i);
    });
  });
});
