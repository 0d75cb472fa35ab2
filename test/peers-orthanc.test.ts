/**
 * A real Orthanc (Debian package orthanc, /usr/sbin/Orthanc) as a peer of pacsnode, both on loopback: Orthanc is
 * started with a temp configuration (free HTTP and DICOM ports, temp storage, pacsnode declared as a modality) and
 * only that process is stopped afterwards. Checked both ways: pacsnode's echo and store SCUs against Orthanc's SCP,
 * and Orthanc's SCUs (echo, store, C-FIND, C-MOVE through its REST API) against pacsnode's DicomScpServer, with
 * Orthanc declared in pacsnode's DicomModalities.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDicomHandlers } from '../src/app/dicom-handlers.js';
import { readPart10 } from '../src/dicom/reader.js';
import { Tags } from '../src/dicom/tag.js';
import { ImplicitVRLittleEndian } from '../src/dicom/transfer-syntax.js';
import { DicomScpServer } from '../src/dimse/scp/server.js';
import { echo } from '../src/dimse/scu/echo.js';
import { storeInstances } from '../src/dimse/scu/store.js';
import { Status } from '../src/dimse/status.js';
import { MetadataType } from '../src/store/sqlite-index.js';
import { tempContext, type TestContext } from './helpers/context.js';
import { makeInstance } from './helpers/factory.js';
import { datasetBytes, expectSameValues, findInstance, freePort, waitFor } from './helpers/interop.js';

const ORTHANC = '/usr/sbin/Orthanc';
const ORTHANC_AET = 'ORTHANCPEER';
const PACSNODE_AET = 'PACSNODE';

interface RunningOrthanc {
  child: ChildProcess;
  url: string;
  dicomPort: number;
  log: () => string;
  stop(): Promise<void>;
}

/** Starts Orthanc with a temp configuration on the given ports; resolves once its REST API answers. */
async function startOrthanc(dir: string, ports: { http: number; dicom: number; pacsnode: number }): Promise<RunningOrthanc> {
  const config = {
    Name: 'pacsnode-peer-test',
    StorageDirectory: join(dir, 'storage'),
    IndexDirectory: join(dir, 'storage'),
    HttpPort: ports.http,
    DicomPort: ports.dicom,
    DicomAet: ORTHANC_AET,
    RemoteAccessAllowed: false, // HTTP from loopback only (Orthanc 1.10 has no bind address for its DICOM port)
    AuthenticationEnabled: false,
    Plugins: [],
    DicomModalities: { pacsnode: [PACSNODE_AET, '127.0.0.1', ports.pacsnode] },
    DicomAlwaysAllowEcho: true,
    DicomAlwaysAllowStore: true,
    DicomAssociationCloseDelay: 0,
    DicomScuTimeout: 10,
    SyncStorageArea: false,
    SaveJobs: false,
    OrthancExplorerEnabled: false,
    WebDavEnabled: false,
    MetricsEnabled: false,
    HttpThreadsCount: 4,
    DicomThreadsCount: 2,
  };
  const configPath = join(dir, 'orthanc.json');
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  let log = '';
  // TCP_NODELAY=1: DCMTK inside Orthanc otherwise stalls each response ~40 ms (STYLE.md).
  const child = spawn(ORTHANC, [configPath], { env: { ...process.env, TCP_NODELAY: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  let gone = false;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      gone = true;
      resolve();
    }),
  );
  const url = `http://127.0.0.1:${ports.http}`;
  const stop = async () => {
    if (gone) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await waitFor(async () => {
      if (gone) throw new Error(`Orthanc exited at start:\n${log}`);
      try {
        return (await fetch(`${url}/system`)).ok;
      } catch {
        return false;
      }
    }, 'Orthanc to start', 30000);
  } catch (e) {
    await stop();
    throw e;
  }
  return { child, url, dicomPort: ports.dicom, log: () => log, stop };
}

/** An Orthanc answer in its "full" JSON form: tag -> {Name, Type, Value}. */
type OrthancTags = Record<string, { Name: string; Type: string; Value: unknown }>;

describe(existsSync(ORTHANC) ? 'Orthanc 1.10 as a peer' : `Orthanc as a peer (skipped: ${ORTHANC} is missing)`, function () {
  this.timeout(90000);
  let dir: string;
  let t: TestContext;
  let server: DicomScpServer;
  let orthanc: RunningOrthanc;

  const rest = async <T = unknown>(method: string, path: string, body?: string | Buffer | object): Promise<T> => {
    const payload = body === undefined || typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    const res = await fetch(`${orthanc.url}${path}`, { method, body: payload });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status}: ${text}\n--- Orthanc log ---\n${orthanc.log().slice(-4000)}`);
    return (text ? JSON.parse(text) : undefined) as T;
  };
  const orthancFile = async (id: string) => Buffer.from(await (await fetch(`${orthanc.url}/instances/${id}/file`)).arrayBuffer());
  const orthancInstances = () => rest<string[]>('GET', '/instances');
  const ourTarget = () => ({ host: '127.0.0.1', port: orthanc.dicomPort, callingAet: PACSNODE_AET, calledAet: ORTHANC_AET });

  before(async function () {
    if (!existsSync(ORTHANC)) this.skip(); // Debian package orthanc
    dir = mkdtempSync(join(tmpdir(), 'pacsnode-orthanc-'));
    // Each side's configuration names the other's DICOM port: Orthanc's ports are picked free first (it cannot
    // listen on port 0), pacsnode listens on port 0, then Orthanc starts.
    const http = await freePort();
    const dicom = await freePort();
    t = await tempContext({
      DicomAet: PACSNODE_AET,
      // The long form, granting the two services pacsnode's defaults (Orthanc's: DicomAlwaysAllowFind/Move false) do not.
      DicomModalities: { orthanc: { AET: ORTHANC_AET, Host: '127.0.0.1', Port: dicom, AllowFind: true, AllowMove: true } },
    });
    server = new DicomScpServer(createDicomHandlers(t.ctx), { aet: PACSNODE_AET, maxPduLength: 16384, idleTimeoutMs: 30000 });
    const pacsnode = await server.listen(0, '127.0.0.1');
    orthanc = await startOrthanc(dir, { http, dicom, pacsnode });
  });
  after(async () => {
    await orthanc?.stop();
    await server?.close(1000);
    await t?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe('pacsnode SCUs -> Orthanc', () => {
    it('C-ECHO', async () => {
      expect(await echo(ourTarget())).to.equal(Status.Success);
    });

    it('C-STORE: the instances appear in Orthanc under the public IDs pacsnode computes, with the values sent', async () => {
      const studyInstanceUid = '1.2.826.0.1.3680043.99.51';
      const files = [
        makeInstance({ patientId: 'TOORTHANC', studyInstanceUid, instanceNumber: 1, pixelBytes: 60000 }),
        makeInstance({ patientId: 'TOORTHANC', studyInstanceUid, instanceNumber: 2, transferSyntaxUid: ImplicitVRLittleEndian }),
        makeInstance({ patientId: 'TOORTHANC', studyInstanceUid, instanceNumber: 3, extra: [{ tag: 0x00090010, vr: 'LO', value: 'PACSNODE TEST' }, { tag: 0x00091001, vr: 'OB', value: Buffer.from([9, 8, 7, 6]) }] }),
      ];
      const summary = await storeInstances(ourTarget(), files.map((bytes, i) => ({ bytes, name: `to-orthanc-${i}` })));
      expect(summary.results.map((r) => `${r.outcome} ${r.message ?? ''}`.trim())).to.deep.equal(['sent', 'sent', 'sent']);
      const inOrthanc = new Set(await orthancInstances());
      for (const file of files) {
        // pacsnode's IDs for the same file, through its own ingestion path (Orthanc's formula: SHA-1 of the UID chain).
        const ours = await t.ctx.store.store(file, { kind: 'rest' });
        expect(inOrthanc.has(ours.ID), `instance ${ours.ID} in Orthanc`).to.equal(true);
        const info = await rest<{ ParentSeries: string }>('GET', `/instances/${ours.ID}`);
        expect(info.ParentSeries).to.equal(ours.ParentSeries);
        const series = await rest<{ ParentStudy: string }>('GET', `/series/${ours.ParentSeries}`);
        expect(series.ParentStudy).to.equal(ours.ParentStudy);
        const study = await rest<{ ParentPatient: string }>('GET', `/studies/${ours.ParentStudy}`);
        expect(study.ParentPatient).to.equal(ours.ParentPatient);
        // Orthanc writes what DCMTK decoded: values first (a readable diff), then bytes, which DCMTK writes back
        // unchanged for files already in its canonical form (even lengths, no group lengths), as ours are.
        const storedFile = await orthancFile(ours.ID);
        const stored = readPart10(storedFile);
        const sent = readPart10(file);
        expect(stored.transferSyntaxUid).to.equal(sent.transferSyntaxUid);
        expectSameValues(sent.dataset, stored.dataset, ours.ID);
        expect(datasetBytes(storedFile).equals(datasetBytes(file)), `${ours.ID}: dataset bytes`).to.equal(true);
      }
    });
  });

  describe('Orthanc SCUs -> pacsnode', () => {
    it('C-ECHO (POST /modalities/pacsnode/echo)', async () => {
      await rest('POST', '/modalities/pacsnode/echo', {});
    });

    it('C-STORE (POST /modalities/pacsnode/store): the instance arrives, dataset byte-identical', async () => {
      const file = makeInstance({ patientId: 'FROMORTHANC', patientName: 'FROM^ORTHANC', pixelBytes: 30000 });
      const uploaded = await rest<{ ID: string; Status: string }>('POST', '/instances', file);
      expect(uploaded.Status).to.equal('Success');
      const job = await rest<Record<string, unknown>>('POST', '/modalities/pacsnode/store', { Resources: [uploaded.ID], Synchronous: true });
      expect(job.FailedInstancesCount ?? 0, JSON.stringify(job)).to.equal(0);
      const sop = readPart10(file).dataset.string(Tags.SOPInstanceUID)!;
      const row = findInstance(t.ctx, sop);
      expect(row, 'stored in pacsnode').to.not.equal(undefined);
      expect(row!.publicId, 'same public ID on both sides').to.equal(uploaded.ID);
      const stored = await t.ctx.store.readDicom(row!.publicId);
      const sentByOrthanc = await orthancFile(uploaded.ID);
      expect(datasetBytes(stored).equals(datasetBytes(sentByOrthanc)), 'dataset as Orthanc holds it').to.equal(true);
      expect(datasetBytes(stored).equals(datasetBytes(file)), 'dataset as uploaded').to.equal(true);
      const meta = new Map(t.ctx.index.metadata(row!.id).map((m) => [m.type, m.value]));
      expect(meta.get(MetadataType.RemoteAET)).to.equal(ORTHANC_AET);
      expect(meta.get(MetadataType.CalledAET)).to.equal(PACSNODE_AET);
    });

    describe('C-FIND and C-MOVE', () => {
      const studies = ['1.2.826.0.1.3680043.99.52.1', '1.2.826.0.1.3680043.99.52.2'];
      const ours = new Map<string, Buffer>();
      let queryId: string;

      before(async function () {
        if (!orthanc) this.skip();
        for (const [s, studyInstanceUid] of studies.entries()) {
          for (let i = 0; i < 2; i++) {
            const file = makeInstance({
              patientId: `QRPID${s}`,
              patientName: `QUERYME^PATIENT${s}`,
              studyInstanceUid,
              studyDate: `2022061${s}`,
              studyDescription: `Study ${s}`,
              instanceNumber: i + 1,
              modality: 'CT',
            });
            const result = await t.ctx.store.store(file, { kind: 'rest' });
            ours.set(result.ID, file);
          }
        }
        await t.ctx.store.store(makeInstance({ patientId: 'QRNOT', patientName: 'NOTQUERIED^X' }), { kind: 'rest' });
      });

      it('C-FIND (POST /modalities/pacsnode/query, Level Study, PatientName wildcard): the answers', async () => {
        const query = await rest<{ ID: string }>('POST', '/modalities/pacsnode/query', {
          Level: 'Study',
          Query: { PatientName: 'QUERYME*', PatientID: '', StudyInstanceUID: '', StudyDate: '', StudyDescription: '', NumberOfStudyRelatedInstances: '' },
        });
        queryId = query.ID;
        const answers = await rest<OrthancTags[]>('GET', `/queries/${queryId}/answers?expand`);
        const value = (a: OrthancTags, tag: string) => a[tag]?.Value;
        const sorted = [...answers].sort((a, b) => String(value(a, '0020,000d')).localeCompare(String(value(b, '0020,000d'))));
        expect(sorted.map((a) => value(a, '0020,000d'))).to.deep.equal(studies);
        sorted.forEach((a, s) => {
          expect(value(a, '0008,0052')).to.equal('STUDY');
          expect(value(a, '0010,0010')).to.equal(`QUERYME^PATIENT${s}`);
          expect(value(a, '0010,0020')).to.equal(`QRPID${s}`);
          expect(value(a, '0008,0020')).to.equal(`2022061${s}`);
          expect(value(a, '0008,1030')).to.equal(`Study ${s}`);
          expect(value(a, '0020,1208')).to.equal('2');
        });
      });

      it('C-MOVE (POST /queries/{id}/retrieve to Orthanc itself): pacsnode sends the studies to Orthanc, bytes unchanged', async function () {
        if (!queryId) this.skip(); // the C-FIND above failed
        const before = new Set(await orthancInstances());
        await rest('POST', `/queries/${queryId}/retrieve`, { TargetAet: ORTHANC_AET, Synchronous: true });
        const after = new Set(await orthancInstances());
        for (const [id, file] of ours) {
          expect(before.has(id), `${id} not in Orthanc before`).to.equal(false);
          expect(after.has(id), `${id} moved to Orthanc under pacsnode's public ID`).to.equal(true);
          const storedFile = await orthancFile(id);
          expectSameValues(readPart10(file).dataset, readPart10(storedFile).dataset, id);
          expect(datasetBytes(storedFile).equals(datasetBytes(file)), `${id}: dataset bytes`).to.equal(true);
        }
        const moved = [...after].filter((id) => !before.has(id));
        expect(moved.sort()).to.deep.equal([...ours.keys()].sort());
      });
    });
  });
});
