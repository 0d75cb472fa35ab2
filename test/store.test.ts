import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createContext } from '../src/app/context.js';
import { DicomFormatError, PacsError } from '../src/core/errors.js';
import { Tags } from '../src/dicom/tag.js';
import { ImplicitVRLittleEndian } from '../src/dicom/transfer-syntax.js';
import { encodeDataset } from '../src/dicom/writer.js';
import { orthancHash, publicIds } from '../src/store/ids.js';
import { Level } from '../src/store/levels.js';
import { CHANGE_TYPE_NAMES, DICOM_ATTACHMENT, MetadataType, SCHEMA_VERSION, SqliteIndex } from '../src/store/sqlite-index.js';
import { makeInstance } from './helpers/factory.js';
import { tempContext, type TestContext } from './helpers/context.js';

/** Every attachment file in the storage area (Orthanc layout), excluding the temp folder. */
function storedFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      if (name.startsWith('pacsnode-index') || name.startsWith('.pacsnode') || name.endsWith('.tmp')) continue;
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(root);
  return out;
}

/** Writes in progress or left behind: `ab/cd/<uuid>.tmp` files anywhere in the storage area. */
function tmpFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.tmp')) out.push(p);
    }
  };
  walk(root);
  return out;
}

function changeNames(t: TestContext): string[] {
  return t.ctx.index.changes(0, 1000).changes.map((c) => CHANGE_TYPE_NAMES[c.changeType]!);
}

async function waitFor(condition: () => boolean, what: string, ms = 10000): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `bytes` as a stream of 64 KB chunks. */
function in64KbChunks(bytes: Buffer): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 65536) chunks.push(bytes.subarray(i, i + 65536));
  return Readable.from(chunks);
}

/** The file of instance `id` as it is on disk. */
function storedFileOf(t: TestContext, id: string): Buffer {
  const att = t.ctx.index.attachment(t.ctx.index.findByPublicId(id)!.id, DICOM_ATTACHMENT)!;
  return readFileSync(join(t.ctx.config.StorageDirectory, att.uuid.slice(0, 2), att.uuid.slice(2, 4), att.uuid));
}

/** The attachment of instance `id` records the MD5 of `content` (uncompressed) and of `onDisk` (as stored). */
function expectMd5s(t: TestContext, id: string, content: Buffer, onDisk: Buffer): void {
  const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
  const att = t.ctx.index.attachment(t.ctx.index.findByPublicId(id)!.id, DICOM_ATTACHMENT)!;
  expect({ uncompressed: att.uncompressedMd5, compressed: att.compressedMd5 }).to.deep.equal({ uncompressed: md5(content), compressed: md5(onDisk) });
}

describe('store: the one ingestion path', function () {
  let t: TestContext;
  afterEach(async () => {
    await t?.close();
  });

  it('stores an instance whole: Orthanc answer, IDs, file in Orthanc layout, byte-identical, MD5 recorded', async () => {
    t = await tempContext();
    const bytes = makeInstance({ patientId: 'P1', studyInstanceUid: '1.2.3', seriesInstanceUid: '1.2.3.4', sopInstanceUid: '1.2.3.4.5' });
    const result = await t.ctx.store.store(bytes, { kind: 'rest', remoteIp: '127.0.0.1' });
    const ids = publicIds({ patientId: 'P1', studyInstanceUid: '1.2.3', seriesInstanceUid: '1.2.3.4', sopInstanceUid: '1.2.3.4.5' });
    expect(result).to.deep.equal({
      ID: ids.instance,
      ParentPatient: ids.patient,
      ParentStudy: ids.study,
      ParentSeries: ids.series,
      Path: `/instances/${ids.instance}`,
      Status: 'Success',
    });
    expect(ids.patient).to.equal(orthancHash('P1'));
    // Read at Orthanc's path: ab/cd/<uuid>.
    expect(storedFileOf(t, ids.instance).equals(bytes)).to.equal(true);
    expectMd5s(t, ids.instance, bytes, bytes);
    expect(t.ctx.index.attachment(t.ctx.index.findByPublicId(ids.instance)!.id, DICOM_ATTACHMENT)!.uncompressedSize).to.equal(bytes.length);
    expect((await t.ctx.store.readDicom(ids.instance)).equals(bytes)).to.equal(true);
    expect(tmpFiles(t.ctx.config.StorageDirectory)).to.deep.equal([]);
  });

  it('answers AlreadyStored for a second copy and writes nothing more', async () => {
    t = await tempContext();
    const bytes = makeInstance();
    await t.ctx.store.store(bytes, { kind: 'rest' });
    const again = await t.ctx.store.store(bytes, { kind: 'rest' });
    expect(again.Status).to.equal('AlreadyStored');
    expect(storedFiles(t.ctx.config.StorageDirectory)).to.have.length(1);
    expect(tmpFiles(t.ctx.config.StorageDirectory)).to.deep.equal([]);
    expect(t.ctx.index.statistics().countInstances).to.equal(1);
  });

  it('replaces the instance and its file when OverwriteInstances is true', async () => {
    t = await tempContext({ OverwriteInstances: true });
    const spec = { sopInstanceUid: '1.2.840.99.1', studyInstanceUid: '1.2.840.99', seriesInstanceUid: '1.2.840.99.2' };
    const first = await t.ctx.store.store(makeInstance({ ...spec, studyDescription: 'first' }), { kind: 'rest' });
    const oldUuid = t.ctx.index.attachment(t.ctx.index.findByPublicId(first.ID)!.id, DICOM_ATTACHMENT)!.uuid;
    const second = await t.ctx.store.store(makeInstance({ ...spec, studyDescription: 'second' }), { kind: 'rest' });
    expect(second.Status).to.equal('Success');
    expect(second.ID).to.equal(first.ID);
    const row = t.ctx.index.findByPublicId(second.ID)!;
    expect(t.ctx.index.attachment(row.id, DICOM_ATTACHMENT)!.uuid).to.not.equal(oldUuid);
    expect(storedFiles(t.ctx.config.StorageDirectory)).to.have.length(1);
    expect(t.ctx.index.statistics().countInstances).to.equal(1);
  });

  it('streams a large input to disk and indexes it from the head', async () => {
    t = await tempContext();
    const bytes = makeInstance({ pixelBytes: 12 << 20 });
    const result = await t.ctx.store.store(in64KbChunks(bytes), { kind: 'rest' });
    expect(result.Status).to.equal('Success');
    expect((await t.ctx.store.readDicom(result.ID)).equals(bytes)).to.equal(true);
    const row = t.ctx.index.findByPublicId(result.ID)!;
    expect(t.ctx.index.getMetadata(row.id, MetadataType.PixelDataOffset)?.value).to.match(/^\d+$/);
    expectMd5s(t, result.ID, bytes, bytes);
  });

  it('records the MD5 of a small streamed input (kept whole in memory)', async () => {
    t = await tempContext();
    const bytes = makeInstance({ pixelBytes: 4096 });
    const result = await t.ctx.store.store(Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]), { kind: 'rest' });
    expect(result.Status).to.equal('Success');
    expectMd5s(t, result.ID, bytes, bytes);
  });

  it('accepts an empty PatientID, as Orthanc does', async () => {
    t = await tempContext();
    const result = await t.ctx.store.store(makeInstance({ patientId: '' }), { kind: 'rest' });
    expect(result.Status).to.equal('Success');
    expect(result.ParentPatient).to.equal(orthancHash(''));
  });

  it('rejects a file missing a required UID with a clear message and stores nothing', async () => {
    t = await tempContext();
    const noStudy = encodeDataset(
      [
        { tag: Tags.SOPClassUID, vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.7' },
        { tag: Tags.SOPInstanceUID, vr: 'UI', value: '1.2.3.9' },
        { tag: Tags.PatientID, vr: 'LO', value: 'X' },
        { tag: Tags.SeriesInstanceUID, vr: 'UI', value: '1.2.3.8' },
      ],
      { explicitVr: false, littleEndian: true },
    );
    let error: unknown;
    try {
      await t.ctx.store.store(noStudy, { kind: 'rest' });
    } catch (e) {
      error = e;
    }
    expect(error).to.be.instanceOf(DicomFormatError);
    expect((error as Error).message).to.contain('StudyInstanceUID (0020,000D)');
    expect(storedFiles(t.ctx.config.StorageDirectory)).to.deep.equal([]);
    expect(tmpFiles(t.ctx.config.StorageDirectory)).to.deep.equal([]);
    expect(t.ctx.index.statistics().countPatients).to.equal(0);
  });

  it('rejects non-DICOM bytes and truncated files, storing nothing', async () => {
    t = await tempContext();
    for (const bad of [Buffer.from('hello world'), Buffer.alloc(0), makeInstance({ pixelBytes: 4096 }).subarray(0, 1500)]) {
      let error: unknown;
      try {
        await t.ctx.store.store(bad, { kind: 'rest' });
      } catch (e) {
        error = e;
      }
      expect(error, `input of ${bad.length} bytes`).to.be.instanceOf(DicomFormatError);
    }
    expect(storedFiles(t.ctx.config.StorageDirectory)).to.deep.equal([]);
    expect(tmpFiles(t.ctx.config.StorageDirectory)).to.deep.equal([]);
  });

  it('gives a bare dataset (no meta header) a meta header and keeps its bytes unchanged', async () => {
    t = await tempContext();
    const dataset = encodeDataset(
      [
        { tag: Tags.SOPClassUID, vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.7' },
        { tag: Tags.SOPInstanceUID, vr: 'UI', value: '1.2.3.7.1' },
        { tag: Tags.PatientName, vr: 'PN', value: 'BARE^DATASET' },
        { tag: Tags.PatientID, vr: 'LO', value: 'BARE' },
        { tag: Tags.StudyInstanceUID, vr: 'UI', value: '1.2.3.7' },
        { tag: Tags.SeriesInstanceUID, vr: 'UI', value: '1.2.3.7.2' },
      ],
      { explicitVr: false, littleEndian: true },
    );
    const result = await t.ctx.store.store(dataset, { kind: 'rest' });
    const stored = await t.ctx.store.readDicom(result.ID);
    expect(stored.toString('latin1', 128, 132)).to.equal('DICM');
    expect(stored.subarray(stored.length - dataset.length).equals(dataset)).to.equal(true);
    const parsed = await t.ctx.store.parseInstance(result.ID);
    expect(parsed.transferSyntaxUid).to.equal(ImplicitVRLittleEndian);
    expect(parsed.dataset.string(Tags.PatientName)).to.equal('BARE^DATASET');
    expectMd5s(t, result.ID, stored, stored);
  });

  it('compresses attachments with zlib in Orthanc format when StorageCompression is true', async () => {
    t = await tempContext({ StorageCompression: true });
    const bytes = makeInstance({ pixelBytes: 65536 });
    const result = await t.ctx.store.store(bytes, { kind: 'rest' });
    const [file] = storedFiles(t.ctx.config.StorageDirectory);
    const onDisk = readFileSync(file!);
    expect(Number(onDisk.readBigUInt64LE(0))).to.equal(bytes.length);
    expect(onDisk.length).to.be.lessThan(bytes.length);
    expect((await t.ctx.store.readDicom(result.ID)).equals(bytes)).to.equal(true);
    const stats = t.ctx.index.statistics();
    expect(stats.totalUncompressedSize).to.equal(bytes.length);
    expect(stats.totalCompressedSize).to.equal(onDisk.length);
    expectMd5s(t, result.ID, bytes, onDisk);
    // Streamed past what is kept in memory, then compressed.
    const large = makeInstance({ sopInstanceUid: '1.2.3.4.5.9', pixelBytes: 12 << 20 });
    const second = await t.ctx.store.store(in64KbChunks(large), { kind: 'rest' });
    expectMd5s(t, second.ID, large, storedFileOf(t, second.ID));
  });

  it('records the origin and core metadata', async () => {
    t = await tempContext();
    const result = await t.ctx.store.store(makeInstance(), {
      kind: 'dimse',
      remoteAet: 'MODALITY1',
      calledAet: 'ORTHANC',
      remoteIp: '10.0.0.5',
    });
    const row = t.ctx.index.findByPublicId(result.ID)!;
    const meta = new Map(t.ctx.index.metadata(row.id).map((m) => [m.type, m.value]));
    expect(meta.get(MetadataType.Origin)).to.equal('DicomProtocol');
    expect(meta.get(MetadataType.RemoteAET)).to.equal('MODALITY1');
    expect(meta.get(MetadataType.CalledAET)).to.equal('ORTHANC');
    expect(meta.get(MetadataType.RemoteIP)).to.equal('10.0.0.5');
    expect(meta.get(MetadataType.TransferSyntax)).to.equal('1.2.840.10008.1.2.1');
    expect(meta.get(MetadataType.SopClassUid)).to.equal('1.2.840.10008.5.1.4.1.1.2');
    expect(meta.get(MetadataType.IndexInSeries)).to.equal('1');
    expect(meta.get(MetadataType.ReceptionDate)).to.match(/^\d{8}T\d{6}$/);
  });

  it('a stored file cut short on disk is CorruptedFile when read, not served as whole', async () => {
    // The file on disk is checked: no storage cache in front of it.
    t = await tempContext({ MaximumStorageCacheSize: 0 });
    const result = await t.ctx.store.store(makeInstance({ pixelBytes: 20000 }), { kind: 'rest' });
    const row = t.ctx.index.findByPublicId(result.ID)!;
    const att = t.ctx.index.attachment(row.id, 1)!;
    expect((await t.ctx.store.readDicom(result.ID)).length).to.equal(att.compressedSize);
    truncateSync(join(t.dir, 'storage', att.uuid.slice(0, 2), att.uuid.slice(2, 4), att.uuid), att.compressedSize - 100);
    const error = await t.ctx.store.readDicom(result.ID).then(
      () => undefined,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(error?.code).to.equal('CorruptedFile');
    expect(error?.message).to.match(/bytes on disk/);
  });

  it("IndexInSeries as Orthanc's: the InstanceNumber, else the ImageIndex, else none", async () => {
    t = await tempContext();
    const series = '1.2.826.0.1.3680043.10.1.99.4242';
    const indexOf = async (bytes: Buffer): Promise<string | undefined> => {
      const result = await t.ctx.store.store(bytes, { kind: 'rest' });
      const row = t.ctx.index.findByPublicId(result.ID)!;
      return t.ctx.index.getMetadata(row.id, MetadataType.IndexInSeries)?.value;
    };
    // Received in any order: each keeps its own number, not its rank of arrival.
    expect(await indexOf(makeInstance({ seriesInstanceUid: series, instanceNumber: 7 }))).to.equal('7');
    expect(await indexOf(makeInstance({ seriesInstanceUid: series, instanceNumber: 3 }))).to.equal('3');
    const imageIndex = { tag: 0x00541330, vr: 'US' as const, value: [12] };
    expect(await indexOf(makeInstance({ seriesInstanceUid: series, instanceNumber: null, extra: [imageIndex] }))).to.equal('12');
    expect(await indexOf(makeInstance({ seriesInstanceUid: series, instanceNumber: null }))).to.equal(undefined);
  });

  it('gives 64 consecutive files one storage folder, then moves to another, with valid version 4 UUIDs', async () => {
    t = await tempContext();
    const folders: string[] = [];
    for (let i = 0; i < 65; i++) {
      const result = await t.ctx.store.store(makeInstance({ patientId: 'RUN', instanceNumber: i + 1 }), { kind: 'rest' });
      const att = t.ctx.index.attachment(t.ctx.index.findByPublicId(result.ID)!.id, DICOM_ATTACHMENT)!;
      expect(att.uuid).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      folders.push(`${att.uuid.slice(0, 2)}/${att.uuid.slice(2, 4)}`);
    }
    expect(new Set(folders.slice(0, 64)).size).to.equal(1);
    expect(storedFiles(t.ctx.config.StorageDirectory).filter((f) => f.includes(`/${folders[0]}/`))).to.have.length(64 + (folders[64] === folders[0] ? 1 : 0));
  });

  it('logs changes from the instance up, as Orthanc does', async () => {
    t = await tempContext();
    const study = '1.2.840.77';
    const series = '1.2.840.77.1';
    await t.ctx.store.store(makeInstance({ studyInstanceUid: study, seriesInstanceUid: series }), { kind: 'rest' });
    await t.ctx.store.store(makeInstance({ studyInstanceUid: study, seriesInstanceUid: series }), { kind: 'rest' });
    expect(changeNames(t)).to.deep.equal(['NewInstance', 'NewSeries', 'NewStudy', 'NewPatient', 'NewInstance']);
    const seq = t.ctx.index.changes(0, 1000).changes.map((c) => c.seq);
    expect(seq).to.deep.equal([...seq].sort((a, b) => a - b));
  });

  it('deletes a resource with its children, its files, and the parents it leaves empty', async () => {
    t = await tempContext();
    const study = '1.2.840.88';
    const a = await t.ctx.store.store(makeInstance({ studyInstanceUid: study, seriesInstanceUid: '1.2.840.88.1' }), { kind: 'rest' });
    const b = await t.ctx.store.store(makeInstance({ studyInstanceUid: study, seriesInstanceUid: '1.2.840.88.2' }), { kind: 'rest' });
    expect(storedFiles(t.ctx.config.StorageDirectory)).to.have.length(2);
    const remaining = await t.ctx.store.delete(a.ID, Level.Instance);
    expect(remaining?.publicId).to.equal(a.ParentStudy);
    expect(t.ctx.index.findByPublicId(a.ParentSeries)).to.equal(undefined);
    expect(storedFiles(t.ctx.config.StorageDirectory)).to.have.length(1);
    const none = await t.ctx.store.delete(b.ParentPatient, Level.Patient);
    expect(none).to.equal(null);
    expect(t.ctx.index.statistics()).to.deep.include({ countPatients: 0, countStudies: 0, countSeries: 0, countInstances: 0 });
    expect(t.ctx.index.statistics().totalCompressedSize).to.equal(0);
    expect(storedFiles(t.ctx.config.StorageDirectory)).to.deep.equal([]);
    expect(t.ctx.index.changes(0, 100).changes).to.deep.equal([]);
    expect(() => t.ctx.store.resource(b.ID)).to.throw(PacsError);
  });

  it('recycles the oldest unprotected patient beyond MaximumPatientCount', async () => {
    t = await tempContext({ MaximumPatientCount: 2 });
    const p1 = await t.ctx.store.store(makeInstance({ patientId: 'A' }), { kind: 'rest' });
    const p2 = await t.ctx.store.store(makeInstance({ patientId: 'B' }), { kind: 'rest' });
    t.ctx.index.setProtected(t.ctx.index.findByPublicId(p1.ParentPatient)!.id, true);
    const p3 = await t.ctx.store.store(makeInstance({ patientId: 'C' }), { kind: 'rest' });
    expect(t.ctx.index.findByPublicId(p1.ParentPatient), 'protected patient kept').to.not.equal(undefined);
    expect(t.ctx.index.findByPublicId(p2.ParentPatient), 'oldest unprotected recycled').to.equal(undefined);
    expect(t.ctx.index.findByPublicId(p3.ParentPatient)).to.not.equal(undefined);
    expect(storedFiles(t.ctx.config.StorageDirectory)).to.have.length(2);
  });

  it('recycles by MaximumStorageSize, oldest reception first', async () => {
    t = await tempContext({ MaximumStorageSize: 1 });
    const big = 400 * 1024;
    const first = await t.ctx.store.store(makeInstance({ patientId: 'A', pixelBytes: big }), { kind: 'rest' });
    const second = await t.ctx.store.store(makeInstance({ patientId: 'B', pixelBytes: big }), { kind: 'rest' });
    // A gets a new instance: it becomes the most recent, so B is the one to go.
    await t.ctx.store.store(makeInstance({ patientId: 'A', pixelBytes: 1024 }), { kind: 'rest' });
    await t.ctx.store.store(makeInstance({ patientId: 'C', pixelBytes: big }), { kind: 'rest' });
    expect(t.ctx.index.findByPublicId(first.ParentPatient)).to.not.equal(undefined);
    expect(t.ctx.index.findByPublicId(second.ParentPatient)).to.equal(undefined);
    expect(t.ctx.index.statistics().totalCompressedSize).to.be.at.most(1024 * 1024);
  });

  it('refuses new instances when full in MaximumStorageMode Reject, storing nothing', async () => {
    t = await tempContext({ MaximumPatientCount: 1, MaximumStorageMode: 'Reject' });
    await t.ctx.store.store(makeInstance({ patientId: 'A' }), { kind: 'rest' });
    let error: unknown;
    try {
      await t.ctx.store.store(makeInstance({ patientId: 'B' }), { kind: 'rest' });
    } catch (e) {
      error = e;
    }
    expect((error as PacsError).code).to.equal('FullStorage');
    expect(t.ctx.index.statistics().countPatients).to.equal(1);
    expect(storedFiles(t.ctx.config.StorageDirectory)).to.have.length(1);
    expect(tmpFiles(t.ctx.config.StorageDirectory)).to.deep.equal([]);
  });

  it('recycles by last reception even after SQLite reused a deleted row\'s id', async () => {
    t = await tempContext({ MaximumPatientCount: 2 });
    await t.ctx.store.store(makeInstance({ patientId: 'B' }), { kind: 'rest' });
    await t.ctx.store.store(makeInstance({ patientId: 'A' }), { kind: 'rest' });
    const a2 = await t.ctx.store.store(makeInstance({ patientId: 'A' }), { kind: 'rest' });
    await t.ctx.store.delete(a2.ID, Level.Instance); // frees the highest id, which SQLite hands out again
    await t.ctx.store.store(makeInstance({ patientId: 'B' }), { kind: 'rest' }); // B is now the most recent
    await t.ctx.store.store(makeInstance({ patientId: 'C' }), { kind: 'rest' });
    const left = t.ctx.index.list(Level.Patient).map((r) => t.ctx.index.mainTags(r.id).get(Tags.PatientID));
    expect(left.sort()).to.deep.equal(['B', 'C']);
  });

  it('marks resources stable after StableAge and logs the Stable* changes', async function () {
    this.timeout(15000);
    t = await tempContext({ StableAge: 1 });
    const r = await t.ctx.store.store(makeInstance(), { kind: 'rest' });
    expect(t.ctx.store.isStable(r.ParentSeries)).to.equal(false);
    await waitFor(() => changeNames(t).includes('StablePatient'), 'StablePatient');
    expect(t.ctx.store.isStable(r.ParentSeries)).to.equal(true);
    expect(changeNames(t)).to.include.members(['StableSeries', 'StableStudy', 'StablePatient']);
  });
});

describe('store: start-up recovery', function () {
  let t: TestContext | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  it('publishes a write the index committed, discards one it did not, and removes files queued for deletion', async () => {
    t = await tempContext();
    const { StorageDirectory: root } = t.ctx.config;
    const kept = await t.ctx.store.store(makeInstance(), { kind: 'rest' });
    const deleted = await t.ctx.store.store(makeInstance(), { kind: 'rest' });
    const keptUuid = t.ctx.index.attachment(t.ctx.index.findByPublicId(kept.ID)!.id, DICOM_ATTACHMENT)!.uuid;
    const deletedRow = t.ctx.index.findByPublicId(deleted.ID)!;
    const deletedUuid = t.ctx.index.attachment(deletedRow.id, DICOM_ATTACHMENT)!.uuid;
    const config = t.ctx.config;
    // A crash between the index commit of a deletion and the unlink: the row is gone, the file is still there.
    t.ctx.index.deleteResource(deletedRow.id);
    await t.ctx.close();
    // A crash between an index commit and the rename: the committed file is still under its temp name.
    const keptPath = join(root, keptUuid.slice(0, 2), keptUuid.slice(2, 4), keptUuid);
    renameSync(keptPath, `${keptPath}.tmp`);
    // A crash before the commit: an unknown temp file.
    mkdirSync(join(root, '0b', '1c'), { recursive: true });
    writeFileSync(join(root, '0b', '1c', '0b1c2d3e-0000-4000-8000-000000000000.tmp'), 'partial');
    // The stop was not clean: no marker.
    rmSync(join(root, '.pacsnode-clean'), { force: true });
    const ctx = await createContext(config);
    t = { ctx, dir: t.dir, close: t.close };
    t.close = async () => {
      await ctx.close();
    };
    expect(existsSync(keptPath)).to.equal(true);
    expect(tmpFiles(root)).to.deep.equal([]);
    expect(existsSync(join(root, deletedUuid.slice(0, 2), deletedUuid.slice(2, 4), deletedUuid))).to.equal(false);
    expect(ctx.index.pendingFiles()).to.deep.equal([]);
    expect((await ctx.store.readDicom(kept.ID)).length).to.be.greaterThan(0);
  });
});

describe('index: schema', function () {
  it('records its schema version and refuses a newer one', () => {
    const dir = join(process.env.TMPDIR ?? '/tmp', `pacsnode-schema-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'index.sqlite');
    const a = new SqliteIndex(path);
    expect(a.schemaVersion).to.equal(SCHEMA_VERSION);
    a.db.prepare(`UPDATE global_properties SET value = '99' WHERE name = 'schema_version'`).run();
    a.close();
    expect(() => new SqliteIndex(path)).to.throw(/schema version 99/);
  });
});

describe('store: truncated files from the pydicom corpus', function () {
  const CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files/';
  let t: TestContext | undefined;
  before(function () {
    if (!existsSync(CORPUS)) this.skip(); // python3-pydicom is installed by .ci/run
  });
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  for (const name of ['JPEG2000.dcm', 'SC_rgb_rle.dcm', 'MR_small.dcm', 'CT_small.dcm']) {
    it(`${name} cut by 100 bytes is refused and nothing is stored`, async () => {
      t = await tempContext();
      const bytes = readFileSync(CORPUS + name);
      let error: unknown;
      try {
        await t.ctx.store.store(bytes.subarray(0, bytes.length - 100), { kind: 'rest' });
      } catch (e) {
        error = e;
      }
      expect(error).to.be.instanceOf(DicomFormatError);
      expect(storedFiles(t.ctx.config.StorageDirectory)).to.deep.equal([]);
      expect((await t.ctx.store.store(bytes, { kind: 'rest' })).Status).to.equal('Success');
    });
  }
});
