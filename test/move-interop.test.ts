/** C-MOVE SCP with DCMTK movescu, sub-operations to a DCMTK storescp (bit-preserving) declared as a modality. */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDicomHandlers } from '../src/app/dicom-handlers.js';
import type { Config } from '../src/config/schema.js';
import { readPart10 } from '../src/dicom/reader.js';
import { Tags } from '../src/dicom/tag.js';
import { DicomScpServer } from '../src/dimse/scp/server.js';
import { makeInstance } from './helpers/factory.js';
import { tempContext, type TestContext } from './helpers/context.js';
import { freePort, run } from './helpers/interop.js';

const CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files/';

const dataset = (file: Buffer) => file.subarray(readPart10(file, { untilPixelData: true }).datasetOffset);

async function waitFor(condition: () => boolean, ms = 15000): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('C-MOVE SCP with DCMTK movescu and storescp', function () {
  this.timeout(60000);
  let dir: string;
  let storescp: ChildProcess;
  let scpPort: number;
  const sent = new Map<string, Buffer>();

  before(async function () {
    if (!existsSync('/usr/bin/movescu')) this.skip(); // dcmtk is installed by .ci/run
    dir = mkdtempSync(join(tmpdir(), 'pacsnode-move-'));
    scpPort = await freePort();
    // The destination: uncompressed syntaxes only (storescp's default), bit-preserving.
    storescp = spawn('storescp', ['+B', '-od', dir, '-aet', 'DEST', String(scpPort)], { env: { ...process.env, TCP_NODELAY: '1' }, stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 500));
  });
  after(() => {
    storescp?.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function withServer(overrides: Partial<Config>, body: (port: number, t: TestContext) => Promise<void>) {
    const t = await tempContext({ DicomModalities: { dest: ['DEST', '127.0.0.1', scpPort], movescu: ['MOVESCU', '127.0.0.1', 104] }, ...overrides });
    for (let i = 0; i < 4; i++) {
      const sop = `1.2.826.0.1.99.7.1.${i}`;
      const file = makeInstance({ patientId: 'MV', studyInstanceUid: '1.2.826.0.1.99.7', seriesInstanceUid: '1.2.826.0.1.99.7.1', sopInstanceUid: sop, instanceNumber: i + 1 });
      sent.set(sop, file);
      await t.ctx.store.store(file, { kind: 'rest' });
    }
    const server = new DicomScpServer(createDicomHandlers(t.ctx), { aet: 'PACSNODE', maxPduLength: 16384, idleTimeoutMs: 30000 });
    const port = await server.listen(0, '127.0.0.1');
    try {
      await body(port, t);
    } finally {
      await server.close(500);
      await t.close();
    }
  }

  const receivedFiles = () => readdirSync(dir).filter((f) => !f.startsWith('.'));

  it('moves a study to a declared destination, bytes unchanged, with pending counts', async () => {
    await withServer({}, async (port) => {
      const before = receivedFiles().length;
      const r = await run('movescu', ['-v', '-S', '-aec', 'PACSNODE', '-aem', 'DEST', '-k', 'QueryRetrieveLevel=STUDY', '-k', 'StudyInstanceUID=1.2.826.0.1.99.7', '127.0.0.1', String(port)]);
      expect(r.out).to.match(/Received Final Move Response \(Success\)/);
      expect(r.out).to.match(/Received Move Response \d+ \(Pending\)/);
      const files = receivedFiles().slice(before);
      expect(files).to.have.length(4);
      for (const f of files) {
        const bytes = readFileSync(join(dir, f));
        const sop = readPart10(bytes).dataset.string(Tags.SOPInstanceUID)!;
        expect(dataset(bytes).equals(dataset(sent.get(sop)!)), sop).to.equal(true);
      }
    });
  });

  it('refuses an unknown destination with A801', async () => {
    await withServer({}, async (port) => {
      const r = await run('movescu', ['-v', '-S', '-aec', 'PACSNODE', '-aem', 'NOBODY', '-k', 'QueryRetrieveLevel=STUDY', '-k', 'StudyInstanceUID=1.2.826.0.1.99.7', '127.0.0.1', String(port)]);
      expect(r.out).to.match(/MoveDestinationUnknown/);
    });
  });

  it('counts what the destination cannot take as failed (a JPEG 2000 instance, no transcoding yet)', async function () {
    if (!existsSync(CORPUS)) this.skip(); // python3-pydicom is installed by .ci/run
    await withServer({}, async (port, t) => {
      const j2k = readFileSync(`${CORPUS}JPEG2000.dcm`);
      await t.ctx.store.store(j2k, { kind: 'rest' });
      const study = readPart10(j2k).dataset.string(Tags.StudyInstanceUID)!;
      const r = await run('movescu', ['-v', '-S', '-aec', 'PACSNODE', '-aem', 'DEST', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${study}`, '127.0.0.1', String(port)]);
      expect(r.out).to.match(/Final Move Response \(Refused: OutOfResourcesSubOperations\)|Number of Failed Suboperations\s*:\s*1/);
    });
  });

  it('answers at once and sends as a DicomModalityStore job when SynchronousCMove is false', async () => {
    await withServer({ SynchronousCMove: false }, async (port, t) => {
      for (const f of receivedFiles()) rmSync(join(dir, f)); // storescp would overwrite files of the same names
      const r = await run('movescu', ['-v', '-S', '-aec', 'PACSNODE', '-aet', 'MOVESCU', '-aem', 'DEST', '-k', 'QueryRetrieveLevel=SERIES', '-k', 'StudyInstanceUID=1.2.826.0.1.99.7', '-k', 'SeriesInstanceUID=1.2.826.0.1.99.7.1', '127.0.0.1', String(port)]);
      expect(r.out).to.match(/Received Final Move Response \(Success\)/);
      expect(r.out).to.not.match(/Pending/);
      await waitFor(() => receivedFiles().length >= 4);
      for (const f of receivedFiles()) {
        const file = readFileSync(join(dir, f));
        const sop = readPart10(file).dataset.string(Tags.SOPInstanceUID)!;
        expect(dataset(file).equals(dataset(sent.get(sop)!)), sop).to.equal(true);
      }
      const [jobId] = t.ctx.jobs.list();
      expect(jobId).to.be.a('string');
      await waitFor(() => t.ctx.jobs.info(jobId!)?.State === 'Success');
      expect(t.ctx.jobs.info(jobId!)).to.deep.include({ Type: 'DicomModalityStore', Progress: 100 });
      expect(t.ctx.jobs.info(jobId!)!.Content).to.deep.equal({
        Description: 'C-MOVE',
        FailedInstancesCount: 0,
        InstancesCount: 4,
        LocalAet: t.ctx.config.DicomAet,
        ParentResources: [],
        RemoteAet: 'DEST',
        MoveOriginatorAET: 'MOVESCU',
        MoveOriginatorID: 1,
      });
    });
  });

  it('an asynchronous C-MOVE to a destination that does not answer fails its job, with the reason', async () => {
    const nobody = await freePort();
    await withServer({ SynchronousCMove: false, DicomModalities: { gone: ['GONE', '127.0.0.1', nobody], movescu: ['MOVESCU', '127.0.0.1', 104] } }, async (port, t) => {
      const r = await run('movescu', ['-v', '-S', '-aec', 'PACSNODE', '-aem', 'GONE', '-k', 'QueryRetrieveLevel=STUDY', '-k', 'StudyInstanceUID=1.2.826.0.1.99.7', '127.0.0.1', String(port)]);
      expect(r.out).to.match(/Received Final Move Response \(Success\)/);
      const [jobId] = t.ctx.jobs.list();
      await waitFor(() => t.ctx.jobs.info(jobId!)?.State === 'Failure');
      const info = t.ctx.jobs.info(jobId!)!;
      expect(info.ErrorCode).to.equal(9);
      expect(info.ErrorDetails).to.contain('C-STORE to GONE');
    });
  });
});
