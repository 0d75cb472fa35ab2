import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { publicIds } from '../src/store/ids.js';
import { Level } from '../src/store/levels.js';
import { ChangeType } from '../src/store/sqlite-index.js';
import { makeInstance, type InstanceSpec } from './helpers/factory.js';
import { tempServer, type TestServer } from './helpers/context.js';

type Json = Record<string, unknown>;

async function call(s: TestServer, method: string, path: string, body?: Buffer | string) {
  const res = await fetch(`${s.url}${path}`, { method, body });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json, type: res.headers.get('content-type') ?? '' };
}

function expectError(r: { status: number; json: unknown }, status: number, orthancStatus: number, method: string, uri: string): void {
  expect(r.status, JSON.stringify(r.json)).to.equal(status);
  const e = r.json as Json;
  expect(e).to.include({ HttpStatus: status, OrthancStatus: orthancStatus, Method: method, Uri: uri });
  expect(e).to.include.keys('HttpError', 'Message', 'OrthancError');
}

const UNKNOWN = '00000000-00000000-00000000-00000000-00000000';

/** Patient p, study st, series se, instance i: deterministic UIDs and IDs. */
function spec(p: number, st: number, se: number, i: number, extra: Partial<InstanceSpec> = {}): InstanceSpec {
  return {
    patientId: `HP${p}`,
    patientName: ['ALPHA^ONE', 'BETA^TWO', 'GAMMA^THREE', 'DELTA^FOUR'][p] ?? `P^${p}`,
    studyInstanceUid: `1.2.826.0.1.77.${p}.${st}`,
    seriesInstanceUid: `1.2.826.0.1.77.${p}.${st}.${se}`,
    sopInstanceUid: `1.2.826.0.1.77.${p}.${st}.${se}.${i}`,
    studyDate: `20${20 + p * 2 + st}0101`,
    studyDescription: `study ${p}.${st}`,
    seriesNumber: se + 1,
    modality: se === 0 ? 'CT' : 'MR',
    instanceNumber: 5 - i,
    ...extra,
  };
}

function ids(p: number, st: number, se: number, i: number) {
  const s = spec(p, st, se, i);
  return publicIds({
    patientId: s.patientId!,
    studyInstanceUid: s.studyInstanceUid!,
    seriesInstanceUid: s.seriesInstanceUid!,
    sopInstanceUid: s.sopInstanceUid!,
  });
}

async function store(s: TestServer, sp: InstanceSpec): Promise<Json> {
  const r = await call(s, 'POST', '/instances', makeInstance(sp));
  expect(r.status, r.text).to.equal(200);
  return r.json as Json;
}

/**
 * The shared data set: patient 0 has study 0 (series 0: 2 instances, series 1: 1 instance) and study 1 (1 series,
 * 1 instance); patient 1 has study 0 (1 series, 2 instances).
 */
const TREE: [number, number, number, number][] = [
  [0, 0, 0, 0],
  [0, 0, 0, 1],
  [0, 0, 1, 0],
  [0, 1, 0, 0],
  [1, 0, 0, 0],
  [1, 0, 0, 1],
];

describe('REST resources: hierarchy, statistics, tags, protection', function () {
  let s: TestServer;
  before(async () => {
    s = await tempServer();
    for (const t of TREE) await store(s, spec(...t));
  });
  after(async () => {
    await s.close();
  });

  it("series Status as Orthanc's: ExpectedNumberOfInstances from the first instance, IndexInSeries (InstanceNumber) 1..N", async () => {
    const series = '1.2.826.0.1.3680043.10.1.99.77';
    const send = async (instanceNumber: number, extra = [{ tag: 0x00540081, vr: 'US' as const, value: [3] }]) =>
      (await call(s, 'POST', '/instances', makeInstance({ patientId: 'STATUS', studyInstanceUid: `${series}.0`, seriesInstanceUid: series, instanceNumber, extra }))).json as {
        ParentSeries: string;
      };
    const status = async (id: string) => (await call(s, 'GET', `/series/${id}`)).json as { Status: string; ExpectedNumberOfInstances: number | null };
    const { ParentSeries: id } = await send(2);
    expect(await status(id)).to.include({ ExpectedNumberOfInstances: 3, Status: 'Missing' });
    await send(1);
    const completed = async () =>
      ((await call(s, 'GET', '/changes?limit=1000')).json as { Changes: { ChangeType: string; ID: string }[] }).Changes.filter(
        (c) => c.ChangeType === 'CompletedSeries' && c.ID === id,
      ).length;
    expect(await completed()).to.equal(0);
    await send(3);
    expect(await status(id)).to.include({ ExpectedNumberOfInstances: 3, Status: 'Complete' });
    expect(await completed()).to.equal(1); // as Orthanc, when the last one arrives
    await send(3); // another instance numbered 3
    expect((await status(id)).Status).to.equal('Inconsistent');
    // Without NumberOfSlices, CardiacNumberOfImages or ImagesInAcquisition x NumberOfTemporalPositions: Unknown.
    const other = (await call(s, 'POST', '/instances', makeInstance({ patientId: 'STATUS' }))).json as { ParentSeries: string };
    expect(await status(other.ParentSeries)).to.include({ ExpectedNumberOfInstances: null, Status: 'Unknown' });
    // ImagesInAcquisition counts only times NumberOfTemporalPositions (Orthanc's rule).
    const temporal = [{ tag: 0x00201002, vr: 'IS' as const, value: '2' }, { tag: 0x00200105, vr: 'IS' as const, value: '3' }];
    const cine = (await call(s, 'POST', '/instances', makeInstance({ patientId: 'STATUS', extra: temporal }))).json as { ParentSeries: string };
    expect(await status(cine.ParentSeries)).to.include({ ExpectedNumberOfInstances: 6, Status: 'Missing' });
  });

  it('child shortcuts answer expanded resources by default, IDs with expand=false, in insertion order', async () => {
    const p0 = ids(0, 0, 0, 0).patient;
    const studies = (await call(s, 'GET', `/patients/${p0}/studies`)).json as Json[];
    expect(studies.map((x) => x.ID)).to.deep.equal([ids(0, 0, 0, 0).study, ids(0, 1, 0, 0).study]);
    expect(studies[0]).to.include({ Type: 'Study', ParentPatient: p0 });
    expect((studies[0]!.PatientMainDicomTags as Json).PatientName).to.equal('ALPHA^ONE');
    const instances = (await call(s, 'GET', `/patients/${p0}/instances?expand=false`)).json as string[];
    expect(instances).to.deep.equal([ids(0, 0, 0, 0).instance, ids(0, 0, 0, 1).instance, ids(0, 0, 1, 0).instance, ids(0, 1, 0, 0).instance]);
    expect((await call(s, 'GET', `/patients/${p0}/series?expand=false`)).json).to.have.length(3);
    const series = (await call(s, 'GET', `/studies/${ids(0, 0, 0, 0).study}/series?short`)).json as Json[];
    expect(series.map((x) => (x.MainDicomTags as Json)['0008,0060'])).to.deep.equal(['CT', 'MR']);
    const withTags = (await call(s, 'GET', `/series/${ids(1, 0, 0, 0).series}/instances?requested-tags=PatientName;StudyDate`)).json as Json[];
    expect(withTags).to.have.length(2);
    expect(withTags[0]!.RequestedTags).to.deep.equal({ PatientName: 'BETA^TWO', StudyDate: '20220101' });
    expect((await call(s, 'GET', `/studies/${ids(0, 0, 0, 0).study}/instances?expand=false`)).json).to.have.length(3);
    expect((await call(s, 'GET', `/patients/${p0}/studies?expand=true&full`)).json).to.have.length(2);
  });

  it('child shortcuts: unknown IDs, IDs of another level, bad arguments', async () => {
    expectError(await call(s, 'GET', `/patients/${UNKNOWN}/studies`), 404, 17, 'GET', `/patients/${UNKNOWN}/studies`);
    const study = ids(0, 0, 0, 0).study;
    expectError(await call(s, 'GET', `/patients/${study}/series`), 404, 17, 'GET', `/patients/${study}/series`);
    expect((await call(s, 'GET', `/patients/${ids(0, 0, 0, 0).patient}/studies?expand=maybe`)).status).to.equal(400);
    expect((await call(s, 'GET', `/instances/${ids(0, 0, 0, 0).instance}/series/x`)).status).to.equal(404);
  });

  it('parent shortcuts answer the expanded ancestor', async () => {
    const i = ids(0, 0, 1, 0);
    const series = (await call(s, 'GET', `/instances/${i.instance}/series`)).json as Json;
    expect(series).to.include({ ID: i.series, Type: 'Series', ParentStudy: i.study });
    expect(((await call(s, 'GET', `/instances/${i.instance}/study`)).json as Json).ID).to.equal(i.study);
    expect(((await call(s, 'GET', `/instances/${i.instance}/patient`)).json as Json).ID).to.equal(i.patient);
    expect(((await call(s, 'GET', `/series/${i.series}/study`)).json as Json).ID).to.equal(i.study);
    const patient = (await call(s, 'GET', `/series/${i.series}/patient?short`)).json as Json;
    expect(patient).to.include({ ID: i.patient, Type: 'Patient' });
    expect((patient.MainDicomTags as Json)['0010,0020']).to.equal('HP0');
    expect(((await call(s, 'GET', `/studies/${i.study}/patient`)).json as Json).Studies).to.have.length(2);
    expectError(await call(s, 'GET', `/instances/${UNKNOWN}/study`), 404, 17, 'GET', `/instances/${UNKNOWN}/study`);
    expect((await call(s, 'GET', `/instances/${i.series}/study`)).status).to.equal(404);
  });

  it('GET /{level}/{id}/statistics answers Orthanc\'s fields, sizes as strings and MB', async () => {
    const i = ids(0, 0, 0, 0);
    const patient = (await call(s, 'GET', `/patients/${i.patient}/statistics`)).json as Json;
    expect(Object.keys(patient)).to.deep.equal([
      'CountInstances', 'CountSeries', 'CountStudies', 'DicomDiskSize', 'DicomDiskSizeMB', 'DicomUncompressedSize',
      'DicomUncompressedSizeMB', 'DiskSize', 'DiskSizeMB', 'UncompressedSize', 'UncompressedSizeMB',
    ]);
    expect(patient).to.include({ CountInstances: 4, CountSeries: 3, CountStudies: 2, DiskSizeMB: 0 });
    const sizes = await Promise.all(
      [[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0], [0, 1, 0, 0]].map(async ([p, st, se, n]) =>
        ((await call(s, 'GET', `/instances/${ids(p!, st!, se!, n!).instance}`)).json as Json).FileSize as number),
    );
    const total = sizes.reduce((a, b) => a + b, 0);
    expect(patient).to.include({ DiskSize: String(total), UncompressedSize: String(total), DicomDiskSize: String(total) });
    const study = (await call(s, 'GET', `/studies/${i.study}/statistics`)).json as Json;
    expect(study).to.include({ CountInstances: 3, CountSeries: 2 });
    expect(study).to.not.have.property('CountStudies');
    const series = (await call(s, 'GET', `/series/${i.series}/statistics`)).json as Json;
    expect(series).to.include({ CountInstances: 2, DicomUncompressedSize: String(sizes[0]! + sizes[1]!) });
    expect(series).to.not.have.property('CountSeries');
    const instance = (await call(s, 'GET', `/instances/${i.instance}/statistics`)).json as Json;
    expect(instance).to.include({ DiskSize: String(sizes[0]), DicomDiskSizeMB: 0 });
    expect(instance).to.not.have.property('CountInstances');
    expectError(await call(s, 'GET', `/series/${UNKNOWN}/statistics`), 404, 17, 'GET', `/series/${UNKNOWN}/statistics`);
  });

  it('GET /{patients,studies,series}/{id}/shared-tags keeps the String tags equal in every instance', async () => {
    const i = ids(0, 0, 0, 0);
    const full = (await call(s, 'GET', `/series/${i.series}/shared-tags`)).json as Json;
    expect(full['0020,000e']).to.deep.equal({ Name: 'SeriesInstanceUID', Type: 'String', Value: '1.2.826.0.1.77.0.0.0' });
    expect(full['0010,0010']).to.deep.equal({ Name: 'PatientName', Type: 'String', Value: 'ALPHA^ONE' });
    expect(full).to.not.have.property('0008,0018'); // SOPInstanceUID differs
    expect(full).to.not.have.property('0020,0013'); // InstanceNumber differs
    expect(full).to.not.have.property('7fe0,0010'); // not a string
    const simplified = (await call(s, 'GET', `/series/${i.series}/shared-tags?simplify`)).json as Json;
    expect(simplified).to.include({ Modality: 'CT', SeriesNumber: '1' });
    const short = (await call(s, 'GET', `/studies/${i.study}/shared-tags?short`)).json as Json;
    expect(short['0020,000d']).to.equal('1.2.826.0.1.77.0.0');
    expect(short).to.not.have.property('0008,0060'); // CT and MR series
    const patient = (await call(s, 'GET', `/patients/${i.patient}/shared-tags?simplify`)).json as Json;
    expect(patient).to.include({ PatientID: 'HP0' });
    expect(patient).to.not.have.property('StudyInstanceUID');
    expectError(await call(s, 'GET', `/studies/${UNKNOWN}/shared-tags`), 404, 17, 'GET', `/studies/${UNKNOWN}/shared-tags`);
  });

  it('GET /{level}/{id}/module and /studies/{id}/module-patient answer one module of one instance', async () => {
    const i = ids(0, 0, 0, 0);
    const study = (await call(s, 'GET', `/studies/${i.study}/module`)).json as Json;
    expect(Object.keys(study)).to.have.members(['0008,0020', '0008,0030', '0008,0050', '0008,1030', '0020,000d', '0020,0010']);
    expect(study['0008,1030']).to.deep.equal({ Name: 'StudyDescription', Type: 'String', Value: 'study 0.0' });
    const patient = (await call(s, 'GET', `/studies/${i.study}/module-patient?simplify`)).json as Json;
    expect(patient).to.deep.equal({ PatientName: 'ALPHA^ONE', PatientID: 'HP0', PatientBirthDate: '19700101', PatientSex: 'O' });
    expect((await call(s, 'GET', `/patients/${i.patient}/module?simplify`)).json).to.deep.equal(patient);
    const series = (await call(s, 'GET', `/series/${i.series}/module?short`)).json as Json;
    expect(series).to.include({ '0008,0060': 'CT', '0020,000e': '1.2.826.0.1.77.0.0.0', '0020,0011': '1' });
    expect(series).to.not.have.property('0010,0010');
    const instance = (await call(s, 'GET', `/instances/${i.instance}/module?simplify`)).json as Json;
    expect(instance).to.include({ SOPInstanceUID: '1.2.826.0.1.77.0.0.0.0', InstanceNumber: '5' });
    expect(instance).to.not.have.property('Modality');
    expectError(await call(s, 'GET', `/instances/${UNKNOWN}/module`), 404, 17, 'GET', `/instances/${UNKNOWN}/module`);
  });

  it('GET /{patients,studies,series}/{id}/instances-tags answers each instance\'s tags by ID', async () => {
    const i = ids(1, 0, 0, 0);
    const full = (await call(s, 'GET', `/studies/${i.study}/instances-tags`)).json as Record<string, Json>;
    expect(Object.keys(full)).to.have.members([i.instance, ids(1, 0, 0, 1).instance]);
    expect(full[i.instance]).to.deep.equal((await call(s, 'GET', `/instances/${i.instance}/tags`)).json);
    const simplified = (await call(s, 'GET', `/series/${i.series}/instances-tags?simplify`)).json as Record<string, Json>;
    expect(simplified[ids(1, 0, 0, 1).instance]).to.include({ SOPInstanceUID: '1.2.826.0.1.77.1.0.0.1', InstanceNumber: '4' });
    const short = (await call(s, 'GET', `/patients/${i.patient}/instances-tags?short`)).json as Record<string, Json>;
    expect(short[i.instance]!['0010,0010']).to.equal('BETA^TWO');
    expectError(await call(s, 'GET', `/patients/${UNKNOWN}/instances-tags`), 404, 17, 'GET', `/patients/${UNKNOWN}/instances-tags`);
  });

  it('GET|PUT /patients/{id}/protected: 0/1, refusals change nothing', async () => {
    const p = ids(1, 0, 0, 0).patient;
    const get = async () => (await call(s, 'GET', `/patients/${p}/protected`)).text;
    expect(await get()).to.equal('0');
    const put = await call(s, 'PUT', `/patients/${p}/protected`, '1');
    expect(put.status).to.equal(200);
    expect(put.text).to.equal('');
    expect(await get()).to.equal('1');
    for (const bad of ['2', 'yes', '', '{"a":1}']) {
      expectError(await call(s, 'PUT', `/patients/${p}/protected`, bad), 400, 8, 'PUT', `/patients/${p}/protected`);
    }
    expect(await get()).to.equal('1');
    expect((await call(s, 'PUT', `/patients/${p}/protected`, 'false')).status).to.equal(200);
    expect(await get()).to.equal('0');
    // As Orthanc: an unknown patient (or an ID of another level) is ParameterOutOfRange.
    expectError(await call(s, 'GET', `/patients/${UNKNOWN}/protected`), 400, 3, 'GET', `/patients/${UNKNOWN}/protected`);
    expectError(await call(s, 'PUT', `/patients/${ids(1, 0, 0, 0).study}/protected`, '1'), 400, 3, 'PUT', `/patients/${ids(1, 0, 0, 0).study}/protected`);
    expect(((await call(s, 'GET', `/patients/${p}`)).json as Json)).to.not.have.property('IsProtected');
  });
});

describe('REST tools: find (OrderBy, ResponseContent), count-resources, lookup', function () {
  let s: TestServer;
  before(async () => {
    s = await tempServer();
    for (const t of TREE) await store(s, spec(...t));
    await store(s, spec(2, 0, 0, 0, { patientName: 'ALPHA^ZED', studyDate: '20190101' }));
  });
  after(async () => {
    await s.close();
  });
  const find = async (body: unknown) => call(s, 'POST', '/tools/find', JSON.stringify(body));

  it('OrderBy sorts on main tags of the level or an ancestor, and on metadata, before Since and Limit', async () => {
    const byDate = (await find({ Level: 'Study', Query: {}, OrderBy: [{ Type: 'DicomTag', Key: 'StudyDate', Direction: 'DESC' }] })).json;
    expect(byDate).to.deep.equal([ids(1, 0, 0, 0).study, ids(0, 1, 0, 0).study, ids(0, 0, 0, 0).study, ids(2, 0, 0, 0).study]);
    const byName = (await find({
      Level: 'Study',
      Query: {},
      OrderBy: [
        { Type: 'DicomTag', Key: 'PatientName', Direction: 'ASC' },
        { Type: 'DicomTag', Key: '0008,0020', Direction: 'DESC' },
      ],
    })).json;
    expect(byName).to.deep.equal([ids(0, 1, 0, 0).study, ids(0, 0, 0, 0).study, ids(2, 0, 0, 0).study, ids(1, 0, 0, 0).study]);
    const paged = (await find({
      Level: 'Study',
      Query: {},
      OrderBy: [{ Type: 'DicomTag', Key: 'StudyDate', Direction: 'ASC' }],
      Since: 1,
      Limit: 2,
    })).json;
    expect(paged).to.deep.equal([ids(0, 0, 0, 0).study, ids(0, 1, 0, 0).study]);
    // InstanceNumber is 5 - i: instances of a series in reverse order of arrival (values compare as text, as Orthanc).
    const instances = (await find({
      Level: 'Instance',
      Query: { SeriesInstanceUID: '1.2.826.0.1.77.0.0.0' },
      OrderBy: [{ Type: 'DicomTag', Key: 'InstanceNumber', Direction: 'ASC' }],
    })).json;
    expect(instances).to.deep.equal([ids(0, 0, 0, 1).instance, ids(0, 0, 0, 0).instance]);
    const byIndex = (await find({
      Level: 'Instance',
      Query: { SeriesInstanceUID: '1.2.826.0.1.77.0.0.0' },
      OrderBy: [{ Type: 'Metadata', Key: 'IndexInSeries', Direction: 'DESC' }],
      Expand: true,
    })).json as Json[];
    // IndexInSeries is the InstanceNumber, as in Orthanc (not the order of arrival).
    expect(byIndex.map((x) => x.IndexInSeries)).to.deep.equal([5, 4]);
  });

  it('OrderBy refuses malformed keys with 400 and Orthanc\'s error JSON', async () => {
    const bad: unknown[] = [
      { Type: 'DicomTag', Key: 'StudyDate', Direction: 'ASC' },
      [{ Type: 'DicomTag', Key: 'StudyDate' }],
      [{ Type: 'DicomTag', Key: 'StudyDate', Direction: 'UP' }],
      [{ Type: 'Tag', Key: 'StudyDate', Direction: 'ASC' }],
      [{ Type: 'DicomTag', Key: 'NoSuchTag', Direction: 'ASC' }],
      [{ Type: 'DicomTag', Key: 'Rows', Direction: 'ASC' }],
      [{ Type: 'DicomTag', Key: 'Modality', Direction: 'ASC' }],
      [{ Type: 'Metadata', Key: 'NoSuchMetadata', Direction: 'ASC' }],
      [{ Type: 'DicomTag', Key: 3, Direction: 'ASC' }],
      ['StudyDate'],
    ];
    for (const orderBy of bad) {
      const r = await find({ Level: 'Study', Query: {}, OrderBy: orderBy });
      expect(r.status, JSON.stringify(orderBy)).to.equal(400);
      expect((r.json as Json).Uri).to.equal('/tools/find');
    }
  });

  it('ResponseContent chooses the parts of each answer; an empty list answers the IDs', async () => {
    const i = ids(0, 0, 0, 0);
    const q = { Level: 'Series', Query: { SeriesInstanceUID: '1.2.826.0.1.77.0.0.0' } };
    const minimal = (await find({ ...q, ResponseContent: ['MainDicomTags', 'Labels'] })).json as Json[];
    expect(Object.keys(minimal[0]!)).to.deep.equal(['ID', 'Labels', 'MainDicomTags', 'Type']);
    expect((minimal[0]!.MainDicomTags as Json).Modality).to.equal('CT');
    const study = (await find({ Level: 'Study', Query: { StudyDate: '20200101' }, ResponseContent: ['MainDicomTags'] })).json as Json[];
    expect(Object.keys(study[0]!)).to.deep.equal(['ID', 'MainDicomTags', 'PatientMainDicomTags', 'Type']);
    const rich = (await find({ ...q, ResponseContent: ['Parent', 'Children', 'Status', 'IsStable', 'Metadata'] })).json as Json[];
    expect(rich[0]).to.include({ ID: i.series, ParentStudy: i.study, Status: 'Unknown', ExpectedNumberOfInstances: null, Type: 'Series' });
    expect(rich[0]!.Instances).to.deep.equal([i.instance, ids(0, 0, 0, 1).instance]);
    expect(rich[0]!.IsStable).to.be.a('boolean');
    expect((rich[0]!.Metadata as Json).LastUpdate).to.match(/^\d{8}T\d{6}$/);
    const instance = (await find({ Level: 'Instance', Query: { SOPInstanceUID: '1.2.826.0.1.77.0.0.0.0' }, ResponseContent: ['Status', 'Attachments', 'Metadata'] })).json as Json[];
    expect(instance[0]).to.include({ IndexInSeries: 5 }); // its InstanceNumber
    expect(instance[0]!.FileSize).to.be.a('number');
    const attachments = instance[0]!.Attachments as Json[];
    expect(attachments).to.have.length(1);
    expect(attachments[0]).to.include({ ContentType: 1, UncompressedSize: instance[0]!.FileSize, Uuid: instance[0]!.FileUuid });
    expect(instance[0]!.Metadata as Json).to.include({ IndexInSeries: '5', SopClassUid: '1.2.840.10008.5.1.4.1.1.2', Origin: 'RestApi' });
    expect((await find({ ...q, ResponseContent: [] })).json).to.deep.equal([i.series]);
    const r = await find({ ...q, ResponseContent: ['Everything'] });
    expectError(r, 400, 3, 'POST', '/tools/find');
    expect((await find({ ...q, ResponseContent: 'MainDicomTags' })).status).to.equal(400);
  });

  it('Since and Limit page through index matches; with a filter on a tag outside the index they are refused', async () => {
    const all = (await find({ Level: 'Instance', Query: {} })).json as string[];
    expect(all).to.have.length(7);
    expect((await find({ Level: 'Instance', Query: {}, Since: 2, Limit: 3 })).json).to.deep.equal(all.slice(2, 5));
    expect((await find({ Level: 'Instance', Query: {}, Since: 5, Limit: 0 })).json).to.deep.equal(all.slice(5));
    expect((await find({ Level: 'Instance', Query: {}, Since: 50 })).json).to.deep.equal([]);
    // Rows (0028,0010) is not a main tag: matched on the files, as Orthanc, but then without paging.
    expect((await find({ Level: 'Instance', Query: { Rows: '16' } })).json).to.have.length(7);
    expectError(await find({ Level: 'Instance', Query: { Rows: '16' }, Limit: 2 }), 400, 8, 'POST', '/tools/find');
    expectError(await find({ Level: 'Instance', Query: { Rows: '16' }, Since: 1 }), 400, 8, 'POST', '/tools/find');
    expectError(await find({ Level: 'Study' }), 400, 8, 'POST', '/tools/find');
    expectError(await find({ Level: 'Study', Query: [] }), 400, 8, 'POST', '/tools/find');
    expectError(await find({ Level: 'Study', Query: {}, Limit: 1.5 }), 400, 8, 'POST', '/tools/find');
    expectError(await find({ Level: 'Study', Query: {}, Since: -1 }), 400, 3, 'POST', '/tools/find');
    expectError(await find({ Level: 'Study', Query: {}, CaseSensitive: 'yes' }), 400, 8, 'POST', '/tools/find');
  });

  it('POST /tools/count-resources counts what /tools/find would find', async () => {
    const count = async (body: unknown) => call(s, 'POST', '/tools/count-resources', JSON.stringify(body));
    expect((await count({ Level: 'Patient', Query: {} })).json).to.deep.equal({ Count: 3 });
    expect((await count({ Level: 'Study', Query: { PatientName: 'ALPHA*' } })).json).to.deep.equal({ Count: 3 });
    expect((await count({ Level: 'Series', Query: { Modality: 'MR' } })).json).to.deep.equal({ Count: 1 });
    expect((await count({ Level: 'Instance', Query: { Rows: '16', PatientID: 'HP1' } })).json).to.deep.equal({ Count: 2 });
    expect((await count({ Level: 'Instance', Query: {}, Limit: 2 })).json).to.deep.equal({ Count: 7 });
    expectError(await count({ Level: 'Nope', Query: {} }), 400, 3, 'POST', '/tools/count-resources');
    expectError(await call(s, 'POST', '/tools/count-resources', '{'), 400, 8, 'POST', '/tools/count-resources');
  });

  it('POST /tools/lookup maps a DICOM identifier to the resources, as Orthanc', async () => {
    const i = ids(0, 0, 0, 0);
    const lookup = async (body: string) => (await call(s, 'POST', '/tools/lookup', body)).json;
    expect(await lookup('HP0')).to.deep.equal([{ ID: i.patient, Path: `/patients/${i.patient}`, Type: 'Patient' }]);
    expect(await lookup('1.2.826.0.1.77.0.0')).to.deep.equal([{ ID: i.study, Path: `/studies/${i.study}`, Type: 'Study' }]);
    expect(await lookup('1.2.826.0.1.77.0.0.0')).to.deep.equal([{ ID: i.series, Path: `/series/${i.series}`, Type: 'Series' }]);
    expect(await lookup('1.2.826.0.1.77.0.0.0.0')).to.deep.equal([{ ID: i.instance, Path: `/instances/${i.instance}`, Type: 'Instance' }]);
    expect(await lookup('hp0')).to.deep.equal([]);
    expect(await lookup('HP*')).to.deep.equal([]);
    expect(await lookup('')).to.deep.equal([]);
  });
});

describe('REST tools: bulk-delete, default encoding, transfer syntaxes', function () {
  let s: TestServer;
  beforeEach(async () => {
    s = await tempServer();
    for (const t of TREE) await store(s, spec(...t));
  });
  afterEach(async () => {
    await s.close();
  });

  it('POST /tools/bulk-delete deletes resources of any level and skips unknown IDs', async () => {
    const r = await call(s, 'POST', '/tools/bulk-delete', JSON.stringify({
      Resources: [ids(0, 0, 1, 0).series, ids(1, 0, 0, 0).patient, ids(0, 1, 0, 0).instance, UNKNOWN, ids(1, 0, 0, 0).study],
    }));
    expect(r.status).to.equal(200);
    expect(r.text).to.equal('');
    expect((await call(s, 'GET', '/instances')).json).to.deep.equal([ids(0, 0, 0, 0).instance, ids(0, 0, 0, 1).instance]);
    expect((await call(s, 'GET', '/studies')).json).to.deep.equal([ids(0, 0, 0, 0).study]);
    expect((await call(s, 'GET', '/patients')).json).to.deep.equal([ids(0, 0, 0, 0).patient]);
    const stats = (await call(s, 'GET', '/statistics')).json as Json;
    expect(stats).to.include({ CountInstances: 2, CountSeries: 1, CountStudies: 1, CountPatients: 1 });
  });

  it('POST /tools/bulk-delete refuses malformed bodies and deletes nothing', async () => {
    const before = (await call(s, 'GET', '/instances')).json;
    const id = ids(0, 0, 0, 0).patient;
    for (const body of ['{', '[]', '{}', JSON.stringify({ Resources: id }), JSON.stringify({ Resources: [id, 3] })]) {
      const r = await call(s, 'POST', '/tools/bulk-delete', body);
      expect(r.status, body).to.equal(400);
      expect((r.json as Json).Uri).to.equal('/tools/bulk-delete');
    }
    expect((await call(s, 'GET', '/instances')).json).to.deep.equal(before);
  });

  it('GET|PUT /tools/default-encoding changes how files without SpecificCharacterSet are read', async () => {
    const bytes = Buffer.from('Zür', 'utf8');
    const stored = await store(s, spec(3, 0, 0, 0, { extra: [{ tag: 0x00080080, vr: 'LO', value: bytes }] }));
    const institution = async () =>
      ((await call(s, 'GET', `/instances/${stored.ID as string}/simplified-tags`)).json as Json).InstitutionName;
    expect((await call(s, 'GET', '/tools/default-encoding')).text).to.equal('Latin1');
    expect(await institution()).to.equal('ZÃ¼r');
    const put = await call(s, 'PUT', '/tools/default-encoding', 'Utf8');
    expect(put.status).to.equal(200);
    expect(put.text).to.equal('Utf8');
    expect((await call(s, 'GET', '/tools/default-encoding')).text).to.equal('Utf8');
    expect(await institution()).to.equal('Zür');
    expectError(await call(s, 'PUT', '/tools/default-encoding', 'Klingon'), 400, 3, 'PUT', '/tools/default-encoding');
    expect((await call(s, 'GET', '/tools/default-encoding')).text).to.equal('Utf8');
  });

  it('GET /tools/accepted-transfer-syntaxes and /tools/unknown-sop-class-accepted', async () => {
    const syntaxes = (await call(s, 'GET', '/tools/accepted-transfer-syntaxes')).json as string[];
    expect(syntaxes).to.include.members(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.4.50']);
    expect((await call(s, 'GET', '/tools/unknown-sop-class-accepted')).text).to.equal('0');
  });

  it('GET /{level}?since&limit: limit=0 means no limit since Orthanc 1.12.5', async () => {
    expect((await call(s, 'GET', '/instances?since=2&limit=0')).json).to.have.length(4);
    expect((await call(s, 'GET', '/studies?since=1&limit=1')).json).to.deep.equal([ids(0, 1, 0, 0).study]);
  });
});

describe('REST: limit=0 as Orthanc 1.10', function () {
  it('lists nothing when OrthancApiVersion is before 1.12.5', async () => {
    const s = await tempServer({ OrthancApiVersion: '1.10.1' });
    try {
      await store(s, spec(0, 0, 0, 0));
      expect((await call(s, 'GET', '/instances?since=0&limit=0')).json).to.deep.equal([]);
      expect((await call(s, 'GET', '/instances?since=0&limit=1')).json).to.have.length(1);
    } finally {
      await s.close();
    }
  });
});

describe('REST: /changes and /exports', function () {
  let s: TestServer;
  before(async () => {
    s = await tempServer();
  });
  after(async () => {
    await s.close();
  });

  it('GET /changes lists the changes of a store from the instance up, with Orthanc\'s fields', async () => {
    const empty = (await call(s, 'GET', '/changes')).json;
    expect(empty).to.deep.equal({ Changes: [], Done: true, Last: 0 });
    await store(s, spec(0, 0, 0, 0));
    const i = ids(0, 0, 0, 0);
    const r = (await call(s, 'GET', '/changes')).json as { Changes: Json[]; Done: boolean; Last: number };
    expect(r.Done).to.equal(true);
    expect(r.Last).to.equal(4);
    expect(r.Changes.map((c) => [c.Seq, c.ChangeType, c.ResourceType, c.ID])).to.deep.equal([
      [1, 'NewInstance', 'Instance', i.instance],
      [2, 'NewSeries', 'Series', i.series],
      [3, 'NewStudy', 'Study', i.study],
      [4, 'NewPatient', 'Patient', i.patient],
    ]);
    expect(Object.keys(r.Changes[0]!)).to.deep.equal(['ChangeType', 'Date', 'ID', 'Path', 'ResourceType', 'Seq']);
    expect(r.Changes[0]).to.include({ Path: `/instances/${i.instance}` });
    expect(r.Changes[0]!.Date).to.match(/^\d{8}T\d{6}$/);
  });

  it('GET /changes pages with since and limit (default 100), and answers the last change with last', async () => {
    const index = s.ctx.index;
    const patient = index.findByPublicId(ids(0, 0, 0, 0).patient)!;
    for (let k = 0; k < 150; k++) index.logChange(ChangeType.UpdatedMetadata, patient.id, Level.Patient, patient.publicId, '20240101T000000');
    const first = (await call(s, 'GET', '/changes')).json as { Changes: Json[]; Done: boolean; Last: number };
    expect(first.Changes).to.have.length(100);
    expect(first).to.include({ Done: false, Last: 100 });
    const page = (await call(s, 'GET', '/changes?since=100&limit=10')).json as { Changes: Json[]; Done: boolean; Last: number };
    expect(page.Changes.map((c) => c.Seq)).to.deep.equal([101, 102, 103, 104, 105, 106, 107, 108, 109, 110]);
    expect(page).to.include({ Done: false, Last: 110 });
    const end = (await call(s, 'GET', '/changes?since=140&limit=100')).json as { Changes: Json[]; Done: boolean; Last: number };
    expect(end.Changes).to.have.length(14);
    expect(end).to.include({ Done: true, Last: 154 });
    expect((await call(s, 'GET', '/changes?since=154')).json).to.deep.equal({ Changes: [], Done: true, Last: 154 });
    // As Orthanc, unparsable arguments fall back to since=0, limit=100.
    expect(((await call(s, 'GET', '/changes?since=abc&limit=5')).json as { Changes: Json[] }).Changes).to.have.length(100);
    const last = (await call(s, 'GET', '/changes?last')).json as { Changes: Json[]; Done: boolean; Last: number };
    expect(last.Changes.map((c) => c.Seq)).to.deep.equal([154]);
    expect(last).to.include({ Done: true, Last: 154 });
    expect(last.Changes[0]).to.include({ ChangeType: 'UpdatedMetadata', ResourceType: 'Patient' });
  });

  it('DELETE /changes clears the log; Seq keeps growing', async () => {
    const r = await call(s, 'DELETE', '/changes');
    expect(r.status).to.equal(200);
    expect((await call(s, 'GET', '/changes')).json).to.deep.equal({ Changes: [], Done: true, Last: 154 });
    expect((await call(s, 'GET', '/changes?last')).json).to.deep.equal({ Changes: [], Done: true, Last: 154 });
    await store(s, spec(0, 0, 0, 1));
    const after = (await call(s, 'GET', '/changes')).json as { Changes: Json[]; Last: number };
    expect(after.Changes.map((c) => [c.Seq, c.ChangeType])).to.deep.equal([[155, 'NewInstance']]);
  });

  it('GET|DELETE /exports: the log of exported resources', async () => {
    expect((await call(s, 'GET', '/exports')).json).to.deep.equal({ Done: true, Exports: [], Last: 0 });
    const i = ids(0, 0, 0, 0);
    const base = { patientId: 'HP0', studyInstanceUid: '1.2.826.0.1.77.0.0', seriesInstanceUid: '1.2.826.0.1.77.0.0.0', date: '20240102T030405' };
    s.ctx.index.logExport({ ...base, level: Level.Study, publicId: i.study, remoteModality: 'PEER', sopInstanceUid: '' });
    s.ctx.index.logExport({ ...base, level: Level.Instance, publicId: i.instance, remoteModality: 'PEER', sopInstanceUid: '1.2.826.0.1.77.0.0.0.0' });
    const all = (await call(s, 'GET', '/exports')).json as { Exports: Json[]; Done: boolean; Last: number };
    expect(all).to.include({ Done: true, Last: 2 });
    expect(all.Exports[0]).to.deep.equal({
      Date: '20240102T030405', ID: i.study, Path: `/studies/${i.study}`, PatientID: 'HP0', RemoteModality: 'PEER',
      ResourceType: 'Study', Seq: 1, StudyInstanceUID: '1.2.826.0.1.77.0.0',
    });
    expect(all.Exports[1]).to.include({ SOPInstanceUID: '1.2.826.0.1.77.0.0.0.0', SeriesInstanceUID: '1.2.826.0.1.77.0.0.0', ResourceType: 'Instance' });
    const page = (await call(s, 'GET', '/exports?since=0&limit=1')).json as { Exports: Json[]; Done: boolean; Last: number };
    expect(page.Exports.map((e) => e.Seq)).to.deep.equal([1]);
    expect(page).to.include({ Done: false, Last: 1 });
    expect((await call(s, 'GET', '/exports?since=5')).json).to.deep.equal({ Done: true, Exports: [], Last: 5 });
    expect(((await call(s, 'GET', '/exports?last')).json as { Exports: Json[] }).Exports.map((e) => e.Seq)).to.deep.equal([2]);
    expect((await call(s, 'DELETE', '/exports')).status).to.equal(200);
    expect((await call(s, 'GET', '/exports')).json).to.deep.equal({ Done: true, Exports: [], Last: 0 });
  });
});

describe('REST: recycling and protection', function () {
  it('storing past MaximumPatientCount recycles the oldest unprotected patient; a protected one survives', async () => {
    const s = await tempServer({ MaximumPatientCount: 2 });
    try {
      await store(s, spec(0, 0, 0, 0));
      await store(s, spec(1, 0, 0, 0));
      expect((await call(s, 'PUT', `/patients/${ids(0, 0, 0, 0).patient}/protected`, '1')).status).to.equal(200);
      await store(s, spec(2, 0, 0, 0));
      // Patient 0 is the oldest but protected: patient 1 goes.
      expect((await call(s, 'GET', '/patients')).json).to.deep.equal([ids(0, 0, 0, 0).patient, ids(2, 0, 0, 0).patient]);
      expect((await call(s, 'GET', `/patients/${ids(1, 0, 0, 0).patient}`)).status).to.equal(404);
      // Unprotected, patient 0 receives an instance and becomes the most recent: patient 2 is recycled next.
      await call(s, 'PUT', `/patients/${ids(0, 0, 0, 0).patient}/protected`, '0');
      await store(s, spec(0, 0, 0, 1));
      await store(s, spec(3, 0, 0, 0));
      expect((await call(s, 'GET', '/patients')).json).to.deep.equal([ids(0, 0, 0, 0).patient, ids(3, 0, 0, 0).patient]);
      const stats = (await call(s, 'GET', '/statistics')).json as Json;
      expect(stats).to.include({ CountPatients: 2, CountInstances: 3 });
    } finally {
      await s.close();
    }
  });

  it('storing past MaximumStorageSize recycles until the storage fits', async () => {
    const s = await tempServer({ MaximumStorageSize: 1 });
    try {
      const big = { pixelBytes: 400 * 1024 };
      for (let p = 0; p < 3; p++) await store(s, spec(p, 0, 0, 0, big));
      expect((await call(s, 'GET', '/patients')).json).to.deep.equal([ids(1, 0, 0, 0).patient, ids(2, 0, 0, 0).patient]);
      expect(Number(((await call(s, 'GET', '/statistics')).json as Json).TotalDiskSize)).to.be.at.most(1024 * 1024);
    } finally {
      await s.close();
    }
  });

  it('MaximumStorageMode Reject answers Orthanc\'s FullStorage error and stores nothing', async () => {
    const s = await tempServer({ MaximumPatientCount: 1, MaximumStorageMode: 'Reject' });
    try {
      await store(s, spec(0, 0, 0, 0));
      await store(s, spec(0, 0, 0, 1)); // the same patient: no new patient
      const before = (await call(s, 'GET', '/statistics')).json;
      const changes = ((await call(s, 'GET', '/changes')).json as { Last: number }).Last;
      const r = await call(s, 'POST', '/instances', makeInstance(spec(1, 0, 0, 0)));
      expectError(r, 507, 19, 'POST', '/instances');
      expect((await call(s, 'GET', '/statistics')).json).to.deep.equal(before);
      expect((await call(s, 'GET', '/patients')).json).to.deep.equal([ids(0, 0, 0, 0).patient]);
      expect(((await call(s, 'GET', '/changes')).json as { Last: number }).Last).to.equal(changes);
      expect(countFiles(join(s.dir, 'storage'))).to.equal(2);
    } finally {
      await s.close();
    }
  });
});

/** Files in the storage area (the index and its WAL aside). */
function countFiles(dir: string): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) n += countFiles(path);
    else if (!name.startsWith('pacsnode-index')) n++;
  }
  return n;
}

