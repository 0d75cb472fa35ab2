/**
 * The Query/Retrieve SCUs (C-FIND, C-MOVE, C-GET) and the `pacsnode find` / `move` / `get` commands, against real
 * peers on loopback: pacsnode's own DicomScpServer, and DCMTK's Q/R archive `dcmqrscp` (its database loaded with
 * `dcmqridx`) with DCMTK's bit-preserving `storescp` as the move destination (Debian package dcmtk).
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDicomHandlers } from '../src/app/dicom-handlers.js';
import { datasetToDicomJson, type DicomJsonDataset } from '../src/dicom/json.js';
import { readPart10 } from '../src/dicom/reader.js';
import { Tags } from '../src/dicom/tag.js';
import { ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian } from '../src/dicom/transfer-syntax.js';
import { SopClasses } from '../src/dicom/uids.js';
import type { DicomHandlers } from '../src/dimse/handlers.js';
import { DicomScpServer } from '../src/dimse/scp/server.js';
import { DimseFailureError, find, findAll, identifierElements, QueryKeyError, type QueryRequest } from '../src/dimse/scu/find.js';
import { get, GET_COMPRESSED_SYNTAXES, instanceFileName, planGetContexts, type ReceivedInstance } from '../src/dimse/scu/get.js';
import { move, type RetrieveCounts } from '../src/dimse/scu/move.js';
import { AssociationError, AssociationRejectedError, ScuError, type ScuTarget } from '../src/dimse/scu/session.js';
import { Status } from '../src/dimse/status.js';
import { tempContext, type TestContext } from './helpers/context.js';
import { makeInstance } from './helpers/factory.js';
import { ROOT } from './helpers/process.js';
import { freePort, run, waitForPort } from './helpers/interop.js';

const CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files/';
const HAS_DCMTK = existsSync('/usr/bin/storescp') && existsSync('/usr/bin/dcmqrscp') && existsSync('/usr/bin/dcmqridx');
const SCU_AET = 'QRSCU';

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/** DCMTK's storescp, bit-preserving, into a fresh folder. */
async function startStorescp(aet: string): Promise<{ port: number; dir: string; stop(): void }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'pacsnode-qr-dest-'));
  const child = spawn('storescp', ['+B', '-od', dir, '-aet', aet, String(port)], { env: { ...process.env, TCP_NODELAY: '1' }, stdio: 'ignore' });
  await waitForPort(port);
  return {
    port,
    dir,
    stop() {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The file storescp wrote for an instance (named `<modality>.<SOP Instance UID>`). */
function storescpFile(dir: string, sopInstanceUid: string): Buffer | undefined {
  const name = readdirSync(dir).find((f) => f.endsWith(`.${sopInstanceUid}`));
  return name === undefined ? undefined : readFileSync(join(dir, name));
}

const datasetBytes = (file: Buffer): Buffer => file.subarray(readPart10(file, { untilPixelData: true }).datasetOffset);
/** A dataset's content, whatever its encoding: for peers that re-encode what they send (dcmqrscp). */
const datasetJson = (file: Buffer): DicomJsonDataset =>
  JSON.parse(JSON.stringify(datasetToDicomJson(readPart10(file).dataset, { omit: (tag) => (tag & 0xffff) === 0 }))) as DicomJsonDataset;

/** The first value of an attribute of a DICOM JSON answer, by keyword tag. */
function value(answer: DicomJsonDataset, tag: number): unknown {
  return answer[tag.toString(16).padStart(8, '0').toUpperCase()]?.Value?.[0];
}
const str = (answer: DicomJsonDataset, tag: number): string => {
  const v = value(answer, tag);
  return typeof v === 'object' && v !== null ? (v as { Alphabetic: string }).Alphabetic : String(v);
};
const tagsOf = (answer: DicomJsonDataset): string[] => Object.keys(answer).sort();
const hex = (...tags: number[]): string[] => tags.map((t) => t.toString(16).padStart(8, '0').toUpperCase()).sort();

async function expectRejection<E extends Error>(promise: Promise<unknown>, type: abstract new (...args: never[]) => E): Promise<E> {
  try {
    await promise;
  } catch (e) {
    expect(e, (e as Error).stack).to.be.instanceOf(type);
    return e as E;
  }
  throw new Error(`expected a ${type.name}`);
}

/** A generated tree: patients x 2 studies x 2 series (CT, MR) x 2 instances, with deterministic UIDs. */
interface Seeded {
  patientId: string;
  patientName: string;
  study: string;
  studyDate: string;
  series: string;
  modality: string;
  sop: string;
  file: Buffer;
}

function seedTree(root: string, patients: { id: string; name: string; charset?: string }[]): Seeded[] {
  const out: Seeded[] = [];
  patients.forEach((p, pi) => {
    for (let st = 0; st < 2; st++) {
      for (let se = 0; se < 2; se++) {
        for (let i = 0; i < 2; i++) {
          const s = {
            patientId: p.id,
            patientName: p.name,
            study: `${root}.${pi}.${st}`,
            studyDate: `202${st}0${pi + 1}15`,
            series: `${root}.${pi}.${st}.${se}`,
            modality: se === 0 ? 'CT' : 'MR',
            sop: `${root}.${pi}.${st}.${se}.${i}`,
          };
          const file = makeInstance({
            patientId: s.patientId,
            patientName: s.patientName,
            specificCharacterSet: p.charset,
            studyInstanceUid: s.study,
            studyDate: s.studyDate,
            seriesInstanceUid: s.series,
            seriesNumber: se + 1,
            modality: s.modality,
            sopInstanceUid: s.sop,
            sopClassUid: se === 0 ? SopClasses.CTImageStorage : SopClasses.MRImageStorage,
            instanceNumber: i + 1,
            pixelBytes: 3000,
          });
          out.push({ ...s, file });
        }
      }
    }
  });
  return out;
}

const distinct = <T>(xs: readonly T[]): T[] => [...new Set(xs)];
const sorted = <T>(xs: readonly T[]): T[] => [...xs].sort();

// ---------------------------------------------------------------------------------------------------------------

describe('Q/R SCU building blocks', () => {
  it('builds Identifiers from keywords and tags: level, return keys, sequences, UTF-8 when needed; refuses bad keys', async () => {
    const elements = identifierElements({
      model: 'study',
      level: 'series',
      keys: { PatientName: 'MÜLLER*', '0020,000E': '', ReferencedStudySequence: '', NumberOfSeriesRelatedInstances: '' },
    });
    const byTag = new Map(elements.map((e) => [e.tag, e]));
    expect(byTag.get(Tags.QueryRetrieveLevel)!.value).to.equal('SERIES');
    expect(byTag.get(Tags.SeriesInstanceUID)!.value).to.equal(null);
    expect(byTag.get(Tags.NumberOfSeriesRelatedInstances)!.value).to.equal(null); // an empty IS, not 0
    expect(byTag.get(0x00081110)!.value).to.deep.equal([]);
    expect(byTag.get(Tags.SpecificCharacterSet)!.value).to.equal('ISO_IR 192');
    expect(identifierElements({ model: 'study', level: 'INSTANCE', keys: { PatientID: 'x' } }).find((e) => e.tag === Tags.SpecificCharacterSet)).to.equal(undefined);
    expect(() => identifierElements({ model: 'study', level: 'STUDY', keys: { NoSuchKeyword: '' } })).to.throw(QueryKeyError, /unknown attribute/);
    expect(() => identifierElements({ model: 'study', level: 'VOLUME' as 'STUDY' })).to.throw(QueryKeyError, /unknown query level/);
    expect(() => identifierElements({ model: 'study', level: 'STUDY', keys: { QueryRetrieveLevel: 'SERIES' } })).to.throw(QueryKeyError, /contradicts/);
    // Bad requests fail before any connection is attempted (nothing listens on port 1).
    const nowhere = { host: '127.0.0.1', port: 1, callingAet: 'A', calledAet: 'B' };
    await expectRejection(findAll(nowhere, { model: 'worklist' as 'study', level: 'STUDY' }), QueryKeyError);
    await expectRejection(findAll(nowhere, { model: 'study', level: 'STUDY', keys: { '0002,0010': '' } }), QueryKeyError);
    await expectRejection(move(nowhere, { model: 'study', level: 'STUDY', destinationAet: '' }), QueryKeyError);
    await expectRejection(get(nowhere, { model: 'patient', level: 'SERIES', keys: { Bogus: '' } }, { into: () => Promise.resolve(0) }), QueryKeyError);
  });

  it('plans C-GET contexts within 128: the GET class, each storage class in each syntax alone, the SCP role for each class', () => {
    const plan = planGetContexts(SopClasses.StudyRootGet);
    expect(plan.contexts.length).to.be.at.most(128);
    expect(plan.contexts[0]!.abstractSyntax).to.equal(SopClasses.StudyRootGet);
    for (const c of plan.contexts.slice(1)) expect(c.transferSyntaxes).to.have.length(1);
    const ct = plan.contexts.filter((c) => c.abstractSyntax === SopClasses.CTImageStorage).map((c) => c.transferSyntaxes[0]);
    expect(ct).to.deep.equal([ExplicitVRLittleEndian, ImplicitVRLittleEndian, ...GET_COMPRESSED_SYNTAXES]);
    const pdf = plan.contexts.filter((c) => c.abstractSyntax === SopClasses.EncapsulatedPDFStorage).map((c) => c.transferSyntaxes[0]);
    expect(pdf).to.deep.equal([ExplicitVRLittleEndian, ImplicitVRLittleEndian]);
    expect(plan.roleSelections.find((r) => r.sopClassUid === SopClasses.CTImageStorage)).to.deep.equal({
      sopClassUid: SopClasses.CTImageStorage,
      scuRole: false,
      scpRole: true,
    });
    expect(plan.roleSelections).to.have.length(distinct(plan.contexts.slice(1).map((c) => c.abstractSyntax)).length);
    const custom = planGetContexts(SopClasses.PatientRootGet, { storageClasses: [SopClasses.CTImageStorage], transferSyntaxes: [ExplicitVRBigEndian] });
    expect(custom.contexts.map((c) => c.transferSyntaxes)).to.deep.equal([[ExplicitVRLittleEndian, ImplicitVRLittleEndian], [ExplicitVRBigEndian]]);
    expect(() => planGetContexts(SopClasses.StudyRootGet, { transferSyntaxes: GET_COMPRESSED_SYNTAXES })).to.throw(RangeError, /exceed the 128/);
    expect(instanceFileName('1.2.3')).to.equal('1.2.3.dcm');
    expect(instanceFileName('../../etc/passwd')).to.match(/^instance-[0-9a-f]{40}\.dcm$/);
  });
});

describe('Q/R SCUs against pacsnode', function () {
  this.timeout(60000);
  let t: TestContext;
  let server: DicomScpServer;
  let port: number;
  let dir: string;
  let storescp: Awaited<ReturnType<typeof startStorescp>> | undefined;
  let tree: Seeded[];

  before(async () => {
    if (HAS_DCMTK) storescp = await startStorescp('STORESCP');
    // The SCU is a declared modality (Orthanc's defaults let an unknown caller do nothing but C-ECHO and C-STORE);
    // the move destination too.
    t = await tempContext({
      DicomAet: 'PACSNODE',
      DicomCheckCalledAet: true,
      DicomModalities: { scu: [SCU_AET, '127.0.0.1', 104], dest: ['STORESCP', '127.0.0.1', storescp?.port ?? 9] },
    });
    tree = seedTree('1.2.826.0.1.3680043.77', [
      { id: 'QR0', name: 'DOE^JANE' },
      { id: 'QR1', name: 'Smith^John' },
      { id: 'QR2', name: 'doe^john' },
      { id: 'QR3', name: 'MÜLLER^HANS', charset: 'ISO_IR 192' },
    ]);
    for (const s of tree) await t.ctx.store.store(s.file, { kind: 'rest' });
    server = new DicomScpServer(createDicomHandlers(t.ctx), { aet: 'PACSNODE', maxPduLength: 16384, idleTimeoutMs: 30000 });
    port = await server.listen(0, '127.0.0.1');
    dir = mkdtempSync(join(tmpdir(), 'pacsnode-qr-'));
  });
  after(async () => {
    await server?.close(1000);
    await t?.close();
    storescp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const pacsnode = (overrides: Partial<ScuTarget> = {}): ScuTarget => ({ host: '127.0.0.1', port, callingAet: SCU_AET, calledAet: 'PACSNODE', ...overrides });

  describe('C-FIND', () => {
    it('Patient Root, PATIENT level: PN wildcard (case-insensitive), exactly the requested keys, computed counts', async () => {
      const answers = await findAll(pacsnode(), { model: 'patient', level: 'PATIENT', keys: { PatientName: 'doe*', PatientID: '', NumberOfPatientRelatedStudies: '' } });
      expect(sorted(answers.map((a) => str(a, Tags.PatientID)))).to.deep.equal(['QR0', 'QR2']);
      for (const a of answers) {
        expect(tagsOf(a)).to.deep.equal(hex(Tags.QueryRetrieveLevel, Tags.PatientName, Tags.PatientID, Tags.NumberOfPatientRelatedStudies));
        expect(value(a, Tags.NumberOfPatientRelatedStudies)).to.equal(2); // IS as a JSON number (PS3.18 F.2.3)
        expect(a['00100010']!.Value![0]).to.have.property('Alphabetic'); // PN as an object
      }
    });

    it('Patient Root, STUDY, SERIES and IMAGE levels down one patient', async () => {
      const studies = await findAll(pacsnode(), { model: 'patient', level: 'STUDY', keys: { PatientID: 'QR1', StudyInstanceUID: '', StudyDate: '' } });
      expect(sorted(studies.map((a) => str(a, Tags.StudyInstanceUID)))).to.deep.equal(distinct(tree.filter((s) => s.patientId === 'QR1').map((s) => s.study)));
      const study = str(studies[0]!, Tags.StudyInstanceUID);
      const series = await findAll(pacsnode(), { model: 'patient', level: 'SERIES', keys: { PatientID: 'QR1', StudyInstanceUID: study, SeriesInstanceUID: '', Modality: '' } });
      expect(sorted(series.map((a) => str(a, Tags.Modality)))).to.deep.equal(['CT', 'MR']);
      const mr = series.find((a) => str(a, Tags.Modality) === 'MR')!;
      const images = await findAll(pacsnode(), {
        model: 'patient',
        level: 'IMAGE',
        keys: { PatientID: 'QR1', StudyInstanceUID: study, SeriesInstanceUID: str(mr, Tags.SeriesInstanceUID), SOPInstanceUID: '', InstanceNumber: '' },
      });
      expect(sorted(images.map((a) => str(a, Tags.SOPInstanceUID)))).to.deep.equal(tree.filter((s) => s.series === str(mr, Tags.SeriesInstanceUID)).map((s) => s.sop));
      expect(sorted(images.map((a) => value(a, Tags.InstanceNumber)))).to.deep.equal([1, 2]);
    });

    it('Study Root, STUDY level with an open date range, a universal PN and ModalitiesInStudy', async () => {
      const answers = await findAll(pacsnode(), {
        model: 'study',
        level: 'STUDY',
        keys: { StudyDate: '20210101-', PatientName: '*', StudyInstanceUID: '', ModalitiesInStudy: '' },
      });
      const expected = distinct(tree.filter((s) => s.studyDate >= '20210101').map((s) => s.study));
      expect(sorted(answers.map((a) => str(a, Tags.StudyInstanceUID)))).to.deep.equal(sorted(expected));
      for (const a of answers) expect(a['00080061']!.Value).to.deep.equal(['CT', 'MR']);
    });

    it('Study Root, SERIES level with a wildcard on Modality, IMAGE level with a UID list', async () => {
      const study = tree[0]!.study;
      const series = await findAll(pacsnode(), { model: 'study', level: 'SERIES', keys: { StudyInstanceUID: study, Modality: 'M?', SeriesInstanceUID: '', SeriesNumber: '' } });
      expect(series.map((a) => str(a, Tags.SeriesInstanceUID))).to.deep.equal([`${study}.1`]);
      expect(value(series[0]!, Tags.SeriesNumber)).to.equal(2);
      const wanted = [`${study}.1.0`, `${study}.1.1`];
      const images = await findAll(pacsnode(), {
        model: 'study',
        level: 'IMAGE',
        keys: { StudyInstanceUID: study, SeriesInstanceUID: `${study}.1`, SOPInstanceUID: wanted.join('\\'), SOPClassUID: '' },
      });
      expect(sorted(images.map((a) => str(a, Tags.SOPInstanceUID)))).to.deep.equal(wanted);
      for (const a of images) expect(str(a, Tags.SOPClassUID)).to.equal(SopClasses.MRImageStorage);
    });

    it('matches non-ASCII values (sent in UTF-8 with Specific Character Set ISO_IR 192)', async () => {
      const answers = await findAll(pacsnode(), { model: 'patient', level: 'PATIENT', keys: { PatientName: 'MÜLLER*', PatientID: '' } });
      expect(answers.map((a) => [str(a, Tags.PatientID), str(a, Tags.PatientName)])).to.deep.equal([['QR3', 'MÜLLER^HANS']]);
    });

    it('stops at the limit with a C-CANCEL, and the association stays usable', async () => {
      const generator = find(pacsnode(), { model: 'study', level: 'IMAGE', keys: { SOPInstanceUID: '' } }, { limit: 3 });
      const answers: DicomJsonDataset[] = [];
      let next = await generator.next();
      for (; !next.done; next = await generator.next()) answers.push(next.value);
      expect(answers).to.have.length(3);
      expect(next.value.answers).to.equal(3);
      expect(next.value.cancelled).to.equal(true);
      // The peer may have finished before the C-CANCEL arrived: Success then, Cancel otherwise.
      expect([Status.Success, Status.Cancel]).to.include(next.value.status);
    });

    it('reports a failure status as a DimseFailureError (PATIENT level in the Study Root model: A900)', async () => {
      const e = await expectRejection(findAll(pacsnode(), { model: 'study', level: 'PATIENT', keys: { PatientID: '' } }), DimseFailureError);
      expect(e.status).to.equal(0xa900);
      expect(e.message).to.match(/^C-FIND failed: A900 /);
    });

    it('fails with typed errors: rejected association, model not accepted for an unknown caller, bad keys before connecting', async () => {
      const rejected = await expectRejection(findAll(pacsnode({ calledAet: 'NOT-PACSNODE' }), { model: 'study', level: 'STUDY' }), AssociationRejectedError);
      expect(rejected.reason).to.equal(7);
      const refused = await expectRejection(findAll(pacsnode({ callingAet: 'STRANGER' }), { model: 'study', level: 'STUDY' }), ScuError);
      expect(refused.code).to.equal('ERR_SCU_NOT_ACCEPTED');
      const closed = await freePort();
      await expectRejection(findAll(pacsnode({ port: closed }), { model: 'study', level: 'STUDY', keys: { Nonsense: '' } }), QueryKeyError);
      await expectRejection(findAll(pacsnode({ port: closed }), { model: 'study', level: 'STUDY' }), AssociationError);
    });
  });

  describe('C-CANCEL of a C-FIND (a peer with endless answers)', () => {
    let custom: DicomScpServer;
    let customPort: number;
    let cancelled: Promise<void>;
    let onCancelled: () => void;

    before(async () => {
      const base = createDicomHandlers(t.ctx);
      const handlers: DicomHandlers = {
        ...base,
        policy: { ...base.policy, acceptAssociation: () => ({ accept: true }) }, // any called AE title
        find: {
          async *find(_request, _assoc, signal) {
            for (let i = 0; !signal.aborted; i++) yield [{ tag: Tags.PatientID, vr: 'LO', value: `ENDLESS${i}` }];
            onCancelled();
          },
        },
      };
      custom = new DicomScpServer(handlers, { aet: 'ENDLESS', maxPduLength: 16384, idleTimeoutMs: 30000 });
      customPort = await custom.listen(0, '127.0.0.1');
    });
    after(async () => {
      await custom?.close(1000);
    });
    beforeEach(() => {
      cancelled = new Promise((resolve) => (onCancelled = resolve));
    });

    const endless = (): ScuTarget => ({ host: '127.0.0.1', port: customPort, callingAet: SCU_AET, calledAet: 'ENDLESS' });
    const query: QueryRequest = { model: 'patient', level: 'PATIENT', keys: { PatientID: '' } };

    it('after N answers (limit): N answers, final status Cancel', async () => {
      const generator = find(endless(), query, { limit: 5 });
      const ids: string[] = [];
      let next = await generator.next();
      for (; !next.done; next = await generator.next()) ids.push(str(next.value, Tags.PatientID));
      expect(ids).to.deep.equal(['ENDLESS0', 'ENDLESS1', 'ENDLESS2', 'ENDLESS3', 'ENDLESS4']);
      expect(next.value).to.deep.equal({ status: Status.Cancel, answers: 5, cancelled: true });
      await cancelled;
    });

    it('when the signal aborts: the answers stop, the iteration ends normally', async () => {
      const controller = new AbortController();
      const generator = find(endless(), query, { signal: controller.signal });
      let count = 0;
      let next = await generator.next();
      for (; !next.done; next = await generator.next()) if (++count === 7) controller.abort();
      expect(count).to.equal(7);
      expect(next.value).to.deep.equal({ status: Status.Cancel, answers: 7, cancelled: true });
      await cancelled;
    });

    it('when the caller stops iterating (break): C-CANCEL, then the association is released', async () => {
      let count = 0;
      for await (const _answer of find(endless(), query)) if (++count === 2) break;
      expect(count).to.equal(2);
      await cancelled;
    });
  });

  describe('C-MOVE', () => {
    it('moves a study to storescp: pending counts, Success, the datasets byte for byte as stored', async function () {
      if (!storescp) this.skip(); // dcmtk is installed by .ci/run
      const study = tree.filter((s) => s.patientId === 'QR0')[0]!.study;
      const pendings: RetrieveCounts[] = [];
      const summary = await move(
        pacsnode(),
        { model: 'study', level: 'STUDY', keys: { StudyInstanceUID: study }, destinationAet: 'STORESCP' },
        { onPending: (c) => pendings.push(c) },
      );
      expect(summary).to.deep.equal({
        status: Status.Success,
        category: 'success',
        counts: { completed: 4, failed: 0, warning: 0 },
        failedSopInstanceUids: [],
        cancelled: false,
      });
      expect(pendings.map((p) => p.remaining)).to.deep.equal([3, 2, 1]);
      for (const s of tree.filter((x) => x.study === study)) {
        const received = storescpFile(storescp!.dir, s.sop);
        expect(received, s.sop).to.not.equal(undefined);
        expect(datasetBytes(received!).equals(datasetBytes(s.file)), s.sop).to.equal(true);
      }
    });

    it('moves one series in the Patient Root model', async function () {
      if (!storescp) this.skip();
      const s = tree.find((x) => x.patientId === 'QR2' && x.modality === 'MR')!;
      const summary = await move(pacsnode(), {
        model: 'patient',
        level: 'SERIES',
        keys: { PatientID: 'QR2', StudyInstanceUID: s.study, SeriesInstanceUID: s.series },
        destinationAet: 'STORESCP',
      });
      expect([summary.status, summary.counts.completed]).to.deep.equal([Status.Success, 2]);
      expect(storescpFile(storescp!.dir, s.sop)).to.not.equal(undefined);
    });

    it('reports an unknown destination (A801) in the summary', async () => {
      const summary = await move(pacsnode(), { model: 'study', level: 'STUDY', keys: { StudyInstanceUID: tree[0]!.study }, destinationAet: 'NOBODY' });
      expect([summary.status, summary.category, summary.counts.completed]).to.deep.equal([Status.MoveDestinationUnknown, 'failure', 0]);
      expect(summary.errorComment).to.contain('NOBODY');
    });

    it('reports failed sub-operations with their SOP Instance UIDs (a destination that is not there)', async () => {
      const down = await freePort();
      const t2 = await tempContext({ DicomModalities: { scu: [SCU_AET, '127.0.0.1', 104], gone: ['GONE', '127.0.0.1', down] } });
      try {
        const files = tree.filter((s) => s.patientId === 'QR1').slice(0, 2);
        for (const f of files) await t2.ctx.store.store(f.file, { kind: 'rest' });
        const s2 = new DicomScpServer(createDicomHandlers(t2.ctx), { aet: 'PACSNODE', maxPduLength: 16384, idleTimeoutMs: 30000 });
        const p2 = await s2.listen(0, '127.0.0.1');
        try {
          const summary = await move(pacsnode({ port: p2 }), { model: 'patient', level: 'PATIENT', keys: { PatientID: 'QR1' }, destinationAet: 'GONE' });
          expect([summary.status, summary.counts.failed, summary.counts.completed]).to.deep.equal([Status.OutOfResourcesUnableToPerformSubOperations, 2, 0]);
          expect(sorted(summary.failedSopInstanceUids)).to.deep.equal(sorted(files.map((f) => f.sop)));
        } finally {
          await s2.close(500);
        }
      } finally {
        await t2.close();
      }
    });
  });

  describe('C-GET', () => {
    it('gets a series into a folder: Part 10 files, meta header from the context, dataset bytes as stored', async () => {
      const s = tree.find((x) => x.patientId === 'QR0' && x.modality === 'CT')!;
      const out = join(dir, 'get-series');
      const seen: ReceivedInstance[] = [];
      const pendings: RetrieveCounts[] = [];
      const summary = await get(
        pacsnode(),
        { model: 'study', level: 'SERIES', keys: { StudyInstanceUID: s.study, SeriesInstanceUID: s.series } },
        { into: out, onInstance: (i) => seen.push(i), onPending: (c) => pendings.push(c) },
      );
      expect([summary.status, summary.counts]).to.deep.equal([Status.Success, { completed: 2, failed: 0, warning: 0 }]);
      expect(pendings.map((p) => p.remaining)).to.deep.equal([1]);
      expect(sorted(readdirSync(out))).to.deep.equal([`${s.series}.0.dcm`, `${s.series}.1.dcm`]);
      expect(seen.map((i) => i.path)).to.deep.equal(summary.instances.map((i) => i.path));
      for (const original of tree.filter((x) => x.series === s.series)) {
        const file = readFileSync(join(out, `${original.sop}.dcm`));
        const parsed = readPart10(file);
        expect(parsed.meta.string(Tags.MediaStorageSOPInstanceUID)).to.equal(original.sop);
        expect(parsed.meta.string(Tags.MediaStorageSOPClassUID)).to.equal(SopClasses.CTImageStorage);
        expect(parsed.meta.string(Tags.TransferSyntaxUID)).to.equal(ExplicitVRLittleEndian);
        expect(parsed.meta.string(Tags.SourceApplicationEntityTitle)).to.equal('PACSNODE');
        expect(datasetBytes(file).equals(datasetBytes(original.file))).to.equal(true);
      }
    });

    it('receives each instance in the syntax it is stored in, compressed ones too (their own contexts)', async () => {
      const study = '1.2.826.0.1.3680043.77.9';
      const files = [ImplicitVRLittleEndian, ExplicitVRLittleEndian].map((ts, i) =>
        makeInstance({ patientId: 'QRTS', patientName: 'SYNTAX^TEST', studyInstanceUid: study, seriesInstanceUid: `${study}.1`, sopInstanceUid: `${study}.1.${i}`, transferSyntaxUid: ts }),
      );
      const corpus = ['JPEG2000.dcm', 'MR_small_RLE.dcm'].filter((f) => existsSync(join(CORPUS, f))).map((f) => readFileSync(join(CORPUS, f)));
      for (const f of [...files, ...corpus]) await t.ctx.store.store(f, { kind: 'rest' });
      for (const original of [...files, ...corpus]) {
        const parsed = readPart10(original);
        const out = join(dir, `get-ts-${parsed.transferSyntaxUid}`);
        const summary = await get(
          pacsnode(),
          { model: 'study', level: 'IMAGE', keys: { StudyInstanceUID: parsed.dataset.string(Tags.StudyInstanceUID)!, SeriesInstanceUID: parsed.dataset.string(Tags.SeriesInstanceUID)!, SOPInstanceUID: parsed.dataset.string(Tags.SOPInstanceUID)! } },
          { into: out },
        );
        expect(summary.status, parsed.transferSyntaxUid).to.equal(Status.Success);
        expect(summary.instances.map((i) => i.transferSyntaxUid)).to.deep.equal([parsed.transferSyntaxUid]);
        const received = readFileSync(summary.instances[0]!.path!);
        expect(readPart10(received).meta.string(Tags.TransferSyntaxUID)).to.equal(parsed.transferSyntaxUid);
        expect(datasetBytes(received).equals(datasetBytes(original)), parsed.transferSyntaxUid).to.equal(true);
      }
    });

    it('converts big endian for the default contexts, sends it unchanged once proposed; fails a class not proposed', async () => {
      const study = '1.2.826.0.1.3680043.77.10';
      const be = makeInstance({ patientId: 'QRBE', patientName: 'SYNTAX^TEST', studyInstanceUid: study, seriesInstanceUid: `${study}.1`, sopInstanceUid: `${study}.1.0`, transferSyntaxUid: ExplicitVRBigEndian });
      await t.ctx.store.store(be, { kind: 'rest' });
      const request: QueryRequest = { model: 'study', level: 'STUDY', keys: { StudyInstanceUID: study } };
      // The default contexts propose no big endian: the C-GET SCP converts (as the C-MOVE SCP does).
      const converted = await get(pacsnode(), request, { into: join(dir, 'be-default') });
      expect([converted.status, converted.counts.failed, converted.instances.length]).to.deep.equal([Status.Success, 0, 1]);
      const convertedFile = readPart10(readFileSync(converted.instances[0]!.path!));
      expect(convertedFile.transferSyntaxUid).to.be.oneOf([ExplicitVRLittleEndian, ImplicitVRLittleEndian]);
      expect(convertedFile.dataset.string(Tags.PatientName)).to.equal('SYNTAX^TEST');
      const taken = await get(pacsnode(), request, {
        into: join(dir, 'be'),
        storageClasses: [SopClasses.CTImageStorage],
        transferSyntaxes: [ExplicitVRBigEndian, ExplicitVRLittleEndian],
      });
      expect(taken.status).to.equal(Status.Success);
      expect(datasetBytes(readFileSync(taken.instances[0]!.path!)).equals(datasetBytes(be))).to.equal(true);
      // A storage class the default contexts do not propose: nothing can carry it.
      const vl = '1.2.840.10008.5.1.4.1.1.77.1.1'; // VL Endoscopic Image Storage
      const other = '1.2.826.0.1.3680043.77.11';
      await t.ctx.store.store(makeInstance({ patientId: 'QRVL', patientName: 'SYNTAX^VL', studyInstanceUid: other, seriesInstanceUid: `${other}.1`, sopInstanceUid: `${other}.1.0`, sopClassUid: vl }), { kind: 'rest' });
      const otherRequest: QueryRequest = { model: 'study', level: 'STUDY', keys: { StudyInstanceUID: other } };
      const refused = await get(pacsnode(), otherRequest, { into: join(dir, 'vl-default') });
      expect([refused.status, refused.counts.failed, refused.instances.length]).to.deep.equal([Status.OutOfResourcesUnableToPerformSubOperations, 1, 0]);
      expect(refused.failedSopInstanceUids).to.deep.equal([`${other}.1.0`]);
      const proposed = await get(pacsnode(), otherRequest, { into: join(dir, 'vl'), storageClasses: [vl] });
      expect(proposed.status).to.equal(Status.Success);
    });

    it('hands Part 10 files to a sink and answers its statuses: a refused instance is failed and listed', async () => {
      const patient = tree.filter((s) => s.patientId === 'QR2');
      const refuse = patient[3]!.sop;
      const got = new Map<string, Buffer>();
      const summary = await get(pacsnode(), { model: 'patient', level: 'PATIENT', keys: { PatientID: 'QR2' } }, {
        into: async (file, info) => {
          if (info.sopInstanceUid === refuse) return Status.OutOfResources;
          got.set(info.sopInstanceUid, file);
          return Status.Success;
        },
      });
      expect([summary.status, summary.counts]).to.deep.equal([Status.SubOperationsCompleteWithFailures, { completed: 7, failed: 1, warning: 0 }]);
      expect(summary.failedSopInstanceUids).to.deep.equal([refuse]);
      expect(summary.instances.find((i) => i.sopInstanceUid === refuse)!.status).to.equal(Status.OutOfResources);
      expect(got.size).to.equal(7);
      for (const s of patient.filter((x) => x.sop !== refuse)) expect(datasetBytes(got.get(s.sop)!).equals(datasetBytes(s.file))).to.equal(true);
    });

    it('answers a throwing sink with 0110 and goes on; nothing matched is Success with no instance', async () => {
      const s = tree.find((x) => x.patientId === 'QR1')!;
      const summary = await get(pacsnode(), { model: 'study', level: 'SERIES', keys: { StudyInstanceUID: s.study, SeriesInstanceUID: s.series } }, {
        into: () => Promise.reject(new Error('the sink is broken')),
      });
      expect([summary.status, summary.counts.failed]).to.deep.equal([Status.OutOfResourcesUnableToPerformSubOperations, 2]);
      expect(summary.instances.map((i) => [i.status, i.message])).to.deep.equal([
        [Status.ProcessingFailure, 'the sink is broken'],
        [Status.ProcessingFailure, 'the sink is broken'],
      ]);
      const none = await get(pacsnode(), { model: 'study', level: 'STUDY', keys: { StudyInstanceUID: '1.2.3.4.5.6.7.8.9' } }, { into: join(dir, 'none') });
      expect([none.status, none.instances.length]).to.deep.equal([Status.Success, 0]);
    });
  });

  describe('CLI: pacsnode find, move, get (bin/pacsnode, built by `npm test`)', () => {
    before(function () {
      if (!existsSync(join(ROOT, 'dist/cli/find.js'))) throw new Error('dist/ is not built: run `npm run build` (npm test does)');
    });

    /** Runs bin/pacsnode without blocking the event loop (the server under test lives in this process). */
    function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
      return new Promise((resolve) => {
        const child = spawn(process.execPath, [join(ROOT, 'bin/pacsnode'), ...args], {
          env: { ...process.env, PACSNODE_LOG_LEVEL: 'error' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      });
    }
    const peer = () => ['--aet', SCU_AET, '--aec', 'PACSNODE', '127.0.0.1', String(port)];

    it('find: a table of the returned keys by default, DICOM JSON with --json; exit 0', async () => {
      const [table, json, limited] = await Promise.all([
        cli(['find', '-P', '-L', 'PATIENT', '-k', 'PatientName=DOE*', '-k', 'PatientID', '-k', '0020,1200', ...peer()]),
        cli(['find', '--json', '-S', '-k', 'QueryRetrieveLevel=SERIES', '-k', `StudyInstanceUID=${tree[0]!.study}`, '-k', 'SeriesInstanceUID', '-k', 'Modality', ...peer()]),
        cli(['find', '--limit', '2', '-L', 'IMAGE', '-k', 'SOPInstanceUID', ...peer()]),
      ]);
      expect(table.code, table.stderr).to.equal(0);
      const lines = table.stdout.trimEnd().split('\n');
      expect(lines[0]).to.match(/^PatientName\s+PatientID\s+NumberOfPatientRelatedStudies$/);
      expect(lines[1]).to.match(/^-+ +-+ +-+$/);
      expect(sorted(lines.slice(2).map((l) => l.split(/\s{2,}/)))).to.deep.equal([
        ['DOE^JANE', 'QR0', '2'],
        ['doe^john', 'QR2', '2'],
      ]);
      expect(table.stderr).to.equal('2 answers\n');
      expect(json.code, json.stderr).to.equal(0);
      const answers = JSON.parse(json.stdout) as DicomJsonDataset[];
      expect(sorted(answers.map((a) => str(a, Tags.Modality)))).to.deep.equal(['CT', 'MR']);
      expect(answers[0]!['00080052']).to.deep.equal({ vr: 'CS', Value: ['SERIES'] });
      expect(limited.code, limited.stderr).to.equal(0);
      expect(limited.stdout.trimEnd().split('\n')).to.have.length(4);
      expect(limited.stderr).to.match(/^2 answers \(limit 2: C-CANCEL\)/);
    });

    it('find: exit 2 on bad usage or no association, 1 on a failure status', async () => {
      const closed = await freePort();
      const cases: [string[], number, RegExp][] = [
        [['find', '-k', 'NoSuchKey=1', ...peer()], 2, /unknown attribute "NoSuchKey"/],
        [['find', '-L', 'VOLUME', ...peer()], 2, /unknown query level/],
        [['find', '-P', '-S', ...peer()], 2, /exclude each other/],
        [['find', '--json', '--table', ...peer()], 2, /exclude each other/],
        [['find', '--limit', '0', ...peer()], 2, /number of answers/],
        [['find', '127.0.0.1', String(closed)], 2, /ECONNREFUSED/],
        [['find', '--aec', 'WRONG', '127.0.0.1', String(port)], 2, /called AE title not recognized/],
        [['find', '-S', '-L', 'PATIENT', '-k', 'PatientID', ...peer()], 1, /C-FIND failed: A900/],
      ];
      const results = await Promise.all(cases.map(([args]) => cli(args)));
      results.forEach((r, i) => {
        expect(r.code, `${cases[i]![0].join(' ')}: ${r.stderr}`).to.equal(cases[i]![1]);
        expect(r.stderr).to.match(cases[i]![2]);
      });
    });

    it('move: progress on stderr, the summary on stdout; exit 0, 1 for an unknown destination, 2 without --dest', async function () {
      const study = tree.filter((s) => s.patientId === 'QR1')[0]!.study;
      const [unknown, missing] = await Promise.all([
        cli(['move', '--dest', 'NOBODY', '-k', `StudyInstanceUID=${study}`, ...peer()]),
        cli(['move', '-k', `StudyInstanceUID=${study}`, ...peer()]),
      ]);
      expect(unknown.code).to.equal(1);
      expect(unknown.stdout).to.match(/^C-MOVE QRSCU -> PACSNODE@127\.0\.0\.1:\d+ to NOBODY: A801 Refused: move destination unknown \(unknown destination NOBODY\): completed 0, failed 0, warning 0\n$/);
      expect(missing.code).to.equal(2);
      expect(missing.stderr).to.contain('--dest');
      if (!storescp) this.skip();
      const ok = await cli(['move', '--dest', 'STORESCP', '-L', 'STUDY', '-k', `StudyInstanceUID=${study}`, ...peer()]);
      expect(ok.code, ok.stderr).to.equal(0);
      expect(ok.stdout).to.match(/: 0000 Success: completed 4, failed 0, warning 0\n$/);
      expect(ok.stderr.trimEnd().split('\n')).to.deep.equal([
        'remaining 3, completed 1, failed 0, warning 0',
        'remaining 2, completed 2, failed 0, warning 0',
        'remaining 1, completed 3, failed 0, warning 0',
      ]);
    });

    it('get: writes the instances into --out, one progress line each; exit 0, and 1 when some failed', async () => {
      const s = tree.find((x) => x.patientId === 'QR3')!;
      const out = join(dir, 'cli-get');
      const r = await cli(['get', '--out', out, '-L', 'STUDY', '-k', `StudyInstanceUID=${s.study}`, ...peer()]);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.match(new RegExp(`: 0000 Success: completed 4, failed 0, warning 0; 4 files written into ${out.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\n$`));
      expect(r.stderr.split('\n').filter((l) => l.startsWith('['))).to.have.length(4);
      const names = sorted(readdirSync(out));
      expect(names).to.deep.equal(sorted(tree.filter((x) => x.study === s.study).map((x) => `${x.sop}.dcm`)));
      for (const x of tree.filter((y) => y.study === s.study)) expect(datasetBytes(readFileSync(join(out, `${x.sop}.dcm`))).equals(datasetBytes(x.file))).to.equal(true);
      // An instance of a storage class the default contexts do not propose: nothing carries it.
      const failed = await cli(['get', '--out', join(dir, 'cli-get-vl'), '-k', 'StudyInstanceUID=1.2.826.0.1.3680043.77.11', ...peer()]);
      expect(failed.code, failed.stderr).to.equal(1);
      expect(failed.stderr).to.contain('failed: 1.2.826.0.1.3680043.77.11.1.0');
      const refused = await cli(['get', '--out', join(dir, 'x'), '127.0.0.1', String(await freePort())]);
      expect(refused.code).to.equal(2);
    });
  });
});

describe('Q/R SCUs against DCMTK dcmqrscp (and storescp as the move destination)', function () {
  this.timeout(60000);
  let work: string;
  let qrscp: ChildProcess | undefined;
  let qrPort: number;
  let storescp: Awaited<ReturnType<typeof startStorescp>>;
  let tree: Seeded[];

  before(async function () {
    if (!HAS_DCMTK) this.skip(); // dcmtk is installed by .ci/run
    work = mkdtempSync(join(tmpdir(), 'pacsnode-dcmqrscp-'));
    const db = join(work, 'db');
    mkdirSync(db);
    tree = seedTree('1.2.826.0.1.3680043.78', [
      { id: 'DQ0', name: 'DOE^ANNA' },
      { id: 'DQ1', name: 'ROE^RICHARD' },
    ]);
    const paths = tree.map((s) => {
      const path = join(db, `${s.sop}.dcm`);
      writeFileSync(path, s.file);
      return path;
    });
    const indexed = await run('dcmqridx', [db, ...paths]);
    expect(indexed.code, indexed.out).to.equal(0);
    storescp = await startStorescp('DQDEST');
    qrPort = await freePort();
    // dcmqrscp.cfg (DCMTK's dcmqrcnf.txt): the move destinations by AE title (host names, not addresses), and one
    // storage area served as the AE title DQRSCP to any peer.
    const config = join(work, 'dcmqrscp.cfg');
    writeFileSync(
      config,
      [
        `NetworkTCPPort = ${qrPort}`,
        'MaxPDUSize = 16384',
        'MaxAssociations = 16',
        'HostTable BEGIN',
        `dqdest = (DQDEST, localhost, ${storescp.port})`,
        'HostTable END',
        'VendorTable BEGIN',
        'VendorTable END',
        'AETable BEGIN',
        `DQRSCP ${db} R (200, 1024mb) ANY`,
        'AETable END',
        '',
      ].join('\n'),
    );
    qrscp = spawn('dcmqrscp', ['-c', config, String(qrPort)], { env: { ...process.env, TCP_NODELAY: '1' }, stdio: 'ignore' });
    await waitForPort(qrPort);
  });
  after(() => {
    qrscp?.kill();
    storescp?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const dcmqrscp = (overrides: Partial<ScuTarget> = {}): ScuTarget => ({ host: '127.0.0.1', port: qrPort, callingAet: SCU_AET, calledAet: 'DQRSCP', ...overrides });

  it('finds at every level of the Patient Root model, with wildcards and return keys', async () => {
    const patients = await findAll(dcmqrscp(), { model: 'patient', level: 'PATIENT', keys: { PatientName: 'DOE*', PatientID: '', PatientBirthDate: '' } });
    expect(patients.map((a) => [str(a, Tags.PatientID), str(a, Tags.PatientName), str(a, Tags.PatientBirthDate)])).to.deep.equal([['DQ0', 'DOE^ANNA', '19700101']]);
    const studies = await findAll(dcmqrscp(), { model: 'patient', level: 'STUDY', keys: { PatientID: 'DQ1', StudyInstanceUID: '', StudyDate: '20210101-20211231' } });
    const dq1 = tree.filter((s) => s.patientId === 'DQ1' && s.studyDate.startsWith('2021'));
    expect(studies.map((a) => str(a, Tags.StudyInstanceUID))).to.deep.equal(distinct(dq1.map((s) => s.study)));
    const study = dq1[0]!.study;
    const series = await findAll(dcmqrscp(), { model: 'patient', level: 'SERIES', keys: { PatientID: 'DQ1', StudyInstanceUID: study, SeriesInstanceUID: '', Modality: 'C*' } });
    expect(series.map((a) => [str(a, Tags.SeriesInstanceUID), str(a, Tags.Modality)])).to.deep.equal([[`${study}.0`, 'CT']]);
    const images = await findAll(dcmqrscp(), {
      model: 'patient',
      level: 'IMAGE',
      keys: { PatientID: 'DQ1', StudyInstanceUID: study, SeriesInstanceUID: `${study}.0`, SOPInstanceUID: '', InstanceNumber: '' },
    });
    expect(sorted(images.map((a) => str(a, Tags.SOPInstanceUID)))).to.deep.equal([`${study}.0.0`, `${study}.0.1`]);
    expect(sorted(images.map((a) => value(a, Tags.InstanceNumber)))).to.deep.equal([1, 2]);
  });

  it('finds at every level of the Study Root model', async () => {
    const studies = await findAll(dcmqrscp(), { model: 'study', level: 'STUDY', keys: { PatientName: '*O?^*', StudyInstanceUID: '', PatientID: '' } });
    expect(sorted(studies.map((a) => str(a, Tags.StudyInstanceUID)))).to.deep.equal(sorted(distinct(tree.map((s) => s.study))));
    const study = tree[0]!.study;
    const series = await findAll(dcmqrscp(), { model: 'study', level: 'SERIES', keys: { StudyInstanceUID: study, SeriesInstanceUID: '', SeriesNumber: '' } });
    expect(sorted(series.map((a) => value(a, Tags.SeriesNumber)))).to.deep.equal([1, 2]);
    const images = await findAll(dcmqrscp(), { model: 'study', level: 'IMAGE', keys: { StudyInstanceUID: study, SeriesInstanceUID: `${study}.1`, SOPInstanceUID: '' } });
    expect(sorted(images.map((a) => str(a, Tags.SOPInstanceUID)))).to.deep.equal([`${study}.1.0`, `${study}.1.1`]);
  });

  it('stops after N answers with a C-CANCEL', async () => {
    const study = tree[0]!.study;
    const generator = find(dcmqrscp(), { model: 'study', level: 'SERIES', keys: { StudyInstanceUID: study, SeriesInstanceUID: '' } }, { limit: 1 });
    const first = await generator.next();
    expect(first.done).to.equal(false);
    const end = await generator.next();
    expect(end.done).to.equal(true);
    expect(end.value).to.include({ answers: 1, cancelled: true });
  });

  it('moves a study to storescp: counts, and the datasets received are those indexed', async () => {
    const study = tree.filter((s) => s.patientId === 'DQ1')[1]!.study;
    const pendings: RetrieveCounts[] = [];
    const summary = await move(dcmqrscp(), { model: 'study', level: 'STUDY', keys: { StudyInstanceUID: study }, destinationAet: 'DQDEST' }, { onPending: (c) => pendings.push(c) });
    expect([summary.status, summary.counts.completed, summary.counts.failed]).to.deep.equal([Status.Success, 4, 0]);
    expect(pendings.length).to.be.greaterThan(0);
    for (const s of tree.filter((x) => x.study === study)) {
      const received = storescpFile(storescp.dir, s.sop);
      expect(received, s.sop).to.not.equal(undefined);
      expect(datasetJson(received!)).to.deep.equal(datasetJson(s.file));
    }
  });

  it('reports the A801 of an unknown destination', async () => {
    const summary = await move(dcmqrscp(), { model: 'study', level: 'STUDY', keys: { StudyInstanceUID: tree[0]!.study }, destinationAet: 'NOBODY' });
    expect([summary.status, summary.category]).to.deep.equal([Status.MoveDestinationUnknown, 'failure']);
  });

  it('gets a series into a folder on the same association (role selection), datasets as indexed', async () => {
    const s = tree.find((x) => x.patientId === 'DQ0' && x.modality === 'MR')!;
    const out = join(work, 'get');
    const summary = await get(dcmqrscp(), { model: 'patient', level: 'SERIES', keys: { PatientID: 'DQ0', StudyInstanceUID: s.study, SeriesInstanceUID: s.series } }, { into: out });
    expect([summary.status, summary.counts.completed, summary.instances.length]).to.deep.equal([Status.Success, 2, 2]);
    for (const x of tree.filter((y) => y.series === s.series)) {
      const file = readFileSync(join(out, `${x.sop}.dcm`));
      expect(readPart10(file).meta.string(Tags.MediaStorageSOPClassUID)).to.equal(SopClasses.MRImageStorage);
      expect(datasetJson(file)).to.deep.equal(datasetJson(x.file));
    }
  });

  it('gets the typed rejection of an AE title dcmqrscp does not serve', async () => {
    const e = await expectRejection(findAll(dcmqrscp({ calledAet: 'NOT-DQRSCP' }), { model: 'study', level: 'STUDY' }), AssociationRejectedError);
    expect(e.message).to.contain('called AE title not recognized');
  });
});
