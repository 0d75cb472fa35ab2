/**
 * The DICOM server against real peers: DCMTK's echoscu and storescu (Debian package dcmtk, installed by .ci/run),
 * on loopback with port 0, and a scripted raw-TCP peer sending hostile bytes.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDicomHandlers } from '../src/app/dicom-handlers.js';
import { readPart10 } from '../src/dicom/reader.js';
import { Tags } from '../src/dicom/tag.js';
import { DicomScpServer } from '../src/dimse/scp/server.js';
import { MetadataType } from '../src/store/sqlite-index.js';
import { makeInstance } from './helpers/factory.js';
import { tempContext, type TestContext } from './helpers/context.js';
import { freePort, run } from './helpers/interop.js';

const CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files/';

/** The dataset part of a Part 10 file (after the meta header), as bytes. */
function datasetBytes(file: Buffer): Buffer {
  const parsed = readPart10(file, { untilPixelData: true });
  return file.subarray(parsed.datasetOffset);
}

/** storescu's option proposing a file's own transfer syntax. */
const PROPOSE: Record<string, string> = {
  '1.2.840.10008.1.2': '-xi',
  '1.2.840.10008.1.2.1': '-xe',
  '1.2.840.10008.1.2.2': '-xb',
  '1.2.840.10008.1.2.1.99': '-xd',
  '1.2.840.10008.1.2.4.50': '-xy',
  '1.2.840.10008.1.2.4.51': '-xx',
  '1.2.840.10008.1.2.4.57': '-xs',
  '1.2.840.10008.1.2.4.70': '-xs',
  '1.2.840.10008.1.2.4.80': '-xt',
  '1.2.840.10008.1.2.4.81': '-xu',
  '1.2.840.10008.1.2.4.90': '-xv',
  '1.2.840.10008.1.2.4.91': '-xw',
  '1.2.840.10008.1.2.5': '-xr',
};

describe('DICOM server with real peers (DCMTK)', function () {
  this.timeout(120000);
  let t: TestContext;
  let server: DicomScpServer;
  let port: number;
  let dir: string;

  before(async function () {
    if (!existsSync('/usr/bin/storescu')) this.skip(); // dcmtk is installed by .ci/run
    t = await tempContext();
    server = new DicomScpServer(createDicomHandlers(t.ctx), { aet: 'PACSNODE', maxPduLength: 16384, idleTimeoutMs: 30000 });
    port = await server.listen(0, '127.0.0.1');
    dir = mkdtempSync(join(tmpdir(), 'pacsnode-scu-'));
  });
  after(async () => {
    await server?.close(1000);
    await t?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Checks that the instance of `file` is stored with its dataset byte for byte; returns its index row. */
  async function expectStoredAsSent(file: Buffer) {
    const sop = readPart10(file).dataset.string(Tags.SOPInstanceUID)!;
    const [row] = t.ctx.index.lookup(3, [{ tag: Tags.SOPInstanceUID, level: 3, kind: 'equal', value: sop, caseSensitive: true }]);
    expect(row, `instance ${sop} stored`).to.not.equal(undefined);
    const stored = await t.ctx.store.readDicom(row!.publicId);
    expect(datasetBytes(stored).equals(datasetBytes(file)), `dataset of ${file.length} bytes`).to.equal(true);
    return row!;
  }

  it('answers echoscu', async () => {
    const r = await run('echoscu', ['-aec', 'PACSNODE', '127.0.0.1', String(port)]);
    expect(r.code, r.out).to.equal(0);
  });

  it('stores what storescu sends, dataset byte-identical, with origin metadata', async () => {
    const files = Array.from({ length: 5 }, (_, i) => makeInstance({ patientId: 'SCU', instanceNumber: i + 1, pixelBytes: 40000 }));
    const paths = files.map((f, i) => {
      const p = join(dir, `gen${i}.dcm`);
      writeFileSync(p, f);
      return p;
    });
    const r = await run('storescu', ['-aet', 'MODALITY1', '-aec', 'PACSNODE', '127.0.0.1', String(port), ...paths]);
    expect(r.code, r.out).to.equal(0);
    for (const file of files) {
      const row = await expectStoredAsSent(file);
      const meta = new Map(t.ctx.index.metadata(row!.id).map((m) => [m.type, m.value]));
      expect(meta.get(MetadataType.RemoteAET)).to.equal('MODALITY1');
      expect(meta.get(MetadataType.CalledAET)).to.equal('PACSNODE');
      expect(meta.get(MetadataType.Origin)).to.equal('DicomProtocol');
    }
  });

  it('stores datasets on both sides of the in-memory limit (collected whole, or streamed) over one association, byte-identical', async () => {
    // Just under, just over and well over IN_MEMORY_DATASET (1 MiB), then a small one after the streamed ones.
    const sizes = [(1 << 20) - 2000, (1 << 20) + 2000, 3 << 20, 1000];
    const files = sizes.map((pixelBytes, i) => makeInstance({ patientId: 'LIMIT', instanceNumber: i + 1, pixelBytes }));
    const paths = files.map((f, i) => {
      const p = join(dir, `limit${i}.dcm`);
      writeFileSync(p, f);
      return p;
    });
    const r = await run('storescu', ['-aec', 'PACSNODE', '127.0.0.1', String(port), ...paths]);
    expect(r.code, r.out).to.equal(0);
    for (const file of files) await expectStoredAsSent(file);
  });

  it('stores every pydicom corpus file DCMTK can send, byte-identical to what DCMTK\'s own bit-preserving storescp receives', async function () {
    if (!existsSync(CORPUS)) this.skip(); // python3-pydicom is installed by .ci/run
    // The reference is what went over the wire, not the file: storescu drops group lengths, pads odd values...
    // DCMTK's storescp +B writes exactly what it received.
    const refDir = mkdtempSync(join(tmpdir(), 'pacsnode-storescp-'));
    const refPort = await freePort();
    const storescp = spawn('storescp', ['+xa', '+B', '-od', refDir, '-aet', 'REF', String(refPort)], {
      env: { ...process.env, TCP_NODELAY: '1' },
      stdio: 'ignore',
    });
    await new Promise((r) => setTimeout(r, 500));
    try {
      let sent = 0;
      // Several corpus files are the same instance in other syntaxes (same SOP Instance UID): the first one counts.
      const seen = new Set<string>();
      for (const name of readdirSync(CORPUS).filter((f) => f.endsWith('.dcm')).sort()) {
        const bytes = readFileSync(CORPUS + name);
        let parsed;
        try {
          parsed = readPart10(bytes);
        } catch {
          continue; // not a file any peer would send
        }
        const option = PROPOSE[parsed.transferSyntaxUid];
        const sop = parsed.dataset.string(Tags.SOPInstanceUID);
        if (!option || !parsed.hasMetaHeader || parsed.truncated || parsed.encodingMismatch || !sop || seen.has(sop)) continue;
        seen.add(sop);
        const ref = await run('storescu', ['-R', option, '-aec', 'REF', '127.0.0.1', String(refPort), CORPUS + name]);
        if (ref.code !== 0) continue; // DCMTK itself cannot send it
        const r = await run('storescu', ['-R', option, '-aec', 'PACSNODE', '127.0.0.1', String(port), CORPUS + name]);
        expect(r.code, `${name}: ${r.out}`).to.equal(0);
        const refFile = readdirSync(refDir).find((f) => f.endsWith(sop));
        expect(refFile, `${name} received by storescp`).to.not.equal(undefined);
        const wire = readFileSync(join(refDir, refFile!));
        const [row] = t.ctx.index.lookup(3, [{ tag: Tags.SOPInstanceUID, level: 3, kind: 'equal', value: sop, caseSensitive: true }]);
        expect(row, `${name} stored`).to.not.equal(undefined);
        const stored = await t.ctx.store.readDicom(row!.publicId);
        expect(readPart10(stored).transferSyntaxUid, name).to.equal(parsed.transferSyntaxUid);
        expect(datasetBytes(stored).equals(datasetBytes(wire)), `${name} byte-identical to the wire`).to.equal(true);
        sent++;
      }
      expect(sent, 'distinct corpus instances sent').to.be.greaterThan(25);
    } finally {
      storescp.kill();
      rmSync(refDir, { recursive: true, force: true });
    }
  });

  it('aborts or closes on hostile input and keeps serving other associations', async () => {
    const garbage = [
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
      Buffer.from([0x01, 0x00, 0xff, 0xff, 0xff, 0xff]), // A-ASSOCIATE-RQ declaring 4 GB
      Buffer.from([0x04, 0x00, 0x00, 0x00, 0x00, 0x06, 0, 0, 0, 2, 1, 0x03]), // a complete P-DATA-TF before any association
      Buffer.from([0x01, 0x00, 0x00, 0x00, 0x00, 0x08, 0, 1, 0, 0, 0, 0, 0, 0]), // truncated RQ
    ];
    for (const bytes of garbage) {
      const reply = await new Promise<Buffer>((resolve) => {
        const socket = connect(port, '127.0.0.1');
        socket.on('data', (d) => {
          resolve(d);
          socket.destroy();
        });
        socket.on('close', () => resolve(Buffer.alloc(0)));
        socket.on('error', () => undefined);
        socket.write(bytes);
        setTimeout(() => socket.destroy(), 5000).unref();
      });
      // An A-ABORT (type 0x07) at once, or the connection closed.
      if (reply.length > 0) expect(reply[0], bytes.subarray(0, 6).toString('hex')).to.equal(0x07);
      if (bytes[0] === 0x01 && bytes.length === 6) expect(reply[0], 'a 4 GB A-ASSOCIATE-RQ is aborted at once').to.equal(0x07);
    }
    const r = await run('echoscu', ['-aec', 'PACSNODE', '127.0.0.1', String(port)]);
    expect(r.code, r.out).to.equal(0);
  });

  it('serves four storescu at once', async () => {
    const batches = Array.from({ length: 4 }, (_, b) =>
      Array.from({ length: 5 }, (_, i) => {
        const p = join(dir, `par${b}-${i}.dcm`);
        writeFileSync(p, makeInstance({ patientId: `PAR${b}` }));
        return p;
      }),
    );
    const before = t.ctx.index.statistics().countInstances;
    const results = await Promise.all(batches.map((paths) => run('storescu', ['-aec', 'PACSNODE', '127.0.0.1', String(port), ...paths])));
    for (const r of results) expect(r.code, r.out).to.equal(0);
    expect(t.ctx.index.statistics().countInstances).to.equal(before + 20);
  });
});
