import { expect } from 'chai';
import { deflateSync, gzipSync } from 'node:zlib';
import { Tags } from '../src/dicom/tag.js';
import { publicIds } from '../src/store/ids.js';
import { makeInstance } from './helpers/factory.js';
import { tempServer, type TestServer } from './helpers/context.js';
import { makeZip } from './helpers/zip.js';

type Json = Record<string, unknown>;

async function call(s: TestServer, method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}) {
  const res = await fetch(`${s.url}${path}`, { method, body, headers });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json, headers: res.headers };
}

function expectOrthancError(json: unknown, status: number, orthancStatus: number, method: string, uri: string): void {
  const e = json as Json;
  expect(e.HttpStatus).to.equal(status);
  expect(e.OrthancStatus).to.equal(orthancStatus);
  expect(e.Method).to.equal(method);
  expect(e.Uri).to.equal(uri);
  expect(e).to.include.keys('HttpError', 'Message', 'OrthancError');
}

describe('REST: the first HTTP door', function () {
  let s: TestServer;
  before(async () => {
    s = await tempServer({ Name: 'TestNode', DicomAet: 'TESTAET' });
  });
  after(async () => {
    await s.close();
  });

  const spec = (p: number, st: number, se: number, i: number) => ({
    patientId: `RP${p}`,
    patientName: p === 0 ? 'MÜLLER^Hans' : `SMITH^Anna${p}`,
    studyInstanceUid: `1.2.826.0.1.99.${p}.${st}`,
    seriesInstanceUid: `1.2.826.0.1.99.${p}.${st}.${se}`,
    sopInstanceUid: `1.2.826.0.1.99.${p}.${st}.${se}.${i}`,
    studyDate: `2021010${p + 1}`,
    modality: se === 0 ? 'CT' : 'MR',
    specificCharacterSet: 'ISO_IR 192',
  });

  it('GET /system answers as Orthanc, with pacsnode\'s own version apart', async () => {
    const r = await call(s, 'GET', '/system');
    expect(r.status).to.equal(200);
    const body = r.json as Json;
    expect(body).to.include({ Name: 'TestNode', DicomAet: 'TESTAET', Version: '1.12.6', DatabaseVersion: 6 });
    expect(body.ApiVersion).to.be.a('number');
    expect(body.PacsnodeVersion).to.match(/^\d+\.\d+\.\d+$/);
    expect((body.MainDicomTags as Json).Patient).to.include('PatientName');
  });

  it('POST /instances stores a DICOM file, then answers AlreadyStored', async () => {
    const bytes = makeInstance(spec(0, 0, 0, 0));
    const r = await call(s, 'POST', '/instances', bytes, { 'content-type': 'application/dicom' });
    expect(r.status).to.equal(200);
    const ids = publicIds({
      patientId: 'RP0',
      studyInstanceUid: '1.2.826.0.1.99.0.0',
      seriesInstanceUid: '1.2.826.0.1.99.0.0.0',
      sopInstanceUid: '1.2.826.0.1.99.0.0.0.0',
    });
    expect(r.json).to.deep.equal({
      ID: ids.instance,
      ParentPatient: ids.patient,
      ParentStudy: ids.study,
      ParentSeries: ids.series,
      Path: `/instances/${ids.instance}`,
      Status: 'Success',
    });
    const again = await call(s, 'POST', '/instances', bytes);
    expect((again.json as Json).Status).to.equal('AlreadyStored');
  });

  it('POST /instances refuses non-DICOM bytes with 400 and Orthanc\'s error JSON, storing nothing', async () => {
    const before = (await call(s, 'GET', '/statistics')).json as Json;
    const r = await call(s, 'POST', '/instances', 'hello world', { 'content-type': 'text/plain' });
    expect(r.status).to.equal(400);
    expectOrthancError(r.json, 400, 15, 'POST', '/instances');
    const empty = await call(s, 'POST', '/instances', '');
    expect(empty.status).to.equal(400);
    const after = (await call(s, 'GET', '/statistics')).json as Json;
    expect(after).to.deep.equal(before);
  });

  it('POST /instances with a ZIP stores every DICOM entry and reports the others', async () => {
    const files = [makeInstance(spec(1, 0, 0, 0)), makeInstance(spec(1, 0, 0, 1)), makeInstance(spec(1, 0, 1, 0))];
    const zip = makeZip([
      { name: 'a/1.dcm', data: files[0]! },
      { name: 'a/2.dcm', data: files[1]!, deflate: true },
      { name: 'readme.txt', data: Buffer.from('not dicom') },
      { name: 'b/3.dcm', data: files[2]! },
    ]);
    const r = await call(s, 'POST', '/instances', zip, { 'content-type': 'application/zip' });
    expect(r.status).to.equal(200);
    const answers = r.json as Json[];
    expect(answers.map((a) => a.Status)).to.deep.equal(['Success', 'Success', 'Failure', 'Success']);
    expect(answers[2]).to.include({ Filename: 'readme.txt' });
    for (const [i, f] of files.entries()) {
      const id = (answers[i === 2 ? 3 : i] as Json).ID as string;
      const back = await fetch(`${s.url}/instances/${id}/file`);
      expect(Buffer.from(await back.arrayBuffer()).equals(f)).to.equal(true);
    }
  });

  it('POST /instances with a truncated ZIP stores the readable entries and reports the rest', async () => {
    const files = [makeInstance(spec(2, 0, 0, 0)), makeInstance(spec(2, 0, 0, 1)), makeInstance(spec(2, 0, 0, 2))];
    const zip = makeZip(files.map((f, i) => ({ name: `${i}.dcm`, data: f })));
    const cut = zip.subarray(0, 30 + 5 + files[0]!.length + 30 + 5 + files[1]!.length + 100);
    const r = await call(s, 'POST', '/instances', cut);
    expect(r.status).to.equal(200);
    const answers = r.json as Json[];
    expect(answers.filter((a) => a.Status === 'Success')).to.have.length(2);
    expect(answers.filter((a) => a.Status === 'Failure').map((a) => String(a.Details)).join(' ')).to.match(/truncated/);
    const garbage = Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04]), Buffer.alloc(10, 0xff)]);
    const bad = await call(s, 'POST', '/instances', garbage);
    expect(bad.status).to.equal(400);
  });

  it('lists resources with expand, since and limit', async () => {
    const ids = (await call(s, 'GET', '/patients')).json as string[];
    expect(ids).to.have.length(3);
    const page = (await call(s, 'GET', '/patients?since=1&limit=1')).json as string[];
    expect(page).to.deep.equal([ids[1]]);
    const expanded = (await call(s, 'GET', '/studies?expand')).json as Json[];
    expect(expanded).to.have.length(3);
    expect(expanded[0]).to.include.keys('ID', 'MainDicomTags', 'PatientMainDicomTags', 'ParentPatient', 'Series', 'Type', 'IsStable', 'LastUpdate', 'Labels');
    expect((expanded[0]!.PatientMainDicomTags as Json).PatientName).to.equal('MÜLLER^Hans');
    const instances = (await call(s, 'GET', '/instances?expand&since=0&limit=2')).json as Json[];
    // As Orthanc: since and limit go together, limit=0 means no limit (1.12.5+), and absurd numbers are a 400.
    expect((await call(s, 'GET', '/instances?limit=2')).status).to.equal(400);
    expect((await call(s, 'GET', '/instances?since=1')).status).to.equal(400);
    expect((await call(s, 'GET', '/instances?since=0&limit=0')).json).to.deep.equal((await call(s, 'GET', '/instances')).json);
    expect((await call(s, 'GET', '/instances?since=99999999999999999999&limit=1')).status).to.equal(400);
    expect(instances).to.have.length(2);
    expect(instances[0]).to.include.keys('FileSize', 'FileUuid', 'IndexInSeries', 'ParentSeries');
    const short = (await call(s, 'GET', '/patients?expand&short')).json as Json[];
    expect((short[0]!.MainDicomTags as Json)['0010,0020']).to.equal('RP0');
  });

  it('GET /{level}/{id} answers the resource with parents and children; unknown IDs are 404', async () => {
    const [seriesId] = (await call(s, 'GET', '/series')).json as string[];
    const r = await call(s, 'GET', `/series/${seriesId}`);
    const body = r.json as Json;
    expect(body).to.include({ ID: seriesId, Type: 'Series', Status: 'Unknown', ExpectedNumberOfInstances: null });
    expect((body.MainDicomTags as Json).Modality).to.equal('CT');
    expect(body.Instances).to.be.an('array').with.length.greaterThan(0);
    const missing = await call(s, 'GET', '/patients/00000000-00000000-00000000-00000000-00000000');
    expect(missing.status).to.equal(404);
    expectOrthancError(missing.json, 404, 17, 'GET', '/patients/00000000-00000000-00000000-00000000-00000000');
    const wrongLevel = await call(s, 'GET', `/patients/${seriesId}`);
    expect(wrongLevel.status).to.equal(404);
    const noRoute = await call(s, 'GET', '/no/such/route');
    expect(noRoute.status).to.equal(404);
  });

  it('GET /instances/{id}/file, /tags (full, simplify, short) and /simplified-tags', async () => {
    const bytes = makeInstance(spec(0, 0, 0, 0));
    const id = publicIds({
      patientId: 'RP0',
      studyInstanceUid: '1.2.826.0.1.99.0.0',
      seriesInstanceUid: '1.2.826.0.1.99.0.0.0',
      sopInstanceUid: '1.2.826.0.1.99.0.0.0.0',
    }).instance;
    const file = await fetch(`${s.url}/instances/${id}/file`, { headers: { accept: 'application/json' } });
    expect(file.headers.get('content-type')).to.equal('application/dicom');
    expect(Buffer.from(await file.arrayBuffer()).equals(bytes)).to.equal(true);
    const full = (await call(s, 'GET', `/instances/${id}/tags`)).json as Json;
    expect(full['0010,0010']).to.deep.equal({ Name: 'PatientName', Type: 'String', Value: 'MÜLLER^Hans' });
    expect(full['7fe0,0010']).to.deep.equal({ Name: 'PixelData', Type: 'Null', Value: null });
    expect(full['0028,0010']).to.deep.equal({ Name: 'Rows', Type: 'String', Value: '16' }); // 512 pixel bytes = 16 x 16 x 2
    const simplify = (await call(s, 'GET', `/instances/${id}/tags?simplify`)).json as Json;
    expect(simplify.PatientName).to.equal('MÜLLER^Hans');
    expect((await call(s, 'GET', `/instances/${id}/simplified-tags`)).json).to.deep.equal(simplify);
    const short = (await call(s, 'GET', `/instances/${id}/tags?short`)).json as Json;
    expect(short['0020,000d']).to.equal('1.2.826.0.1.99.0.0');
  });

  it('POST /tools/find: levels, wildcards, case sensitivity, Expand, RequestedTags, Limit and Since', async () => {
    const find = async (body: unknown) => call(s, 'POST', '/tools/find', JSON.stringify(body));
    const all = (await find({ Level: 'Study', Query: {} })).json as string[];
    expect(all).to.have.length(3);
    const smiths = (await find({ Level: 'Patient', Query: { PatientName: 'smith*' } })).json as string[];
    expect(smiths, 'PN is matched case-insensitively').to.have.length(2);
    const accents = (await find({ Level: 'Patient', Query: { PatientName: 'muller*' } })).json as string[];
    expect(accents).to.have.length(1);
    const cs = (await find({ Level: 'Patient', Query: { PatientID: 'rp1' } })).json as string[];
    expect(cs).to.have.length(0);
    const ci = (await find({ Level: 'Patient', Query: { PatientID: 'rp1' }, CaseSensitive: false })).json as string[];
    expect(ci).to.have.length(1);
    const dated = (await find({ Level: 'Study', Query: { StudyDate: '20210102-' } })).json as string[];
    expect(dated).to.have.length(2);
    const series = (await find({ Level: 'Series', Query: { PatientName: 'SMITH^Anna1', Modality: 'MR' } })).json as string[];
    expect(series).to.have.length(1);
    const expanded = (await find({
      Level: 'Study',
      Query: { PatientID: 'RP1' },
      Expand: true,
      RequestedTags: ['ModalitiesInStudy', 'NumberOfStudyRelatedInstances', 'PatientName', 'SOPClassesInStudy'],
    })).json as Json[];
    expect(expanded).to.have.length(1);
    expect(expanded[0]!.RequestedTags).to.deep.equal({
      ModalitiesInStudy: 'CT\\MR',
      NumberOfStudyRelatedInstances: '3',
      PatientName: 'SMITH^Anna1',
      SOPClassesInStudy: '1.2.840.10008.5.1.4.1.1.2',
    });
    const paged = (await find({ Level: 'Instance', Query: {}, Since: 1, Limit: 2 })).json as string[];
    const allInstances = (await find({ Level: 'Instance', Query: {} })).json as string[];
    expect(paged).to.deep.equal(allInstances.slice(1, 3));
  });

  it('POST /tools/find takes a list of 20,000 UIDs (one bound value, not 20,000)', async () => {
    const uids = Array.from({ length: 20000 }, (_, i) => `1.2.3.${i}`);
    uids.push('1.2.826.0.1.99.0.0');
    const r = await call(s, 'POST', '/tools/find', JSON.stringify({ Level: 'Study', Query: { StudyInstanceUID: uids.join('\\') } }));
    expect(r.status).to.equal(200);
    expect(r.json).to.have.length(1);
  });

  it('POST /tools/find refuses bad bodies with 400', async () => {
    const bad = ['{bad', '[]', JSON.stringify({ Query: {} }), JSON.stringify({ Level: 'Nope', Query: {} }),
      JSON.stringify({ Level: 'Study', Query: { NotATag: 'x' } }), JSON.stringify({ Level: 'Study', Query: { PatientName: 3 } }),
      JSON.stringify({ Level: 'Study', Query: {}, Labels: ['bad label!'] }), JSON.stringify({ Level: 'Study', Query: {}, Limit: -1 }),
      JSON.stringify({ Level: 'Study', Query: {}, Since: 1e20 })];
    for (const body of bad) {
      const r = await call(s, 'POST', '/tools/find', body);
      expect(r.status, body).to.equal(400);
      expect((r.json as Json).Uri).to.equal('/tools/find');
    }
  });

  it('POST /tools/find filters on labels (All, Any, None)', async () => {
    const studies = (await call(s, 'GET', '/studies')).json as string[];
    const index = s.ctx.index;
    index.addLabel(index.findByPublicId(studies[0]!)!.id, 'red');
    index.addLabel(index.findByPublicId(studies[1]!)!.id, 'red');
    index.addLabel(index.findByPublicId(studies[1]!)!.id, 'blue');
    const find = async (labels: string[], constraint: string) =>
      (await call(s, 'POST', '/tools/find', JSON.stringify({ Level: 'Study', Query: {}, Labels: labels, LabelsConstraint: constraint }))).json as string[];
    expect(await find(['red', 'blue'], 'All')).to.deep.equal([studies[1]]);
    expect(await find(['red', 'blue'], 'Any')).to.deep.equal([studies[0], studies[1]]);
    expect(await find(['red'], 'None')).to.deep.equal([studies[2]]);
  });

  it('DELETE removes the resource and answers the remaining ancestor', async () => {
    const study = (await call(s, 'POST', '/tools/find', JSON.stringify({ Level: 'Study', Query: { PatientID: 'RP1' } }))).json as string[];
    const seriesOfStudy = ((await call(s, 'GET', `/studies/${study[0]}`)).json as Json).Series as string[];
    const r = await call(s, 'DELETE', `/series/${seriesOfStudy[0]}`);
    expect(r.status).to.equal(200);
    expect(r.json).to.deep.equal({ RemainingAncestor: { ID: study[0], Path: `/studies/${study[0]}`, Type: 'Study' } });
    expect((await call(s, 'GET', `/series/${seriesOfStudy[0]}`)).status).to.equal(404);
    const gone = await call(s, 'DELETE', `/series/${seriesOfStudy[0]}`);
    expect(gone.status).to.equal(404);
  });

  it('GET /statistics counts what is stored', async () => {
    const stats = (await call(s, 'GET', '/statistics')).json as Json;
    const instances = (await call(s, 'GET', '/instances')).json as string[];
    expect(stats.CountInstances).to.equal(instances.length);
    expect(stats.CountPatients).to.equal(3);
    expect(stats.TotalDiskSize).to.be.a('string');
    expect(Number(stats.TotalDiskSize)).to.be.greaterThan(0);
  });
});

describe('REST: access control as Orthanc', function () {
  it('RemoteAccessAllowed false refuses non-loopback clients with 403', async () => {
    const s = await tempServer({ RemoteAccessAllowed: false });
    try {
      const remote = await s.http.inject({ method: 'GET', url: '/system', remoteAddress: '10.1.2.3' });
      expect(remote.statusCode).to.equal(403);
      expect(remote.json()).to.include({ OrthancStatus: 45 });
      const local = await s.http.inject({ method: 'GET', url: '/system', remoteAddress: '127.0.0.1' });
      expect(local.statusCode).to.equal(200);
    } finally {
      await s.close();
    }
  });

  it('AuthenticationEnabled asks for HTTP Basic credentials with WWW-Authenticate', async () => {
    const s = await tempServer({ AuthenticationEnabled: true, RegisteredUsers: { alice: 's3cret' }, Name: 'Secure' });
    try {
      const anonymous = await call(s, 'GET', '/system');
      expect(anonymous.status).to.equal(401);
      expect(anonymous.headers.get('www-authenticate')).to.equal('Basic realm="Secure"');
      const wrong = await call(s, 'GET', '/system', undefined, { authorization: `Basic ${Buffer.from('alice:nope').toString('base64')}` });
      expect(wrong.status).to.equal(401);
      const auth = { authorization: `Basic ${Buffer.from('alice:s3cret').toString('base64')}` };
      expect((await call(s, 'GET', '/system', undefined, auth)).status).to.equal(200);
      const stored = await call(s, 'POST', '/instances', makeInstance(), auth);
      const id = (stored.json as Json).ID as string;
      const row = s.ctx.index.findByPublicId(id)!;
      const username = s.ctx.index.metadata(row.id).find((m) => m.type === 13)?.value;
      expect(username).to.equal('alice');
    } finally {
      await s.close();
    }
  });

  it('reports IsHttpServerSecure as Orthanc: false with remote access and the default user', async () => {
    const open = await tempServer({ RemoteAccessAllowed: true });
    try {
      const auth = { authorization: `Basic ${Buffer.from('orthanc:orthanc').toString('base64')}` };
      expect((await call(open, 'GET', '/system')).status).to.equal(401);
      const body = (await call(open, 'GET', '/system', undefined, auth)).json as Json;
      expect(body.IsHttpServerSecure).to.equal(false);
    } finally {
      await open.close();
    }
    const local = await tempServer();
    try {
      expect(((await call(local, 'GET', '/system')).json as Json).IsHttpServerSecure).to.equal(true);
    } finally {
      await local.close();
    }
  });

  it('keeps the character set of stored values (UTF-8 PatientName round trip)', async () => {
    const s = await tempServer();
    try {
      const bytes = makeInstance({ patientName: '山田^太郎', specificCharacterSet: 'ISO_IR 192' });
      const r = await call(s, 'POST', '/instances', bytes);
      const id = (r.json as Json).ID as string;
      const tags = (await call(s, 'GET', `/instances/${id}/simplified-tags`)).json as Json;
      expect(tags.PatientName).to.equal('山田^太郎');
      expect(tags.SpecificCharacterSet).to.equal('ISO_IR 192');
      expect(Tags.PatientName).to.equal(0x00100010);
    } finally {
      await s.close();
    }
  });
});

describe('REST: compressed uploads', function () {
  it('POST /instances decodes gzip and deflate bodies (Content-Encoding), and refuses corrupted or unknown ones', async () => {
    const s = await tempServer();
    try {
      const gz = makeInstance({ patientId: 'GZ', sopInstanceUid: '1.2.826.0.1.3680043.99.5.0' });
      const df = makeInstance({ patientId: 'GZ', sopInstanceUid: '1.2.826.0.1.3680043.99.5.1' });
      const zipped = await call(s, 'POST', '/instances', gzipSync(gz), { 'content-encoding': 'gzip' });
      expect(zipped.status, zipped.text).to.equal(200);
      const deflated = await call(s, 'POST', '/instances', deflateSync(df), { 'content-encoding': 'deflate' });
      expect(deflated.status, deflated.text).to.equal(200);
      // Stored as the DICOM file itself, not the compressed body.
      expect(Buffer.from(await (await fetch(`${s.url}/instances/${(zipped.json as Json).ID as string}/file`)).arrayBuffer()).equals(gz)).to.equal(true);
      expect(Buffer.from(await (await fetch(`${s.url}/instances/${(deflated.json as Json).ID as string}/file`)).arrayBuffer()).equals(df)).to.equal(true);
      const before = (await call(s, 'GET', '/statistics')).json as Json;
      const corrupted = gzipSync(makeInstance({ patientId: 'GZ', sopInstanceUid: '1.2.826.0.1.3680043.99.5.2' }));
      corrupted.fill(0x55, 40, 80);
      const bad = await call(s, 'POST', '/instances', corrupted, { 'content-encoding': 'gzip' });
      expect(bad.status, bad.text).to.equal(400);
      expectOrthancError(bad.json, 400, 15, 'POST', '/instances');
      const unknown = await call(s, 'POST', '/instances', gz, { 'content-encoding': 'br' });
      expect(unknown.status).to.equal(400);
      expect((unknown.json as Json).Details).to.match(/Content-Encoding "br"/);
      expect((await call(s, 'GET', '/statistics')).json).to.deep.equal(before);
    } finally {
      await s.close();
    }
  });
});

describe('REST: MaximumHttpBodySize', function () {
  it('refuses a body over the limit with 413, declared or streamed, and stores nothing', async () => {
    const s = await tempServer({ MaximumHttpBodySize: 1 });
    try {
      const big = makeInstance({ pixelBytes: 2 << 20 });
      const declared = await fetch(`${s.url}/instances`, { method: 'POST', body: big });
      expect(declared.status).to.equal(413);
      // Chunked upload: no Content-Length, the limit is enforced while streaming.
      const chunks = [big.subarray(0, 1 << 20), big.subarray(1 << 20)];
      const streamed = await fetch(`${s.url}/instances`, {
        method: 'POST',
        body: new ReadableStream({ pull(c) { const next = chunks.shift(); if (next) c.enqueue(next); else c.close(); } }),
        duplex: 'half',
      } as RequestInit);
      expect(streamed.status).to.equal(413);
      // The limit bounds the decoded body: 2 MB of DICOM gzipped into a few KB is still refused.
      const bomb = gzipSync(big);
      expect(bomb.length).to.be.below(1 << 20);
      const zipped = await fetch(`${s.url}/instances`, { method: 'POST', body: bomb, headers: { 'content-encoding': 'gzip' } });
      expect(zipped.status).to.equal(413);
      expect(s.ctx.index.statistics().countInstances).to.equal(0);
      const small = await fetch(`${s.url}/instances`, { method: 'POST', body: makeInstance() });
      expect(small.status).to.equal(200);
    } finally {
      await s.close();
    }
  });
});
