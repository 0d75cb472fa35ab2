/**
 * The QIDO-RS and metadata requests the OHIF viewer 3.13 makes (../shared/OHIF.md §3), replayed with their exact
 * query strings and Accept headers against a server holding pydicom corpus studies, checking the attributes OHIF
 * reads: the study list's columns, the series panel's, and the series metadata with its BulkDataURIs.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempServer, type TestServer } from './helpers/context.js';
import { makeInstance } from './helpers/factory.js';

type Attr = { vr: string; Value?: unknown[]; BulkDataURI?: string };
type Json = Record<string, Attr>;

const CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const CT = { study: '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322', series: '1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322' };
const NM = { study: '1.3.6.1.4.1.5962.1.2.8.20040826185059.5457', series: '1.3.6.1.4.1.5962.1.3.8.1.20040826185059.5457' };
const GEN = { study: '1.2.826.0.1.3680043.8.498.401', series: '1.2.826.0.1.3680043.8.498.401.1', pdfSeries: '1.2.826.0.1.3680043.8.498.401.2' };
const INCLUDE = 'includefield=00081030%2C00080060%2C00080090%2C00100030';
const ACCEPT = { Accept: 'application/dicom+json' };

async function ohif(s: TestServer, path: string): Promise<Json[]> {
  const res = await fetch(`${s.url}${path}`, { headers: ACCEPT });
  const text = await res.text();
  expect(res.status, `${path}: ${text}`).to.equal(200);
  expect(res.headers.get('content-type')).to.match(/^application\/dicom\+json/);
  return JSON.parse(text) as Json[];
}

const v = (ds: Json, tag: string) => ds[tag]?.Value?.[0];

/** What OHIF's study list reads of a study. */
function expectStudyRow(ds: Json): void {
  for (const tag of ['0020000D', '00100010', '00100020', '00080020', '00080030', '00080050', '00080061', '00081030', '00201208', '00100030', '00100040']) {
    expect(ds[tag], tag).to.be.an('object');
    expect(ds[tag]!.vr, tag).to.be.a('string');
  }
  const name = v(ds, '00100010');
  if (name !== undefined) expect(name).to.have.property('Alphabetic');
}

describe('DICOMweb: the OHIF viewer\'s requests', function () {
  let s: TestServer;

  before(async function () {
    s = await tempServer();
    for (const f of ['CT_small.dcm', 'MR_small.dcm', 'JPEG2000.dcm', 'SC_rgb_rle.dcm']) await s.ctx.store.store(readFileSync(join(CORPUS, f)), { kind: 'rest' });
    await s.ctx.store.store(
      makeInstance({ studyInstanceUid: GEN.study, seriesInstanceUid: GEN.series, patientName: 'CompressedGen^X', patientId: 'X1CTY', accessionNumber: 'A17', studyDescription: 'Liver', modality: 'CT', studyDate: '20040505' }),
      { kind: 'rest' },
    );
    // An encapsulated PDF: its document is bulk data.
    await s.ctx.store.store(
      makeInstance({
        studyInstanceUid: GEN.study,
        seriesInstanceUid: GEN.pdfSeries,
        sopInstanceUid: `${GEN.pdfSeries}.1`,
        patientName: 'CompressedGen^X',
        patientId: 'X1CTY',
        modality: 'DOC',
        sopClassUid: '1.2.840.10008.5.1.4.1.1.104.1',
        extra: [{ tag: 0x00420011, vr: 'OB', value: Buffer.alloc(4000, 0x25) }],
      }),
      { kind: 'rest' },
    );
  });

  after(async () => s.close());

  it('study list, first load', async function () {
    const list = await ohif(s, `/dicom-web/studies?limit=101&offset=0&fuzzymatching=false&${INCLUDE}`);
    expect(list).to.have.length(5);
    list.forEach(expectStudyRow);
    const ct = list.find((d) => v(d, '0020000D') === CT.study)!;
    expect(v(ct, '00100010')).to.deep.equal({ Alphabetic: 'CompressedSamples^CT1' });
    expect(v(ct, '00081030')).to.equal('e+1');
    expect(ct['00080061']!.Value).to.deep.equal(['CT']);
    expect(v(ct, '00201208')).to.equal(1);
    const nm = list.find((d) => v(d, '0020000D') === NM.study)!;
    expect(v(nm, '00081030')).to.equal('Whole Body Bone');
  });

  it('study list with filters (wildcards, tag-number key, modality, date range)', async function () {
    const list = await ohif(
      s,
      `/dicom-web/studies?PatientName=*Compressed*&00100020=*1CT*&AccessionNumber=*1*&StudyDescription=*e*&ModalitiesInStudy=CT&limit=101&offset=0&fuzzymatching=false&${INCLUDE}&StudyDate=20040101-20041231`,
    );
    expect(list.map((d) => v(d, '0020000D'))).to.deep.equal([GEN.study]);
    // Only a start date, only an end date.
    const from = await ohif(s, `/dicom-web/studies?limit=101&offset=0&fuzzymatching=false&${INCLUDE}&StudyDate=20040801-20991231`);
    expect(from.map((d) => v(d, '00080020')).sort()).to.deep.equal(['20040826', '20040826', '20170101']);
    const to = await ohif(s, `/dicom-web/studies?limit=101&offset=0&fuzzymatching=false&${INCLUDE}&StudyDate=19700102-20040201`);
    expect(to.map((d) => v(d, '0020000D'))).to.deep.equal([CT.study]);
  });

  it('series panel and the viewer\'s series of the study', async function () {
    const panel = await ohif(s, `/dicom-web/studies/${CT.study}/series?includefield=0008103E%2C00080021`);
    expect(panel).to.have.length(1);
    const viewer = await ohif(s, `/dicom-web/studies/${CT.study}/series?includefield=00080021%2C00080031%2C0008103E%2C00200011`);
    const se = viewer[0]!;
    for (const tag of ['0020000E', '00080060', '00200011', '0008103E', '00080021', '00080031', '00201209']) expect(se[tag], tag).to.be.an('object');
    expect(v(se, '0020000E')).to.equal(CT.series);
    expect(v(se, '00080060')).to.equal('CT');
    expect(v(se, '00200011')).to.equal(1);
    expect(v(se, '00080021')).to.equal('19970430');
    expect(v(se, '00080031')).to.equal('112749');
    expect(v(se, '00201209')).to.equal(1);
  });

  it('viewer open: the study by UID, and the other studies of the patient', async function () {
    const one = await ohif(s, `/dicom-web/studies?limit=101&offset=0&fuzzymatching=false&${INCLUDE}&StudyInstanceUID=${NM.study}`);
    expect(one.map((d) => v(d, '0020000D'))).to.deep.equal([NM.study]);
    expectStudyRow(one[0]!);
    const patient = await ohif(s, `/dicom-web/studies?00100020=X1CTY&limit=101&offset=0&fuzzymatching=false&${INCLUDE}`);
    expect(patient.map((d) => v(d, '0020000D'))).to.deep.equal([GEN.study]);
    // Exact match: no wildcard implied.
    expect(await ohif(s, `/dicom-web/studies?00100020=X1CT&limit=101&offset=0&fuzzymatching=false&${INCLUDE}`)).to.deep.equal([]);
  });

  it('series metadata: full datasets, pixel data and PDF as BulkDataURIs on the browser\'s host', async function () {
    const list = await ohif(s, `/dicom-web/studies/${NM.study}/series/${NM.series}/metadata`);
    expect(list).to.have.length(1);
    const ds = list[0]!;
    const sop = v(ds, '00080018') as string;
    for (const tag of ['00080016', '00080018', '00280010', '00280011', '00280100', '00280004', '00200013']) expect(ds[tag], tag).to.be.an('object');
    expect(ds['7FE00010']!.BulkDataURI).to.equal(`${s.url}/dicom-web/studies/${NM.study}/series/${NM.series}/instances/${sop}/bulk/7fe00010`);
    const pdf = await ohif(s, `/dicom-web/studies/${GEN.study}/series/${GEN.pdfSeries}/metadata`);
    expect(pdf[0]!['00420011']).to.deep.equal({
      vr: 'OB',
      BulkDataURI: `${s.url}/dicom-web/studies/${GEN.study}/series/${GEN.pdfSeries}/instances/${GEN.pdfSeries}.1/bulk/00420011`,
    });
    expect(v(pdf[0]!, '00080016')).to.equal('1.2.840.10008.5.1.4.1.1.104.1');
  });
});
