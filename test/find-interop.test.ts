/** C-FIND SCP against DCMTK findscu: both information models, every level, matching, return keys, C-CANCEL. */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDicomHandlers } from '../src/app/dicom-handlers.js';
import { readPart10 } from '../src/dicom/reader.js';
import { Tags } from '../src/dicom/tag.js';
import { DicomScpServer } from '../src/dimse/scp/server.js';
import { makeInstance } from './helpers/factory.js';
import { tempContext, type TestContext } from './helpers/context.js';

function run(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('findscu', args, { env: { ...process.env, TCP_NODELAY: '1' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
    child.stderr.on('data', (d: Buffer) => (out += d.toString('latin1')));
    child.on('close', (code) => resolve({ code, out }));
  });
}

interface Spec {
  patientId: string;
  patientName: string;
  study: string;
  studyDate: string;
  series: string;
  modality: string;
  sop: string;
}

describe('C-FIND SCP with DCMTK findscu', function () {
  this.timeout(60000);
  let t: TestContext;
  let server: DicomScpServer;
  let port: number;
  let dir: string;
  const specs: Spec[] = [];

  before(async function () {
    if (!existsSync('/usr/bin/findscu')) this.skip(); // dcmtk is installed by .ci/run
    // findscu is a declared modality: by Orthanc's defaults an unknown caller may not C-FIND.
    t = await tempContext({ DicomModalities: { findscu: ['FINDSCU', '127.0.0.1', 104] } });
    // 40 patients (names with a mix of cases), 2 studies each, 2 series (CT, MR), 2 instances.
    for (let p = 0; p < 40; p++) {
      for (let st = 0; st < 2; st++) {
        for (let se = 0; se < 2; se++) {
          for (let i = 0; i < 2; i++) {
            const spec: Spec = {
              patientId: `FP${p}`,
              patientName: `${p % 2 === 0 ? 'DOE' : 'Smith'}^P${p}`,
              study: `1.2.826.0.1.77.${p}.${st}`,
              studyDate: `2020${String(1 + (p % 12)).padStart(2, '0')}${String(10 + st).padStart(2, '0')}`,
              series: `1.2.826.0.1.77.${p}.${st}.${se}`,
              modality: se === 0 ? 'CT' : 'MR',
              sop: `1.2.826.0.1.77.${p}.${st}.${se}.${i}`,
            };
            specs.push(spec);
            await t.ctx.store.store(
              makeInstance({
                patientId: spec.patientId,
                patientName: spec.patientName,
                studyInstanceUid: spec.study,
                studyDate: spec.studyDate,
                seriesInstanceUid: spec.series,
                modality: spec.modality,
                sopInstanceUid: spec.sop,
              }),
              { kind: 'rest' },
            );
          }
        }
      }
    }
    server = new DicomScpServer(createDicomHandlers(t.ctx), { aet: 'PACSNODE', maxPduLength: 16384, idleTimeoutMs: 30000 });
    port = await server.listen(0, '127.0.0.1');
    dir = mkdtempSync(join(tmpdir(), 'pacsnode-findscu-'));
  });
  after(async () => {
    await server?.close(1000);
    await t?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Runs findscu with -X (answers written to files) and reads the answers back. */
  async function find(model: '-P' | '-S', keys: string[]) {
    const out = mkdtempSync(join(dir, 'q-'));
    const r = await run([model, '-aec', 'PACSNODE', '-X', '-od', out, ...keys.flatMap((k) => ['-k', k]), '127.0.0.1', String(port)]);
    const answers = readdirSync(out).map((f) => readPart10(readFileSync(join(out, f))).dataset);
    return { ...r, answers };
  }

  const distinct = <T>(xs: T[]) => [...new Set(xs)];

  it('Patient Root, PATIENT level, PN wildcard matched case-insensitively, only the requested keys returned', async () => {
    const r = await find('-P', ['QueryRetrieveLevel=PATIENT', 'PatientName=smith*', 'PatientID', 'NumberOfPatientRelatedStudies']);
    expect(r.code, r.out).to.equal(0);
    const expected = distinct(specs.filter((s) => s.patientName.startsWith('Smith')).map((s) => s.patientId));
    expect(r.answers.map((a) => a.string(Tags.PatientID)).sort()).to.deep.equal(expected.sort());
    for (const a of r.answers) {
      expect([...a.elements.keys()].sort((x, y) => x - y)).to.deep.equal(
        [Tags.QueryRetrieveLevel, Tags.PatientName, Tags.PatientID, Tags.NumberOfPatientRelatedStudies].sort((x, y) => x - y),
      );
      expect(a.string(Tags.NumberOfPatientRelatedStudies)).to.equal('2');
    }
  });

  it('Study Root, STUDY level, date range and ModalitiesInStudy', async () => {
    const r = await find('-S', ['QueryRetrieveLevel=STUDY', 'StudyDate=20200301-20200531', 'StudyInstanceUID', 'ModalitiesInStudy']);
    expect(r.code, r.out).to.equal(0);
    const expected = distinct(specs.filter((s) => s.studyDate >= '20200301' && s.studyDate <= '20200531').map((s) => s.study));
    expect(r.answers.map((a) => a.string(Tags.StudyInstanceUID)).sort()).to.deep.equal(expected.sort());
    for (const a of r.answers) expect(a.strings(Tags.ModalitiesInStudy)).to.deep.equal(['CT', 'MR']);
  });

  it('SERIES and IMAGE levels within a study and a series', async () => {
    const series = await find('-S', ['QueryRetrieveLevel=SERIES', 'StudyInstanceUID=1.2.826.0.1.77.5.1', 'SeriesInstanceUID', 'Modality=MR']);
    expect(series.answers.map((a) => a.string(Tags.SeriesInstanceUID))).to.deep.equal(['1.2.826.0.1.77.5.1.1']);
    const images = await find('-S', [
      'QueryRetrieveLevel=IMAGE',
      'StudyInstanceUID=1.2.826.0.1.77.5.1',
      'SeriesInstanceUID=1.2.826.0.1.77.5.1.1',
      'SOPInstanceUID',
    ]);
    expect(images.answers.map((a) => a.string(Tags.SOPInstanceUID)).sort()).to.deep.equal([
      '1.2.826.0.1.77.5.1.1.0',
      '1.2.826.0.1.77.5.1.1.1',
    ]);
  });

  it('refuses a PATIENT level query in the Study Root model, and one without QueryRetrieveLevel', async () => {
    const patient = await run(['-v', '-S', '-aec', 'PACSNODE', '-k', 'QueryRetrieveLevel=PATIENT', '-k', 'PatientID', '127.0.0.1', String(port)]);
    expect(patient.out).to.match(/Final Find Response \(Error: DataSetDoesNotMatchSOPClass\)/);
    const none = await run(['-v', '-P', '-aec', 'PACSNODE', '-k', 'PatientID', '127.0.0.1', String(port)]);
    expect(none.out).to.match(/Final Find Response \(Error: DataSetDoesNotMatchSOPClass\)/);
  });

  it('stops on C-CANCEL with a Cancel status, after fewer answers than matches', async () => {
    const r = await run(['-v', '--cancel', '1', '-S', '-aec', 'PACSNODE', '-k', 'QueryRetrieveLevel=IMAGE', '-k', 'SOPInstanceUID', '127.0.0.1', String(port)]);
    const answers = (r.out.match(/Find Response: \d+ \(Pending\)/g) ?? []).length;
    expect(r.out).to.match(/Cancel/);
    expect(answers).to.be.lessThan(specs.length);
    // The association is still usable afterwards.
    const again = await find('-P', ['QueryRetrieveLevel=PATIENT', 'PatientID=FP3']);
    expect(again.answers).to.have.length(1);
  });
});
