import { expect } from 'chai';
import { Level } from '../src/store/levels.js';
import { CHANGE_TYPE_NAMES, ChangeType, MetadataType } from '../src/store/sqlite-index.js';
import { makeInstance } from './helpers/factory.js';
import { tempContext, type TestContext } from './helpers/context.js';

describe('index: metadata, labels, exports, protection, changes', function () {
  let t: TestContext;
  let ids: { ID: string; ParentPatient: string; ParentStudy: string };
  beforeEach(async () => {
    t = await tempContext();
    ids = await t.ctx.store.store(makeInstance({ patientId: 'IDX' }), { kind: 'rest' });
  });
  afterEach(async () => {
    await t.close();
  });

  it('keeps user metadata with revisions and logs UpdatedMetadata', () => {
    const study = t.ctx.index.findByPublicId(ids.ParentStudy)!;
    const now = '20240101T000000';
    expect(t.ctx.index.setMetadata(study, 1024, 'first', now)).to.equal(0);
    expect(t.ctx.index.setMetadata(study, 1024, 'second', now)).to.equal(1);
    expect(t.ctx.index.getMetadata(study.id, 1024)).to.deep.equal({ type: 1024, value: 'second', revision: 1 });
    expect(t.ctx.index.deleteMetadata(study, 1024, now)).to.equal(true);
    expect(t.ctx.index.deleteMetadata(study, 1024, now)).to.equal(false);
    expect(t.ctx.index.getMetadata(study.id, 1024)).to.equal(undefined);
    const changes = t.ctx.index.changes(0, 100).changes.map((c) => CHANGE_TYPE_NAMES[c.changeType]);
    expect(changes.filter((c) => c === 'UpdatedMetadata')).to.have.length(3);
    // Core metadata recorded at reception is still there.
    const instance = t.ctx.index.findByPublicId(ids.ID)!;
    expect(t.ctx.index.getMetadata(instance.id, MetadataType.Origin)?.value).to.equal('RestApi');
  });

  it('labels resources, lists them, and forgets them with the resource', async () => {
    const study = t.ctx.index.findByPublicId(ids.ParentStudy)!;
    t.ctx.index.addLabel(study.id, 'b');
    t.ctx.index.addLabel(study.id, 'a');
    t.ctx.index.addLabel(study.id, 'a');
    expect(t.ctx.index.labels(study.id)).to.deep.equal(['a', 'b']);
    expect(t.ctx.index.allLabels()).to.deep.equal(['a', 'b']);
    t.ctx.index.removeLabel(study.id, 'b');
    expect(t.ctx.index.labelsOf([study.id]).get(study.id)).to.deep.equal(['a']);
    await t.ctx.store.delete(ids.ParentPatient, Level.Patient);
    expect(t.ctx.index.allLabels()).to.deep.equal([]);
  });

  it('logs exports with Seq, pages them, and clears them', () => {
    for (let i = 0; i < 3; i++) {
      t.ctx.index.logExport({
        level: Level.Instance,
        publicId: ids.ID,
        remoteModality: 'PEER',
        patientId: 'IDX',
        studyInstanceUid: '1.2',
        seriesInstanceUid: '1.2.3',
        sopInstanceUid: `1.2.3.${i}`,
        date: '20240101T000000',
      });
    }
    const page = t.ctx.index.exports(0, 2);
    expect(page.exports.map((e) => e.sopInstanceUid)).to.deep.equal(['1.2.3.0', '1.2.3.1']);
    expect(page.done).to.equal(false);
    const rest = t.ctx.index.exports(page.last, 10);
    expect(rest.exports).to.have.length(1);
    expect(rest.done).to.equal(true);
    t.ctx.index.clearExports();
    expect(t.ctx.index.exports(0, 10).exports).to.deep.equal([]);
  });

  it('protects a patient and reports it', () => {
    const patient = t.ctx.index.findByPublicId(ids.ParentPatient)!;
    expect(t.ctx.index.isProtected(patient.id)).to.equal(false);
    t.ctx.index.setProtected(patient.id, true);
    expect(t.ctx.index.isProtected(patient.id)).to.equal(true);
  });

  it('keeps Seq growing after the changes are cleared, and reports sizes per resource', async () => {
    const before = t.ctx.index.lastChangeSeq();
    t.ctx.index.clearChanges();
    expect(t.ctx.index.changes(0, 10).changes).to.deep.equal([]);
    await t.ctx.store.store(makeInstance({ patientId: 'IDX2' }), { kind: 'rest' });
    const after = t.ctx.index.changes(0, 10).changes;
    expect(after[0]!.seq).to.be.greaterThan(before);
    expect(after[0]!.changeType).to.equal(ChangeType.NewInstance);
    const patient = t.ctx.index.findByPublicId(ids.ParentPatient)!;
    const sizes = t.ctx.index.resourceSizes(patient.id, Level.Patient);
    expect(sizes.instances).to.equal(1);
    expect(sizes.uncompressed).to.be.greaterThan(0);
  });

  it('lists the instances under each level with one metadata value and the DICOM file, in one statement', async () => {
    const spec = { patientId: 'FILES', studyInstanceUid: '1.2.826.0.1.3680043.99.1' };
    const a = await t.ctx.store.store(makeInstance({ ...spec, seriesInstanceUid: '1.2.826.0.1.3680043.99.1.1' }), { kind: 'rest' });
    const b = await t.ctx.store.store(makeInstance({ ...spec, seriesInstanceUid: '1.2.826.0.1.3680043.99.1.2', instanceNumber: 1 }), { kind: 'rest' });
    const c = await t.ctx.store.store(makeInstance({ ...spec, seriesInstanceUid: '1.2.826.0.1.3680043.99.1.2', instanceNumber: 2 }), { kind: 'rest' });
    expect(new Set([a.ParentStudy, b.ParentStudy, c.ParentStudy]).size).to.equal(1);
    const row = (publicId: string) => t.ctx.index.findByPublicId(publicId)!;
    // The last one lacks the metadata asked for.
    t.ctx.index.deleteMetadata(row(c.ID), MetadataType.TransferSyntax, '20240101T000000');
    const all = [a.ID, b.ID, c.ID];
    const cases: [string, Level, string[]][] = [
      [a.ParentPatient, Level.Patient, all],
      [a.ParentStudy, Level.Study, all],
      [a.ParentSeries, Level.Series, [a.ID]],
      [b.ParentSeries, Level.Series, [b.ID, c.ID]],
      [b.ID, Level.Instance, [b.ID]],
    ];
    for (const [publicId, level, expected] of cases) {
      const files = t.ctx.index.instanceFiles(row(publicId).id, level, MetadataType.TransferSyntax);
      expect(files.map((f) => f.row.publicId), `level ${level}`).to.deep.equal(expected);
      for (const f of files) {
        expect(f.row).to.deep.equal(row(f.row.publicId));
        expect(f.attachment).to.deep.equal(t.ctx.index.attachment(f.row.id, 1));
        const metadata = t.ctx.index.getMetadata(f.row.id, MetadataType.TransferSyntax)?.value;
        expect(f.metadata).to.equal(metadata);
        expect(metadata === undefined).to.equal(f.row.publicId === c.ID);
      }
    }
    // An instance whose file is not indexed (none should be) comes without an attachment, not without its row.
    t.ctx.index.db.prepare('DELETE FROM attachments WHERE resource_id = ?').run(row(a.ID).id);
    const [alone] = t.ctx.index.instanceFiles(row(a.ID).id, Level.Instance, MetadataType.TransferSyntax);
    expect(alone!.row.publicId).to.equal(a.ID);
    expect(alone!.attachment).to.equal(undefined);
    expect(alone!.metadata).to.match(/^1\.2\.840\.10008\.1\.2/);
    expect(t.ctx.index.instanceFiles(row(b.ID).id, Level.Instance, 12345)[0]!.metadata).to.equal(undefined);
  });
});
