/**
 * WADO-URI over real HTTP: the stored file byte for byte (checked by DCMTK's dcmdump too), rendering asked
 * (406 with a message), bad input (400), unknown or mismatching UIDs (404), `WadoRoot` and `EnableWado`.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tempServer, type TestServer } from './helpers/context.js';
import { makeInstance } from './helpers/factory.js';

const CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const ST = '1.2.826.0.1.3680043.8.498.301';
const SE = '1.2.826.0.1.3680043.8.498.301.1';
const SOP = '1.2.826.0.1.3680043.8.498.301.1.1';

async function get(s: TestServer, path: string): Promise<{ status: number; body: Buffer; type: string }> {
  const res = await fetch(`${s.url}${path}`);
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()), type: res.headers.get('content-type') ?? '' };
}

describe('DICOMweb WADO-URI', function () {
  let s: TestServer;
  let file: Buffer;

  before(async function () {
    s = await tempServer();
    file = makeInstance({ studyInstanceUid: ST, seriesInstanceUid: SE, sopInstanceUid: SOP, patientName: 'WADO^URI' });
    await s.ctx.store.store(file, { kind: 'rest' });
  });

  after(async () => s.close());

  it('returns the stored file for contentType=application/dicom', async function () {
    for (const query of [
      `requestType=WADO&studyUID=${ST}&seriesUID=${SE}&objectUID=${SOP}&contentType=application%2Fdicom`,
      `requestType=WADO&objectUID=${SOP}&contentType=application/dicom&transferSyntax=1.2.840.10008.1.2.1`,
      `requestType=WADO&objectUID=${SOP}&contentType=image/jpeg,application/dicom&transferSyntax=*`,
    ]) {
      const a = await get(s, `/wado?${query}`);
      expect(a.status, query).to.equal(200);
      expect(a.type).to.equal('application/dicom');
      expect(a.body.equals(file), query).to.equal(true);
    }
    const dir = mkdtempSync(join(tmpdir(), 'he1-wado-'));
    try {
      const a = await get(s, `/wado?requestType=WADO&objectUID=${SOP}&contentType=application/dicom`);
      writeFileSync(join(dir, 'x.dcm'), a.body);
      const r = spawnSync('dcmdump', [join(dir, 'x.dcm')], { encoding: 'utf8' });
      if (r.error) this.skip();
      expect(r.stdout).to.contain('[WADO^URI]');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('returns a corpus file unchanged (big endian, as stored)', async function () {
    const big = readFileSync(join(CORPUS, 'MR_small_bigendian.dcm'));
    await s.ctx.store.store(big, { kind: 'rest' });
    const r = spawnSync('dcmdump', ['+P', '0008,0018', join(CORPUS, 'MR_small_bigendian.dcm')], { encoding: 'utf8' });
    if (r.error) this.skip();
    const sop = /\[([0-9.]+)\]/.exec(r.stdout)![1]!;
    const a = await get(s, `/wado?requestType=WADO&objectUID=${sop}&contentType=application/dicom`);
    expect(a.status).to.equal(200);
    expect(a.body.equals(big)).to.equal(true);
  });

  it('answers 406 with a message when rendering or transcoding is asked', async function () {
    for (const query of [
      `requestType=WADO&objectUID=${SOP}`,
      `requestType=WADO&objectUID=${SOP}&contentType=image/jpeg`,
      `requestType=WADO&objectUID=${SOP}&contentType=image/png`,
      `requestType=WADO&objectUID=${SOP}&contentType=application/dicom&transferSyntax=1.2.840.10008.1.2.4.50`,
    ]) {
      const a = await get(s, `/wado?${query}`);
      expect(a.status, query).to.equal(406);
      expect(JSON.parse(a.body.toString()).Details).to.match(/not available yet/);
    }
  });

  it('refuses bad requests (400) and unknown or mismatching UIDs (404)', async function () {
    for (const query of [
      `objectUID=${SOP}&contentType=application/dicom`,
      `requestType=WADOX&objectUID=${SOP}&contentType=application/dicom`,
      `requestType=WADO&contentType=application/dicom`,
      `requestType=WADO&objectUID=1.2.x&contentType=application/dicom`,
      `requestType=WADO&studyUID=abc&objectUID=${SOP}&contentType=application/dicom`,
    ]) {
      const a = await get(s, `/wado?${query}`);
      expect(a.status, query).to.equal(400);
      expect(JSON.parse(a.body.toString()).HttpStatus).to.equal(400);
    }
    for (const query of [
      `requestType=WADO&objectUID=1.2.3.4&contentType=application/dicom`,
      `requestType=WADO&studyUID=1.2.3&objectUID=${SOP}&contentType=application/dicom`,
      `requestType=WADO&seriesUID=1.2.3&objectUID=${SOP}&contentType=application/dicom`,
    ]) {
      const a = await get(s, `/wado?${query}`);
      expect(a.status, query).to.equal(404);
      expect(JSON.parse(a.body.toString()).HttpStatus).to.equal(404);
    }
  });

  it('follows WadoRoot and EnableWado', async function () {
    const moved = await tempServer({ DicomWeb: { WadoRoot: '/legacy/wado' } });
    const off = await tempServer({ DicomWeb: { EnableWado: false } });
    try {
      await moved.ctx.store.store(file, { kind: 'rest' });
      await off.ctx.store.store(file, { kind: 'rest' });
      const q = `requestType=WADO&objectUID=${SOP}&contentType=application/dicom`;
      expect((await get(moved, `/legacy/wado?${q}`)).body.equals(file)).to.equal(true);
      expect((await get(moved, `/wado?${q}`)).status).to.equal(404);
      expect((await get(off, `/wado?${q}`)).status).to.equal(404);
      // QIDO still answers with WADO-URI off.
      expect((await get(off, '/dicom-web/studies')).status).to.equal(200);
    } finally {
      await moved.close();
      await off.close();
    }
  });
});
