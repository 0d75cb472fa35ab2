import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { Tags } from '../src/dicom/tag.js';
import { readPart10 } from '../src/dicom/reader.js';
import { isPublicId, orthancHash, publicIds } from '../src/store/ids.js';
import { tempContext, type TestContext } from './helpers/context.js';

const CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files/';
const RECORDED = JSON.parse(readFileSync(new URL('../fixtures/orthanc/ids-from-orthanc-1.10.1.json', import.meta.url), 'utf8')) as {
  files: Record<string, { ID?: string; ParentPatient?: string; ParentStudy?: string; ParentSeries?: string; HttpStatus?: number }>;
};

/** The published formula, computed independently: hex SHA-1 split into five groups of eight. */
function formula(text: string): string {
  const hex = createHash('sha1').update(text).digest('hex');
  return hex.match(/.{8}/g)!.join('-');
}

describe('public IDs (Orthanc DicomInstanceHasher)', function () {
  it('follow the published formula at every level', () => {
    const ids = publicIds({ patientId: 'P', studyInstanceUid: '1.2', seriesInstanceUid: '1.2.3', sopInstanceUid: '1.2.3.4' });
    expect(ids.patient).to.equal(formula('P'));
    expect(ids.study).to.equal(formula('P|1.2'));
    expect(ids.series).to.equal(formula('P|1.2|1.2.3'));
    expect(ids.instance).to.equal(formula('P|1.2|1.2.3|1.2.3.4'));
    expect(isPublicId(ids.instance)).to.equal(true);
    expect(orthancHash('')).to.equal('da39a3ee-5e6b4b0d-3255bfef-95601890-afd80709');
  });

  it('equal the IDs a real Orthanc 1.10.1 gave for the same files (recorded answers)', () => {
    expect(Object.keys(RECORDED.files).length).to.be.greaterThan(50);
    const sample = RECORDED.files['CT_small.dcm']!;
    expect(sample.ID).to.equal('f689ddd2-662f8fe1-8b18180d-ec2a2cee-937917af');
    // The IDs depend only on four identifiers, which the recording lets us check without the files.
    expect(publicIds({
      patientId: '1CT1',
      studyInstanceUid: '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322',
      seriesInstanceUid: '1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322',
      sopInstanceUid: '1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322',
    })).to.deep.equal({ patient: sample.ParentPatient, study: sample.ParentStudy, series: sample.ParentSeries, instance: sample.ID });
  });

  describe('on the pydicom corpus (when python3-pydicom is installed)', function () {
    let t: TestContext;
    before(async function () {
      if (!existsSync(CORPUS)) this.skip(); // the corpus is a Debian package; .ci/run installs it
      t = await tempContext();
    });
    after(async () => {
      await t?.close();
    });

    for (const [file, expected] of Object.entries(RECORDED.files)) {
      it(`${file}: ${expected.ID ? 'same IDs as Orthanc' : `refused as Orthanc does (${expected.HttpStatus})`}`, async () => {
        const bytes = readFileSync(CORPUS + file);
        if (expected.ID) {
          const result = await t.ctx.store.store(bytes, { kind: 'rest' });
          expect({ ID: result.ID, ParentPatient: result.ParentPatient, ParentStudy: result.ParentStudy, ParentSeries: result.ParentSeries }).to.deep.equal(expected);
          const ds = readPart10(bytes).dataset;
          expect(result.ID).to.equal(
            formula(`${ds.string(Tags.PatientID) ?? ''}|${ds.string(Tags.StudyInstanceUID)}|${ds.string(Tags.SeriesInstanceUID)}|${ds.string(Tags.SOPInstanceUID)}`),
          );
        } else {
          let error: unknown;
          try {
            await t.ctx.store.store(bytes, { kind: 'rest' });
          } catch (e) {
            error = e;
          }
          expect(error, 'the store refuses it').to.be.instanceOf(Error);
        }
      });
    }
  });
});
