/**
 * QIDO-RS over real HTTP: the six search routes, keys by keyword and by tag, wildcards, date ranges, UID lists,
 * includefield (repeated, comma-separated, all), limit/offset, fuzzymatching, the default and computed attributes,
 * DICOM JSON and multipart XML answers, QidoCaseSensitive, and bad input. Also the dicomweb-client package as a
 * real client.
 */
import { expect } from 'chai';
import { api } from 'dicomweb-client';
// @ts-expect-error xhr2 has no type declarations
import XHR from 'xhr2';
import { toNativeXml } from '../src/dicomweb/xml.js';
import { readMultipart } from '../src/dicomweb/multipart.js';
import { tempServer, type TestServer } from './helpers/context.js';
import { makeInstance } from './helpers/factory.js';

type Json = Record<string, { vr: string; Value?: unknown[] }>;

const ST1 = '1.2.826.0.1.3680043.8.498.101';
const ST2 = '1.2.826.0.1.3680043.8.498.102';
const ST3 = '1.2.826.0.1.3680043.8.498.103';
const SE1A = '1.2.826.0.1.3680043.8.498.101.1';
const SE1B = '1.2.826.0.1.3680043.8.498.101.2';
const SE2A = '1.2.826.0.1.3680043.8.498.102.1';
const SE3A = '1.2.826.0.1.3680043.8.498.103.1';

async function get(s: TestServer, path: string, accept?: string): Promise<{ status: number; body: Buffer; type: string; headers: Headers }> {
  const res = await fetch(`${s.url}${path}`, { headers: accept ? { Accept: accept } : {} });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()), type: res.headers.get('content-type') ?? '', headers: res.headers };
}

async function search(s: TestServer, path: string): Promise<Json[]> {
  const a = await get(s, path, 'application/dicom+json');
  expect(a.status, a.body.toString()).to.equal(200);
  expect(a.type).to.match(/^application\/dicom\+json/);
  return JSON.parse(a.body.toString('utf8')) as Json[];
}

const value = (ds: Json, tag: string): unknown => ds[tag]?.Value?.[0];
const uids = (list: Json[], tag: string) => list.map((d) => value(d, tag)).sort();

describe('DICOMweb QIDO-RS', function () {
  let s: TestServer;

  before(async function () {
    s = await tempServer({ StorageAccessOnFind: 'Always' });
    const store = (spec: Parameters<typeof makeInstance>[0]) => s.ctx.store.store(makeInstance(spec), { kind: 'rest' });
    // Study 1: two series (CT, two instances; SR, one), patient "Müller^Hans".
    await store({ studyInstanceUid: ST1, seriesInstanceUid: SE1A, sopInstanceUid: `${SE1A}.1`, instanceNumber: 1, patientId: 'P1', patientName: 'MÜLLER^HANS', specificCharacterSet: 'ISO_IR 192', studyDate: '20040315', accessionNumber: 'A100', studyDescription: 'Chest CT', modality: 'CT', seriesNumber: 1, seriesDescription: 'Axial' });
    await store({ studyInstanceUid: ST1, seriesInstanceUid: SE1A, sopInstanceUid: `${SE1A}.2`, instanceNumber: 2, patientId: 'P1', patientName: 'MÜLLER^HANS', specificCharacterSet: 'ISO_IR 192', studyDate: '20040315', accessionNumber: 'A100', studyDescription: 'Chest CT', modality: 'CT', seriesNumber: 1, seriesDescription: 'Axial' });
    await store({ studyInstanceUid: ST1, seriesInstanceUid: SE1B, sopInstanceUid: `${SE1B}.1`, patientId: 'P1', patientName: 'MÜLLER^HANS', specificCharacterSet: 'ISO_IR 192', studyDate: '20040315', accessionNumber: 'A100', studyDescription: 'Chest CT', modality: 'SR', seriesNumber: 2, seriesDescription: 'Report' });
    await store({ studyInstanceUid: ST2, seriesInstanceUid: SE2A, sopInstanceUid: `${SE2A}.1`, patientId: 'P2', patientName: 'KOCH^ANNA', studyDate: '20100601', accessionNumber: 'B200', studyDescription: 'Brain MR', modality: 'MR' });
    await store({ studyInstanceUid: ST3, seriesInstanceUid: SE3A, sopInstanceUid: `${SE3A}.1`, patientId: 'P2', patientName: 'KOCH^ANNA', studyDate: '20200101', accessionNumber: 'C300', studyDescription: 'knee', modality: 'CR' });
  });

  after(async () => s.close());

  it('answers every study with the PS3.18 default attributes and the computed ones', async function () {
    const list = await search(s, '/dicom-web/studies');
    expect(list).to.have.length(3);
    const st1 = list.find((d) => value(d, '0020000D') === ST1)!;
    expect(st1['00080005']).to.deep.equal({ vr: 'CS', Value: ['ISO_IR 192'] });
    expect(st1['00100010']).to.deep.equal({ vr: 'PN', Value: [{ Alphabetic: 'MÜLLER^HANS' }] });
    expect(value(st1, '00100020')).to.equal('P1');
    expect(value(st1, '00080020')).to.equal('20040315');
    expect(value(st1, '00080030')).to.equal('101500');
    expect(value(st1, '00080050')).to.equal('A100');
    expect(value(st1, '00200010')).to.equal('S1');
    expect(value(st1, '00100030')).to.equal('19700101');
    expect(value(st1, '00100040')).to.equal('O');
    expect(st1['00080061']!.Value!.slice().sort()).to.deep.equal(['CT', 'SR']);
    expect(st1['00201206']).to.deep.equal({ vr: 'IS', Value: [2] });
    expect(st1['00201208']).to.deep.equal({ vr: 'IS', Value: [3] });
    expect(value(st1, '00081190')).to.equal(`${s.url}/dicom-web/studies/${ST1}`);
    // Absent values are listed empty (ReferringPhysicianName is not in the files).
    expect(st1['00080090']).to.deep.equal({ vr: 'PN' });
    // Not asked: StudyDescription is not a default attribute.
    expect(st1['00081030']).to.equal(undefined);
    // Keys in tag order.
    const keys = Object.keys(st1);
    expect(keys).to.deep.equal([...keys].sort());
  });

  it('matches keys given by keyword or by tag, wildcards, date ranges and UID lists', async function () {
    expect(uids(await search(s, '/dicom-web/studies?PatientID=P2'), '0020000D')).to.deep.equal([ST2, ST3]);
    expect(uids(await search(s, '/dicom-web/studies?00100020=P1'), '0020000D')).to.deep.equal([ST1]);
    expect(uids(await search(s, '/dicom-web/studies?PatientName=ko*'), '0020000D')).to.deep.equal([ST2, ST3]);
    expect(uids(await search(s, '/dicom-web/studies?PatientName=*ll*'), '0020000D')).to.deep.equal([ST1]);
    expect(uids(await search(s, '/dicom-web/studies?StudyDate=20040101-20101231'), '0020000D')).to.deep.equal([ST1, ST2]);
    expect(uids(await search(s, '/dicom-web/studies?StudyDate=20100101-'), '0020000D')).to.deep.equal([ST2, ST3]);
    expect(uids(await search(s, `/dicom-web/studies?StudyInstanceUID=${ST1}%2C${ST3}`), '0020000D')).to.deep.equal([ST1, ST3]);
    expect(uids(await search(s, `/dicom-web/studies?StudyInstanceUID=${ST1}&StudyInstanceUID=${ST2}`), '0020000D')).to.deep.equal([ST1, ST2]);
    expect(uids(await search(s, '/dicom-web/studies?ModalitiesInStudy=SR'), '0020000D')).to.deep.equal([ST1]);
    expect(uids(await search(s, '/dicom-web/studies?ModalitiesInStudy=MR%2CCR'), '0020000D')).to.deep.equal([ST2, ST3]);
    expect(await search(s, '/dicom-web/studies?PatientID=nobody')).to.deep.equal([]);
    // A matching key is returned even when it is not a default attribute.
    const [desc] = await search(s, '/dicom-web/studies?StudyDescription=Brain*');
    expect(value(desc!, '00081030')).to.equal('Brain MR');
  });

  it('follows QidoCaseSensitive for non-PN values, PN is always case-insensitive', async function () {
    expect(await search(s, '/dicom-web/studies?StudyDescription=KNEE')).to.deep.equal([]);
    const other = await tempServer({ DicomWeb: { QidoCaseSensitive: false } });
    try {
      await other.ctx.store.store(makeInstance({ studyDescription: 'knee' }), { kind: 'rest' });
      expect(await search(other, '/dicom-web/studies?StudyDescription=KNEE')).to.have.length(1);
      expect(await search(other, '/dicom-web/studies?PatientName=doe*')).to.have.length(1);
    } finally {
      await other.close();
    }
  });

  it('reads includefield repeated, comma-separated and all', async function () {
    const [a] = await search(s, `/dicom-web/studies?StudyInstanceUID=${ST1}&includefield=00081030%2C00080060&includefield=PatientAge`);
    expect(value(a!, '00081030')).to.equal('Chest CT');
    expect(a!['00101010']).to.deep.equal({ vr: 'AS' });
    // A sequence path asks for the top-level sequence (absent here: listed empty).
    const [seq] = await search(s, `/dicom-web/studies?StudyInstanceUID=${ST1}&includefield=00081032.00080100`);
    expect(seq!['00081032']).to.deep.equal({ vr: 'SQ' });
    const [b] = await search(s, `/dicom-web/studies?StudyInstanceUID=${ST1}&includefield=all`);
    expect(value(b!, '00081030')).to.equal('Chest CT');
    expect(value(b!, '00101000')).to.equal(undefined);
    // A tag read from the stored file (not in the index): Rows at instance level is a default.
    const [i] = await search(s, `/dicom-web/studies/${ST1}/series/${SE1A}/instances?SOPInstanceUID=${SE1A}.1`);
    expect(i!['00280010']!.vr).to.equal('US');
    expect(value(i!, '00280010')).to.be.a('number');
    expect(value(i!, '00080016')).to.equal('1.2.840.10008.5.1.4.1.1.2');
    expect(value(i!, '00200013')).to.equal(1);
    expect(value(i!, '00081190')).to.equal(`${s.url}/dicom-web/studies/${ST1}/series/${SE1A}/instances/${SE1A}.1`);
  });

  it('pages with limit and offset, in the order received', async function () {
    const all = await search(s, '/dicom-web/studies');
    const page1 = await search(s, '/dicom-web/studies?limit=2&offset=0');
    const page2 = await search(s, '/dicom-web/studies?limit=2&offset=2');
    expect(page1.map((d) => value(d, '0020000D'))).to.deep.equal(all.slice(0, 2).map((d) => value(d, '0020000D')));
    expect(page2.map((d) => value(d, '0020000D'))).to.deep.equal(all.slice(2).map((d) => value(d, '0020000D')));
    expect(await search(s, '/dicom-web/studies?offset=10')).to.deep.equal([]);
  });

  it('accepts fuzzymatching and says it matched literally', async function () {
    const a = await get(s, '/dicom-web/studies?fuzzymatching=true&PatientName=KOCH*', 'application/dicom+json');
    expect(a.status).to.equal(200);
    expect(a.headers.get('warning')).to.match(/^299 .*fuzzymatching/);
    expect(JSON.parse(a.body.toString())).to.have.length(2);
    const b = await get(s, '/dicom-web/studies?fuzzymatching=false', 'application/dicom+json');
    expect(b.headers.get('warning')).to.equal(null);
  });

  it('searches series and instances, in a study, a series, or everywhere', async function () {
    const series = await search(s, `/dicom-web/studies/${ST1}/series`);
    expect(uids(series, '0020000E')).to.deep.equal([SE1A, SE1B]);
    const ct = series.find((d) => value(d, '0020000E') === SE1A)!;
    expect(value(ct, '00080060')).to.equal('CT');
    expect(value(ct, '0008103E')).to.equal('Axial');
    expect(value(ct, '00200011')).to.equal(1);
    expect(ct['00201209']).to.deep.equal({ vr: 'IS', Value: [2] });
    expect(value(ct, '00081190')).to.equal(`${s.url}/dicom-web/studies/${ST1}/series/${SE1A}`);
    // Within a study, study attributes are not repeated.
    expect(ct['00100010']).to.equal(undefined);

    const allSeries = await search(s, '/dicom-web/series?Modality=CR');
    expect(uids(allSeries, '0020000E')).to.deep.equal([SE3A]);
    // Over all studies, the study attributes come too.
    expect(value(allSeries[0]!, '0020000D')).to.equal(ST3);
    expect(value(allSeries[0]!, '00100020')).to.equal('P2');

    expect(uids(await search(s, `/dicom-web/studies/${ST1}/instances`), '00080018')).to.deep.equal([`${SE1A}.1`, `${SE1A}.2`, `${SE1B}.1`]);
    expect(uids(await search(s, `/dicom-web/studies/${ST1}/series/${SE1A}/instances`), '00080018')).to.deep.equal([`${SE1A}.1`, `${SE1A}.2`]);
    const everywhere = await search(s, '/dicom-web/instances?PatientID=P2');
    expect(uids(everywhere, '00080018')).to.deep.equal([`${SE2A}.1`, `${SE3A}.1`]);
    expect(value(everywhere[0]!, '0020000E')).to.be.a('string');
    expect(uids(await search(s, `/dicom-web/instances?InstanceNumber=2`), '00080018')).to.deep.equal([`${SE1A}.2`]);
  });

  it('writes XML 1.0 whatever the text holds: markup escaped, control characters XML cannot carry replaced', () => {
    const xml = toNativeXml({ '00104000': { vr: 'LT', Value: ['page 1\fpage 2 \u001b$B <b> & "q"\r\n\tend'] } });
    expect(xml).to.contain('<Value number="1">page 1\uFFFDpage 2 \uFFFD$B &lt;b&gt; &amp; &quot;q&quot;\r\n\tend</Value>');
    // eslint-disable-next-line no-control-regex
    expect(/[\x00-\x08\x0B\x0C\x0E-\x1F]/.test(xml)).to.equal(false);
  });

  it('answers multipart/related XML when asked', async function () {
    const a = await get(s, `/dicom-web/studies?StudyInstanceUID=${ST1}`, 'multipart/related; type="application/dicom+xml"');
    expect(a.status).to.equal(200);
    const boundary = /boundary=([^;]+)/.exec(a.type)![1]!;
    expect(a.type).to.match(/^multipart\/related; type="application\/dicom\+xml"/);
    const parts: string[] = [];
    for await (const part of readMultipart((async function* () { yield a.body; })(), boundary)) {
      expect(part.headers.get('content-type')).to.equal('application/dicom+xml');
      let text = '';
      for await (const chunk of part.body) text += Buffer.from(chunk).toString('utf8');
      parts.push(text);
    }
    expect(parts).to.have.length(1);
    expect(parts[0]).to.contain('<NativeDicomModel');
    expect(parts[0]).to.contain('<DicomAttribute tag="00100010" vr="PN" keyword="PatientName">');
    expect(parts[0]).to.contain('<FamilyName>MÜLLER</FamilyName>');
    expect(parts[0]).to.contain(`<Value number="1">${ST1}</Value>`);
    // No match: no multipart body.
    expect((await get(s, '/dicom-web/studies?PatientID=none', 'multipart/related; type="application/dicom+xml"')).status).to.equal(204);
    expect((await get(s, '/dicom-web/studies', 'image/jpeg')).status).to.equal(406);
    expect((await get(s, '/dicom-web/studies', '*/*')).type).to.match(/^application\/dicom\+json/);
  });

  it('refuses bad input with 400 and unknown studies with 404, as Orthanc error JSON', async function () {
    for (const path of [
      '/dicom-web/studies?NotAKeyword=1',
      '/dicom-web/studies?includefield=Nope',
      '/dicom-web/studies?limit=-1',
      '/dicom-web/studies?offset=x',
      '/dicom-web/studies?fuzzymatching=maybe',
      '/dicom-web/studies/1.2.abc/series',
      '/dicom-web/studies/1.2.3/series/x..y/instances',
    ]) {
      const a = await get(s, path);
      expect(a.status, path).to.equal(400);
      expect(JSON.parse(a.body.toString()).HttpStatus).to.equal(400);
    }
    const a = await get(s, '/dicom-web/studies/1.2.3.4.5/series');
    expect(a.status).to.equal(404);
    expect(JSON.parse(a.body.toString()).Details).to.contain('1.2.3.4.5');
    expect((await get(s, `/dicom-web/studies/${ST1}/series/1.2.3/instances`)).status).to.equal(404);
  });

  it('follows DicomWeb.Root and DicomWeb.Enable', async function () {
    const moved = await tempServer({ DicomWeb: { Root: '/dw' } });
    const off = await tempServer({ DicomWeb: { Enable: false } });
    try {
      await moved.ctx.store.store(makeInstance({ studyInstanceUid: ST1 }), { kind: 'rest' });
      const list = await search(moved, '/dw/studies');
      expect(value(list[0]!, '00081190')).to.equal(`${moved.url}/dw/studies/${ST1}`);
      expect((await get(moved, '/dicom-web/studies')).status).to.equal(404);
      expect((await get(off, '/dicom-web/studies')).status).to.equal(404);
      expect((await get(off, '/wado?requestType=WADO&objectUID=1.2.3&contentType=application/dicom')).status).to.equal(404);
    } finally {
      await moved.close();
      await off.close();
    }
  });

  it('serves the dicomweb-client package', async function () {
    (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest = XHR;
    const client = new api.DICOMwebClient({ url: `${s.url}/dicom-web`, singlepart: false });
    const studies = (await client.searchForStudies({ queryParams: { PatientName: 'KOCH*' } })) as Json[];
    expect(uids(studies, '0020000D')).to.deep.equal([ST2, ST3]);
    const series = (await client.searchForSeries({ studyInstanceUID: ST1 })) as Json[];
    expect(uids(series, '0020000E')).to.deep.equal([SE1A, SE1B]);
    const instances = (await client.searchForInstances({ studyInstanceUID: ST1, seriesInstanceUID: SE1A })) as Json[];
    expect(instances).to.have.length(2);
  });
});
