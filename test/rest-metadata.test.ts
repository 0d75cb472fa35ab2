/**
 * REST: metadata, labels and attachments on the four levels, as Orthanc 1.12.6 answers them (revisions and ETags,
 * read-only core items, user names from the configuration, compressed storage, refusals that change nothing).
 */
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { ChangeType, type ChangeRow } from '../src/store/sqlite-index.js';
import { makeInstance } from './helpers/factory.js';
import { tempServer, type TestServer } from './helpers/context.js';

type Json = Record<string, unknown>;

const md5 = (data: Buffer | string) => createHash('md5').update(data).digest('hex');

interface Answer {
  status: number;
  text: string;
  body: Buffer;
  json: unknown;
  headers: Headers;
}

async function call(s: TestServer, method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(`${s.url}${path}`, { method, body, headers });
  const bytes = Buffer.from(await res.arrayBuffer());
  const text = bytes.toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, body: bytes, json, headers: res.headers };
}

/** A request whose path is sent exactly as written (fetch would resolve `..` segments itself). */
function rawCall(s: TestServer, method: string, path: string, body?: Buffer): Promise<{ status: number; json: unknown }> {
  const url = new URL(s.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        let json: unknown;
        try {
          json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A body sent with chunked transfer encoding, in pieces of `chunk` bytes. */
async function putStreamed(s: TestServer, path: string, data: Buffer, chunk = 64 * 1024, headers: Record<string, string> = {}): Promise<Answer> {
  let offset = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= data.length) {
        controller.close();
        return;
      }
      controller.enqueue(new Uint8Array(data.subarray(offset, offset + chunk)));
      offset += chunk;
    },
  });
  const init = { method: 'PUT', body: stream, duplex: 'half', headers } as RequestInit;
  const res = await fetch(`${s.url}${path}`, init);
  const bytes = Buffer.from(await res.arrayBuffer());
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    json = undefined;
  }
  return { status: res.status, text: bytes.toString('utf8'), body: bytes, json, headers: res.headers };
}

function expectOrthancError(a: { status: number; json: unknown }, status: number, orthancStatus: number): void {
  expect(a.status).to.equal(status);
  const e = a.json as Json;
  expect(e, 'Orthanc error JSON').to.be.an('object');
  expect(e.HttpStatus).to.equal(status);
  expect(e.OrthancStatus).to.equal(orthancStatus);
  expect(e).to.include.keys('HttpError', 'Message', 'OrthancError', 'Method', 'Uri');
}

/** Files of the storage area (attachments and temp files), by name. */
function storageFiles(s: TestServer): string[] {
  const root = join(s.dir, 'storage');
  const out: string[] = [];
  for (const a of readdirSync(root)) {
    if (!/^[0-9a-f]{2}$/.test(a)) continue;
    for (const b of readdirSync(join(root, a))) for (const f of readdirSync(join(root, a, b))) out.push(f);
  }
  return out.sort();
}

function storagePath(s: TestServer, uuid: string): string {
  return join(s.dir, 'storage', uuid.slice(0, 2), uuid.slice(2, 4), uuid);
}

function changes(s: TestServer): ChangeRow[] {
  return s.ctx.index.changes(0, 100000).changes;
}

interface Tree {
  patient: string;
  study: string;
  series: string;
  instance: string;
  file: Buffer;
}

let uidCounter = 0;

async function storeOne(s: TestServer, pixelBytes = 512): Promise<Tree> {
  uidCounter++;
  const file = makeInstance({
    patientId: `MD${uidCounter}`,
    studyInstanceUid: `1.2.826.0.1.77.${uidCounter}`,
    seriesInstanceUid: `1.2.826.0.1.77.${uidCounter}.1`,
    sopInstanceUid: `1.2.826.0.1.77.${uidCounter}.1.1`,
    pixelBytes,
  });
  const r = await call(s, 'POST', '/instances', file, { 'content-type': 'application/dicom' });
  expect(r.status).to.equal(200);
  const a = r.json as Json;
  return { patient: a.ParentPatient as string, study: a.ParentStudy as string, series: a.ParentSeries as string, instance: a.ID as string, file };
}

const pathsOf = (t: Tree) => [`/patients/${t.patient}`, `/studies/${t.study}`, `/series/${t.series}`, `/instances/${t.instance}`];
const UNKNOWN_ID = '00000000-00000000-00000000-00000000-00000000';

const USER_CONFIG = {
  UserMetadata: { Sample: 1024, Other: 1025 },
  UserContentType: { samplePdf: [1030, 'application/pdf'] as [number, string], sampleRaw: 1031 },
};

describe('REST: metadata', function () {
  let s: TestServer;
  let t: Tree;
  before(async () => {
    s = await tempServer(USER_CONFIG);
    t = await storeOne(s);
  });
  after(async () => {
    await s.close();
  });

  it('lists the core metadata by name, by number (?numeric), and with values (?expand)', async () => {
    const names = (await call(s, 'GET', `/instances/${t.instance}/metadata`)).json as string[];
    expect(names).to.include.members(['IndexInSeries', 'ReceptionDate', 'Origin', 'TransferSyntax', 'SopClassUid', 'RemoteIP', 'HttpUsername']);
    const numbers = (await call(s, 'GET', `/instances/${t.instance}/metadata?numeric`)).json as number[];
    expect(numbers).to.include.members([1, 2, 8, 9, 10]);
    expect(numbers).to.deep.equal([...numbers].sort((a, b) => a - b));
    const expanded = (await call(s, 'GET', `/instances/${t.instance}/metadata?expand`)).json as Json;
    expect(expanded.Origin).to.equal('RestApi');
    expect(expanded.TransferSyntax).to.equal('1.2.840.10008.1.2.1');
    const expandedNumeric = (await call(s, 'GET', `/instances/${t.instance}/metadata?expand&numeric`)).json as Json;
    expect(expandedNumeric['8']).to.equal('RestApi');
    expect((await call(s, 'GET', `/instances/${t.instance}/metadata?expand=false`)).json).to.deep.equal(names);
    for (const p of pathsOf(t).slice(0, 3)) {
      expect((await call(s, 'GET', `${p}/metadata`)).json).to.include('LastUpdate');
    }
  });

  it('GET one metadata by name or by number, with its ETag "<revision>-<md5>"; If-None-Match answers 304', async () => {
    const byName = await call(s, 'GET', `/instances/${t.instance}/metadata/ReceptionDate`);
    expect(byName.status).to.equal(200);
    expect(byName.text).to.match(/^\d{8}T\d{6}$/);
    expect(byName.headers.get('content-type')).to.match(/^text\/plain/);
    expect(byName.headers.get('etag')).to.equal(`"0-${md5(byName.text)}"`);
    const byNumber = await call(s, 'GET', `/instances/${t.instance}/metadata/2`);
    expect(byNumber.text).to.equal(byName.text);
    const cached = await call(s, 'GET', `/instances/${t.instance}/metadata/2`, undefined, { 'if-none-match': byName.headers.get('etag')! });
    expect(cached.status).to.equal(304);
    const stale = await call(s, 'GET', `/instances/${t.instance}/metadata/2`, undefined, { 'if-none-match': `"0-${md5('other')}"` });
    expect(stale.status).to.equal(200);
    // Not set: 404; a name that is neither core, configured, nor a number: Orthanc's "inexistent item".
    expectOrthancError(await call(s, 'GET', `/instances/${t.instance}/metadata/Sample`), 404, 17);
    expectOrthancError(await call(s, 'GET', `/instances/${t.instance}/metadata/NoSuchName`), 404, 7);
    expectOrthancError(await call(s, 'GET', `/instances/${UNKNOWN_ID}/metadata/2`), 404, 17);
    expectOrthancError(await call(s, 'GET', `/patients/${t.instance}/metadata`), 404, 17);
  });

  it('PUT/GET/DELETE user metadata by name or number on the four levels, logging UpdatedMetadata', async () => {
    const before = changes(s).length;
    for (const [i, p] of pathsOf(t).entries()) {
      const value = `value ${i} é`;
      const put = await call(s, 'PUT', `${p}/metadata/Sample`, value);
      expect(put.status).to.equal(200);
      expect(put.text).to.equal('');
      expect(put.headers.get('etag')).to.equal(`"0-${md5(value)}"`);
      const got = await call(s, 'GET', `${p}/metadata/1024`);
      expect(got.text).to.equal(value);
      expect(got.headers.get('etag')).to.equal(`"0-${md5(value)}"`);
      expect((await call(s, 'PUT', `${p}/metadata/2000`, 'unnamed')).status).to.equal(200);
      const list = (await call(s, 'GET', `${p}/metadata`)).json as string[];
      expect(list).to.include.members(['Sample', '2000']);
      expect(((await call(s, 'GET', `${p}/metadata?expand`)).json as Json).Sample).to.equal(value);
    }
    const logged = changes(s).slice(before);
    expect(logged.filter((c) => c.changeType === ChangeType.UpdatedMetadata)).to.have.length(8);
    expect(logged.map((c) => c.publicId)).to.include.members([t.patient, t.study, t.series, t.instance]);
    expect(logged.find((c) => c.publicId === t.study)!.level).to.equal(1);

    const del = await call(s, 'DELETE', `/studies/${t.study}/metadata/Sample`);
    expect(del.status).to.equal(200);
    expectOrthancError(await call(s, 'GET', `/studies/${t.study}/metadata/Sample`), 404, 17);
    expectOrthancError(await call(s, 'DELETE', `/studies/${t.study}/metadata/Sample`), 404, 17);
    expect(changes(s).slice(-1)[0]).to.include({ changeType: ChangeType.UpdatedMetadata, publicId: t.study });
  });

  it('metadata changes leave LastUpdate alone, as Orthanc', async () => {
    const study = s.ctx.index.findByPublicId(t.study)!;
    s.ctx.index.db.prepare(`UPDATE metadata SET value = '20000101T000000' WHERE resource_id = ? AND type = 7`).run(study.id);
    expect((await call(s, 'PUT', `/studies/${t.study}/metadata/Other`, 'x')).status).to.equal(200);
    expect((await call(s, 'DELETE', `/studies/${t.study}/metadata/Other`)).status).to.equal(200);
    expect(((await call(s, 'GET', `/studies/${t.study}`)).json as Json).LastUpdate).to.equal('20000101T000000');
  });

  it('core metadata is read-only (403), and nothing changes', async () => {
    const before = await call(s, 'GET', `/instances/${t.instance}/metadata?expand`);
    const seq = s.ctx.index.lastChangeSeq();
    for (const name of ['ReceptionDate', '2', '1023', '7', 'LastUpdate']) {
      expectOrthancError(await call(s, 'PUT', `/instances/${t.instance}/metadata/${name}`, 'hacked'), 403, 45);
      expectOrthancError(await call(s, 'DELETE', `/instances/${t.instance}/metadata/${name}`), 403, 45);
    }
    // Beyond the user range (65535) is not user metadata either.
    expectOrthancError(await call(s, 'PUT', `/instances/${t.instance}/metadata/65536`, 'x'), 403, 45);
    expect((await call(s, 'GET', `/instances/${t.instance}/metadata?expand`)).json).to.deep.equal(before.json);
    expect(s.ctx.index.lastChangeSeq()).to.equal(seq);
  });

  it('unknown names (404), unknown or wrong-level IDs (404) and traversal attempts change nothing', async () => {
    const before = (await call(s, 'GET', `/series/${t.series}/metadata?expand`)).json;
    const seq = s.ctx.index.lastChangeSeq();
    expectOrthancError(await call(s, 'PUT', `/series/${t.series}/metadata/Unknown`, 'x'), 404, 7);
    expectOrthancError(await call(s, 'DELETE', `/series/${t.series}/metadata/Unknown`), 404, 7);
    expectOrthancError(await call(s, 'PUT', `/series/${UNKNOWN_ID}/metadata/Sample`, 'x'), 404, 17);
    expectOrthancError(await call(s, 'PUT', `/studies/${t.series}/metadata/Sample`, 'x'), 404, 17);
    expectOrthancError(await call(s, 'PUT', `/series/${t.series}/metadata/..%2F..%2Fsecret`, 'x'), 404, 7);
    const dots = await rawCall(s, 'PUT', `/series/${t.series}/metadata/..`, Buffer.from('x'));
    expectOrthancError(dots, 404, 7);
    expect((await call(s, 'GET', `/series/${t.series}/metadata?expand`)).json).to.deep.equal(before);
    expect(s.ctx.index.lastChangeSeq()).to.equal(seq);
    expect(s.ctx.index.findByPublicId(UNKNOWN_ID)).to.equal(undefined);
  });

  it('revisions with CheckRevisions false: ETags count up, If-Match is optional, and a stale one is a 409', async () => {
    const p = `/instances/${t.instance}/metadata/Other`;
    const r0 = await call(s, 'PUT', p, 'one');
    expect(r0.headers.get('etag')).to.equal(`"0-${md5('one')}"`);
    const r1 = await call(s, 'PUT', p, 'two'); // no If-Match: accepted
    expect(r1.headers.get('etag')).to.equal(`"1-${md5('two')}"`);
    const r2 = await call(s, 'PUT', p, 'three', { 'if-match': r1.headers.get('etag')! });
    expect(r2.status).to.equal(200);
    expect(r2.headers.get('etag')).to.equal(`"2-${md5('three')}"`);
    // Orthanc checks an If-Match it is given whatever CheckRevisions says: a stale revision or MD5 is a conflict.
    const stale = await call(s, 'PUT', p, 'four', { 'if-match': r1.headers.get('etag')! });
    expectOrthancError(stale, 409, 43);
    expectOrthancError(await call(s, 'PUT', p, 'four', { 'if-match': `"2-${md5('other')}"` }), 409, 43);
    expectOrthancError(await call(s, 'DELETE', p, undefined, { 'if-match': `"0-${md5('one')}"` }), 409, 43);
    // Not an ETag: 400 (Orthanc wants "<revision>-<md5>").
    expectOrthancError(await call(s, 'PUT', p, 'four', { 'if-match': '"2"' }), 400, 3);
    expectOrthancError(await call(s, 'PUT', p, 'four', { 'if-match': 'W/"x-y"' }), 400, 3);
    expect((await call(s, 'GET', p)).text).to.equal('three');
    const ok = await call(s, 'DELETE', p, undefined, { 'if-match': ` 2-${md5('three')} ` });
    expect(ok.status).to.equal(200);
    expect((await call(s, 'GET', p)).status).to.equal(404);
    // A new sequence starts at 0.
    expect((await call(s, 'PUT', p, 'again')).headers.get('etag')).to.equal(`"0-${md5('again')}"`);
  });
});

describe('REST: labels', function () {
  let s: TestServer;
  let t: Tree;
  before(async () => {
    s = await tempServer();
    t = await storeOne(s);
  });
  after(async () => {
    await s.close();
  });

  it('PUT/GET/DELETE labels on the four levels; they show in the resources and /tools/labels', async () => {
    const seq = s.ctx.index.lastChangeSeq();
    for (const [i, p] of pathsOf(t).entries()) {
      expect((await call(s, 'GET', `${p}/labels`)).json).to.deep.equal([]);
      const put = await call(s, 'PUT', `${p}/labels/level-${i}_A`, '');
      expect(put.status).to.equal(200);
      expect(put.text).to.equal('');
      expect((await call(s, 'PUT', `${p}/labels/level-${i}_A`)).status, 'idempotent').to.equal(200);
      expect((await call(s, 'PUT', `${p}/labels/common`)).status).to.equal(200);
      expect((await call(s, 'GET', `${p}/labels`)).json).to.deep.equal(['common', `level-${i}_A`]);
      expect((await call(s, 'GET', `${p}/labels/common`)).status).to.equal(200);
      expectOrthancError(await call(s, 'GET', `${p}/labels/absent`), 404, 17);
      expect(((await call(s, 'GET', p)).json as Json).Labels).to.deep.equal(['common', `level-${i}_A`]);
    }
    expect((await call(s, 'GET', '/tools/labels')).json).to.deep.equal(['common', 'level-0_A', 'level-1_A', 'level-2_A', 'level-3_A']);
    const found = await call(s, 'POST', '/tools/find', JSON.stringify({ Level: 'Series', Query: {}, Labels: ['level-2_A'] }));
    expect(found.json).to.deep.equal([t.series]);
    expect((await call(s, 'DELETE', `/series/${t.series}/labels/level-2_A`)).status).to.equal(200);
    expect((await call(s, 'DELETE', `/series/${t.series}/labels/never-set`)).status, 'removing an absent label').to.equal(200);
    expect((await call(s, 'GET', `/series/${t.series}/labels`)).json).to.deep.equal(['common']);
    expect((await call(s, 'GET', '/tools/labels')).json).to.not.include('level-2_A');
    expect(s.ctx.index.lastChangeSeq(), 'Orthanc logs no change for labels').to.equal(seq);
  });

  it('refuses invalid labels with 400 (Orthanc\'s rule) and unknown or wrong-level IDs with 404, changing nothing', async () => {
    const before = (await call(s, 'GET', `/studies/${t.study}/labels`)).json;
    const all = (await call(s, 'GET', '/tools/labels')).json;
    for (const bad of ['a%20b', 'x'.repeat(65), '%C3%A9t%C3%A9', 'a.b', 'a%2Fb', '..%2F..%2Fetc', 'semi%3Bcolon']) {
      expectOrthancError(await call(s, 'PUT', `/studies/${t.study}/labels/${bad}`), 400, 3);
      expectOrthancError(await call(s, 'DELETE', `/studies/${t.study}/labels/${bad}`), 400, 3);
    }
    expectOrthancError(await rawCall(s, 'PUT', `/studies/${t.study}/labels/..`), 400, 3);
    expect((await call(s, 'PUT', `/studies/${t.study}/labels/${'x'.repeat(64)}`)).status, '64 characters are allowed').to.equal(200);
    expect((await call(s, 'DELETE', `/studies/${t.study}/labels/${'x'.repeat(64)}`)).status).to.equal(200);
    expectOrthancError(await call(s, 'PUT', `/studies/${UNKNOWN_ID}/labels/ok`), 404, 17);
    expectOrthancError(await call(s, 'PUT', `/patients/${t.study}/labels/ok`), 404, 17);
    expectOrthancError(await call(s, 'GET', `/series/${UNKNOWN_ID}/labels`), 404, 17);
    expect((await call(s, 'GET', `/studies/${t.study}/labels`)).json).to.deep.equal(before);
    expect((await call(s, 'GET', '/tools/labels')).json).to.deep.equal(all);
  });
});

describe('REST: attachments', function () {
  let s: TestServer;
  let t: Tree;
  before(async () => {
    s = await tempServer(USER_CONFIG);
    t = await storeOne(s);
  });
  after(async () => {
    await s.close();
  });

  it('the DICOM attachment: list, operations, data, sizes, MD5s, info; by name or number', async () => {
    expect((await call(s, 'GET', `/instances/${t.instance}/attachments`)).json).to.deep.equal(['dicom']);
    expect((await call(s, 'GET', `/instances/${t.instance}/attachments?full`)).json).to.deep.equal({ dicom: 1 });
    for (const p of pathsOf(t).slice(0, 3)) expect((await call(s, 'GET', `${p}/attachments`)).json).to.deep.equal([]);
    const base = `/instances/${t.instance}/attachments/dicom`;
    const ops = await call(s, 'GET', base);
    expect(ops.json).to.deep.equal(['compress', 'compressed-data', 'compressed-md5', 'compressed-size', 'data', 'info', 'is-compressed', 'md5', 'size', 'uncompress', 'verify-md5']);
    expect(ops.headers.get('etag')).to.equal(`"0-${md5(t.file)}"`);
    const data = await call(s, 'GET', `${base}/data`);
    expect(data.headers.get('content-type')).to.equal('application/dicom');
    expect(data.body.equals(t.file)).to.equal(true);
    expect((await call(s, 'GET', `/instances/${t.instance}/attachments/1/data`)).body.equals(t.file)).to.equal(true);
    expect((await call(s, 'GET', `${base}/compressed-data`)).body.equals(t.file)).to.equal(true);
    expect((await call(s, 'GET', `${base}/size`)).text).to.equal(String(t.file.length));
    expect((await call(s, 'GET', `${base}/compressed-size`)).text).to.equal(String(t.file.length));
    expect((await call(s, 'GET', `${base}/md5`)).text).to.equal(md5(t.file));
    expect((await call(s, 'GET', `${base}/compressed-md5`)).text).to.equal(md5(t.file));
    expect((await call(s, 'GET', `${base}/is-compressed`)).text).to.equal('0');
    const info = (await call(s, 'GET', `${base}/info`)).json as Json;
    expect(info).to.include({ ContentType: 1, UncompressedSize: t.file.length, CompressedSize: t.file.length, UncompressedMD5: md5(t.file), CompressedMD5: md5(t.file) });
    expect(readFileSync(storagePath(s, info.Uuid as string)).equals(t.file)).to.equal(true);
    const verify = await call(s, 'POST', `${base}/verify-md5`);
    expect(verify.status).to.equal(200);
    expect(verify.json).to.deep.equal({});
    expect((await call(s, 'GET', `${base}/md5`, undefined, { 'if-none-match': `"0-${md5(t.file)}"` })).status).to.equal(304);
  });

  it('the DICOM file and other core attachments cannot be replaced or deleted (403); unknown ones are 404', async () => {
    const files = storageFiles(s);
    const seq = s.ctx.index.lastChangeSeq();
    for (const name of ['dicom', '1', 'dicom-until-pixel-data', '3', '1023']) {
      expectOrthancError(await call(s, 'PUT', `/instances/${t.instance}/attachments/${name}`, 'evil'), 403, 45);
    }
    expectOrthancError(await call(s, 'DELETE', `/instances/${t.instance}/attachments/dicom`), 403, 45);
    expectOrthancError(await call(s, 'DELETE', `/instances/${t.instance}/attachments/3`), 403, 45);
    // dicom-as-json (2) may be deleted in Orthanc (a cache of old releases); pacsnode has none: 404.
    expectOrthancError(await call(s, 'DELETE', `/instances/${t.instance}/attachments/dicom-as-json`), 404, 17);
    expectOrthancError(await call(s, 'GET', `/instances/${t.instance}/attachments/nope`), 404, 7);
    expectOrthancError(await call(s, 'GET', `/instances/${t.instance}/attachments/samplePdf`), 404, 17);
    expectOrthancError(await call(s, 'GET', `/instances/${t.instance}/attachments/samplePdf/data`), 404, 17);
    expectOrthancError(await call(s, 'GET', `/instances/${UNKNOWN_ID}/attachments`), 404, 17);
    expectOrthancError(await call(s, 'GET', `/studies/${t.instance}/attachments/dicom`), 404, 17);
    expect((await call(s, 'GET', `/instances/${t.instance}/file`)).body.equals(t.file)).to.equal(true);
    expect(storageFiles(s)).to.deep.equal(files);
    expect(s.ctx.index.lastChangeSeq()).to.equal(seq);
  });

  it('PUT user attachments on the four levels, with their MIME type, revisions and UpdatedAttachment changes', async () => {
    const before = changes(s).length;
    for (const [i, p] of pathsOf(t).entries()) {
      const pdf = Buffer.from(`%PDF-1.4 level ${i}`);
      const put = await call(s, 'PUT', `${p}/attachments/samplePdf`, pdf);
      expect(put.status).to.equal(200);
      expect(put.json).to.deep.equal({});
      expect(put.headers.get('etag')).to.equal(`"0-${md5(pdf)}"`);
      const data = await call(s, 'GET', `${p}/attachments/samplePdf/data`);
      expect(data.headers.get('content-type')).to.equal('application/pdf');
      expect(data.headers.get('etag')).to.equal(`"0-${md5(pdf)}"`);
      expect(data.body.equals(pdf)).to.equal(true);
      expect((await call(s, 'PUT', `${p}/attachments/sampleRaw`, 'raw data')).status).to.equal(200);
      expect((await call(s, 'GET', `${p}/attachments/1031/data`)).headers.get('content-type')).to.equal('application/octet-stream');
      expect((await call(s, 'PUT', `${p}/attachments/2000`, 'unnamed')).status).to.equal(200);
    }
    expect((await call(s, 'GET', `/studies/${t.study}/attachments`)).json).to.deep.equal(['samplePdf', 'sampleRaw', '2000']);
    expect((await call(s, 'GET', `/studies/${t.study}/attachments?full`)).json).to.deep.equal({ samplePdf: 1030, sampleRaw: 1031, '2000': 2000 });
    expect((await call(s, 'GET', `/instances/${t.instance}/attachments`)).json).to.deep.equal(['dicom', 'samplePdf', 'sampleRaw', '2000']);
    const logged = changes(s).slice(before);
    expect(logged.filter((c) => c.changeType === ChangeType.UpdatedAttachment)).to.have.length(12);
    expect(logged.filter((c) => c.publicId === t.patient && c.level === 0)).to.have.length(3);

    // Replacing: a new revision, a new file, the old file gone; LastUpdate untouched (as Orthanc).
    const study = s.ctx.index.findByPublicId(t.study)!;
    s.ctx.index.db.prepare(`UPDATE metadata SET value = '20000101T000000' WHERE resource_id = ? AND type = 7`).run(study.id);
    const oldUuid = ((await call(s, 'GET', `/studies/${t.study}/attachments/samplePdf/info`)).json as Json).Uuid as string;
    const next = await call(s, 'PUT', `/studies/${t.study}/attachments/samplePdf`, 'version 2');
    expect(next.headers.get('etag')).to.equal(`"1-${md5('version 2')}"`);
    const info = (await call(s, 'GET', `/studies/${t.study}/attachments/samplePdf/info`)).json as Json;
    expect(info.Uuid).to.not.equal(oldUuid);
    expect(existsSync(storagePath(s, oldUuid))).to.equal(false);
    expect(readFileSync(storagePath(s, info.Uuid as string)).toString()).to.equal('version 2');
    expect(((await call(s, 'GET', `/studies/${t.study}`)).json as Json).LastUpdate).to.equal('20000101T000000');
    expect(storageFiles(s).filter((f) => f.endsWith('.tmp'))).to.deep.equal([]);
  });

  it('user attachments count in the statistics; DELETE removes the row and the file, with revisions', async () => {
    const statsBefore = s.ctx.index.statistics();
    const body = Buffer.alloc(5000, 7);
    await call(s, 'PUT', `/series/${t.series}/attachments/1500`, body);
    expect(s.ctx.index.statistics().totalUncompressedSize - statsBefore.totalUncompressedSize).to.equal(5000);
    const uuid = ((await call(s, 'GET', `/series/${t.series}/attachments/1500/info`)).json as Json).Uuid as string;
    expect(existsSync(storagePath(s, uuid))).to.equal(true);
    expectOrthancError(await call(s, 'DELETE', `/series/${t.series}/attachments/1500`, undefined, { 'if-match': `"1-${md5(body)}"` }), 409, 43);
    expect(existsSync(storagePath(s, uuid)), 'a refused DELETE keeps the file').to.equal(true);
    const del = await call(s, 'DELETE', `/series/${t.series}/attachments/1500`, undefined, { 'if-match': `"0-${md5(body)}"` });
    expect(del.status).to.equal(200);
    expect(existsSync(storagePath(s, uuid))).to.equal(false);
    expect(s.ctx.index.statistics()).to.deep.equal(statsBefore);
    expect(changes(s).slice(-1)[0]).to.include({ changeType: ChangeType.UpdatedAttachment, publicId: t.series, level: 2 });
    expectOrthancError(await call(s, 'DELETE', `/series/${t.series}/attachments/1500`), 404, 17);
    expectOrthancError(await call(s, 'GET', `/series/${t.series}/attachments/1500/data`), 404, 17);
  });

  it('streams a large body (chunked, 5 MB) to disk and serves it back whole', async () => {
    const big = Buffer.alloc(5 * 1024 * 1024 + 17);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 12)) & 0xff;
    const put = await putStreamed(s, `/patients/${t.patient}/attachments/sampleRaw`, big);
    expect(put.status).to.equal(200);
    expect(put.headers.get('etag')).to.match(new RegExp(`^"\\d+-${md5(big)}"$`));
    const data = await call(s, 'GET', `/patients/${t.patient}/attachments/sampleRaw/data`);
    expect(data.headers.get('content-length')).to.equal(String(big.length));
    expect(data.body.equals(big)).to.equal(true);
    expect((await call(s, 'GET', `/patients/${t.patient}/attachments/sampleRaw/md5`)).text).to.equal(md5(big));
    expect((await call(s, 'POST', `/patients/${t.patient}/attachments/sampleRaw/verify-md5`)).status).to.equal(200);
    expect(storageFiles(s).filter((f) => f.endsWith('.tmp'))).to.deep.equal([]);
  });

  it('compress and uncompress rewrite the file in Orthanc\'s zlib format, with a new revision', async () => {
    const content = Buffer.from('compress me '.repeat(2000));
    await call(s, 'PUT', `/instances/${t.instance}/attachments/1600`, content);
    const base = `/instances/${t.instance}/attachments/1600`;
    const c = await call(s, 'POST', `${base}/compress`);
    expect(c.status).to.equal(200);
    expect(c.json).to.deep.equal({});
    expect((await call(s, 'GET', `${base}/is-compressed`)).text).to.equal('1');
    const info = (await call(s, 'GET', `${base}/info`)).json as Json;
    expect(info.UncompressedSize).to.equal(content.length);
    expect(info.CompressedSize as number).to.be.lessThan(content.length);
    const stored = readFileSync(storagePath(s, info.Uuid as string));
    expect(Number(stored.readBigUInt64LE(0))).to.equal(content.length);
    expect(inflateSync(stored.subarray(8)).equals(content)).to.equal(true);
    expect(info.CompressedMD5).to.equal(md5(stored));
    expect((await call(s, 'GET', `${base}/compressed-data`)).body.equals(stored)).to.equal(true);
    expect((await call(s, 'GET', `${base}/data`)).body.equals(content)).to.equal(true);
    expect((await call(s, 'GET', base)).headers.get('etag')).to.equal(`"1-${md5(content)}"`);
    expect((await call(s, 'POST', `${base}/compress`)).status, 'already compressed: nothing to do').to.equal(200);
    expect((await call(s, 'GET', base)).headers.get('etag')).to.equal(`"1-${md5(content)}"`);
    expect((await call(s, 'POST', `${base}/verify-md5`)).status).to.equal(200);
    expect((await call(s, 'POST', `${base}/uncompress`)).status).to.equal(200);
    expect((await call(s, 'GET', `${base}/is-compressed`)).text).to.equal('0');
    expect((await call(s, 'GET', `${base}/compressed-data`)).body.equals(content)).to.equal(true);
    expect((await call(s, 'GET', base)).headers.get('etag')).to.equal(`"2-${md5(content)}"`);
    expect(existsSync(storagePath(s, info.Uuid as string)), 'the compressed file is gone').to.equal(false);

    // The DICOM file itself can be compressed: the instance still reads the same.
    expect((await call(s, 'POST', `/instances/${t.instance}/attachments/dicom/compress`)).status).to.equal(200);
    expect((await call(s, 'GET', `/instances/${t.instance}/attachments/dicom/is-compressed`)).text).to.equal('1');
    expect((await call(s, 'GET', `/instances/${t.instance}/file`)).body.equals(t.file)).to.equal(true);
    expect(((await call(s, 'GET', `/instances/${t.instance}/simplified-tags`)).json as Json).PatientID).to.equal(`MD${uidCounter}`);
    expect((await call(s, 'POST', `/instances/${t.instance}/attachments/dicom/uncompress`)).status).to.equal(200);
    expect((await call(s, 'GET', `/instances/${t.instance}/file`)).body.equals(t.file)).to.equal(true);
  });

  it('verify-md5 answers 400 for a corrupted file or a missing attachment', async () => {
    await call(s, 'PUT', `/series/${t.series}/attachments/1700`, 'pristine content');
    const info = (await call(s, 'GET', `/series/${t.series}/attachments/1700/info`)).json as Json;
    writeFileSync(storagePath(s, info.Uuid as string), 'tampered content');
    expectOrthancError(await call(s, 'POST', `/series/${t.series}/attachments/1700/verify-md5`), 400, 20);
    expectOrthancError(await call(s, 'POST', `/series/${t.series}/attachments/1701/verify-md5`), 400, 8);
    // Compressing checks the content against its MD5 first: refused, nothing changes.
    expectOrthancError(await call(s, 'POST', `/series/${t.series}/attachments/1700/compress`), 500, 20);
    expect(((await call(s, 'GET', `/series/${t.series}/attachments/1700/info`)).json as Json).Uuid).to.equal(info.Uuid);
    expect(storageFiles(s).filter((f) => f.endsWith('.tmp'))).to.deep.equal([]);
  });

  it('refusals store nothing: unknown names, IDs, traversal attempts, stale revisions', async () => {
    const files = storageFiles(s);
    const seq = s.ctx.index.lastChangeSeq();
    const rows = (s.ctx.index.db.prepare('SELECT COUNT(*) AS n FROM attachments').get() as { n: number }).n;
    expectOrthancError(await call(s, 'PUT', `/studies/${t.study}/attachments/nope`, 'x'), 404, 7);
    expectOrthancError(await call(s, 'PUT', `/studies/${UNKNOWN_ID}/attachments/samplePdf`, 'x'), 404, 17);
    expectOrthancError(await call(s, 'PUT', `/series/${t.study}/attachments/samplePdf`, 'x'), 404, 17);
    expectOrthancError(await call(s, 'PUT', `/studies/${t.study}/attachments/..%2F..%2F..%2Ftmp%2Fx`, 'x'), 404, 7);
    expectOrthancError(await rawCall(s, 'PUT', `/studies/${t.study}/attachments/%2E%2E`, Buffer.from('x')), 404, 7);
    expectOrthancError(await rawCall(s, 'PUT', `/studies/${t.study}/attachments/..`, Buffer.from('x')), 404, 7);
    expectOrthancError(await rawCall(s, 'GET', `/studies/${t.study}/attachments/../data`), 404, 7);
    const current = await call(s, 'GET', `/studies/${t.study}/attachments/samplePdf`);
    expectOrthancError(await call(s, 'PUT', `/studies/${t.study}/attachments/samplePdf`, 'x', { 'if-match': `"0-${md5('x')}"` }), 409, 43);
    expectOrthancError(await putStreamed(s, `/studies/${t.study}/attachments/samplePdf`, Buffer.alloc(3 << 20, 1), 65536, { 'if-match': '"0-00"' }), 409, 43);
    expect((await call(s, 'GET', `/studies/${t.study}/attachments/samplePdf`)).headers.get('etag')).to.equal(current.headers.get('etag'));
    expect(storageFiles(s)).to.deep.equal(files);
    expect(s.ctx.index.lastChangeSeq()).to.equal(seq);
    expect((s.ctx.index.db.prepare('SELECT COUNT(*) AS n FROM attachments').get() as { n: number }).n).to.equal(rows);
  });

  it('deleting a resource deletes its attachments and their files', async () => {
    const t2 = await storeOne(s);
    await call(s, 'PUT', `/patients/${t2.patient}/attachments/samplePdf`, 'patient pdf');
    await call(s, 'PUT', `/instances/${t2.instance}/attachments/samplePdf`, 'instance pdf');
    const uuids = [
      ((await call(s, 'GET', `/patients/${t2.patient}/attachments/samplePdf/info`)).json as Json).Uuid as string,
      ((await call(s, 'GET', `/instances/${t2.instance}/attachments/samplePdf/info`)).json as Json).Uuid as string,
    ];
    expect((await call(s, 'DELETE', `/patients/${t2.patient}`)).status).to.equal(200);
    for (const u of uuids) expect(existsSync(storagePath(s, u))).to.equal(false);
  });
});

describe('REST: revisions with CheckRevisions true', function () {
  let s: TestServer;
  let t: Tree;
  before(async () => {
    s = await tempServer({ ...USER_CONFIG, CheckRevisions: true, MaximumHttpBodySize: 1 });
    t = await storeOne(s);
  });
  after(async () => {
    await s.close();
  });

  it('metadata: creating needs no If-Match, changing or deleting an existing value does (409 otherwise)', async () => {
    const p = `/studies/${t.study}/metadata/Sample`;
    const created = await call(s, 'PUT', p, 'v0');
    expect(created.status).to.equal(200);
    expect(created.headers.get('etag')).to.equal(`"0-${md5('v0')}"`);
    expectOrthancError(await call(s, 'PUT', p, 'blind'), 409, 43);
    expectOrthancError(await call(s, 'PUT', p, 'stale', { 'if-match': `"1-${md5('v0')}"` }), 409, 43);
    expect((await call(s, 'GET', p)).text).to.equal('v0');
    const updated = await call(s, 'PUT', p, 'v1', { 'if-match': created.headers.get('etag')! });
    expect(updated.headers.get('etag')).to.equal(`"1-${md5('v1')}"`);
    const missing = await call(s, 'DELETE', p);
    expectOrthancError(missing, 409, 43);
    expect((missing.json as Json).Details).to.equal('HTTP header "If-Match" is missing, as "CheckRevisions" is "true"');
    expectOrthancError(await call(s, 'DELETE', p, undefined, { 'if-match': created.headers.get('etag')! }), 409, 43);
    expect((await call(s, 'GET', p)).text).to.equal('v1');
    expect((await call(s, 'DELETE', p, undefined, { 'if-match': updated.headers.get('etag')! })).status).to.equal(200);
    expect((await call(s, 'GET', p)).status).to.equal(404);
  });

  it('attachments: same rules; a refused PUT leaves the stored file and revision as they were', async () => {
    const p = `/instances/${t.instance}/attachments/samplePdf`;
    const created = await call(s, 'PUT', p, 'first');
    expect(created.headers.get('etag')).to.equal(`"0-${md5('first')}"`);
    const files = storageFiles(s);
    expectOrthancError(await call(s, 'PUT', p, 'blind'), 409, 43);
    expectOrthancError(await call(s, 'PUT', p, 'stale', { 'if-match': `"0-${md5('other')}"` }), 409, 43);
    expect(storageFiles(s)).to.deep.equal(files);
    expect((await call(s, 'GET', `${p}/data`)).text).to.equal('first');
    const second = await call(s, 'PUT', p, 'second', { 'if-match': created.headers.get('etag')! });
    expect(second.headers.get('etag')).to.equal(`"1-${md5('second')}"`);
    expect((await call(s, 'GET', `${p}/data`)).headers.get('etag')).to.equal(second.headers.get('etag'));
    expectOrthancError(await call(s, 'DELETE', p), 409, 43);
    expect((await call(s, 'DELETE', p, undefined, { 'if-match': second.headers.get('etag')! })).status).to.equal(200);
    expectOrthancError(await call(s, 'GET', p), 404, 17);
  });

  it('a body beyond MaximumHttpBodySize is refused (413) even when chunked, leaving no file behind', async () => {
    const files = storageFiles(s);
    const r = await putStreamed(s, `/instances/${t.instance}/attachments/sampleRaw`, Buffer.alloc(3 << 20, 9));
    expect(r.status).to.equal(413);
    expect(storageFiles(s)).to.deep.equal(files);
    expectOrthancError(await call(s, 'GET', `/instances/${t.instance}/attachments/sampleRaw`), 404, 17);
  });
});

describe('REST: attachments with StorageCompression', function () {
  let s: TestServer;
  let t: Tree;
  before(async () => {
    s = await tempServer({ ...USER_CONFIG, StorageCompression: true });
    t = await storeOne(s, 20000);
  });
  after(async () => {
    await s.close();
  });

  it('the DICOM attachment is stored compressed and served inflated', async () => {
    const base = `/instances/${t.instance}/attachments/dicom`;
    expect((await call(s, 'GET', `${base}/is-compressed`)).text).to.equal('1');
    expect((await call(s, 'GET', `${base}/data`)).body.equals(t.file)).to.equal(true);
    const stored = (await call(s, 'GET', `${base}/compressed-data`)).body;
    expect(inflateSync(stored.subarray(8)).equals(t.file)).to.equal(true);
    expect((await call(s, 'POST', `${base}/verify-md5`)).status).to.equal(200);
  });

  for (const [label, size] of [['small', 3000], ['large (streamed through a spool)', 3 * 1024 * 1024 + 5]] as const) {
    it(`a ${label} user attachment is stored in Orthanc's zlib format`, async () => {
      const content = Buffer.alloc(size);
      for (let i = 0; i < size; i++) content[i] = (i % 251) & 0xff;
      const p = `/series/${t.series}/attachments/samplePdf`;
      const put = size > 1 << 20 ? await putStreamed(s, p, content) : await call(s, 'PUT', p, content);
      expect(put.status).to.equal(200);
      expect(put.headers.get('etag')).to.match(new RegExp(`-${md5(content)}"$`));
      const info = (await call(s, 'GET', `${p}/info`)).json as Json;
      const stored = readFileSync(storagePath(s, info.Uuid as string));
      expect(Number(stored.readBigUInt64LE(0))).to.equal(size);
      expect(inflateSync(stored.subarray(8)).equals(content)).to.equal(true);
      expect(info).to.include({ UncompressedSize: size, CompressedSize: stored.length, UncompressedMD5: md5(content), CompressedMD5: md5(stored) });
      expect((await call(s, 'GET', `${p}/data`)).body.equals(content)).to.equal(true);
      expect((await call(s, 'GET', `${p}/compressed-data`)).body.equals(stored)).to.equal(true);
      expect((await call(s, 'POST', `${p}/verify-md5`)).status).to.equal(200);
      expect(storageFiles(s).filter((f) => f.endsWith('.tmp'))).to.deep.equal([]);
    });
  }

  it('an empty attachment is an empty file (as Orthanc\'s compressor), and uncompress keeps it empty', async () => {
    const p = `/studies/${t.study}/attachments/sampleRaw`;
    expect((await call(s, 'PUT', p, '')).status).to.equal(200);
    const info = (await call(s, 'GET', `${p}/info`)).json as Json;
    expect(info).to.include({ UncompressedSize: 0, CompressedSize: 0, UncompressedMD5: md5('') });
    expect(readFileSync(storagePath(s, info.Uuid as string)).length).to.equal(0);
    expect((await call(s, 'GET', `${p}/data`)).body.length).to.equal(0);
    expect((await call(s, 'GET', `${p}/is-compressed`)).text).to.equal('1');
    expect((await call(s, 'POST', `${p}/uncompress`)).status).to.equal(200);
    expect((await call(s, 'GET', `${p}/is-compressed`)).text).to.equal('0');
    expect((await call(s, 'GET', `${p}/data`)).body.length).to.equal(0);
  });

  it('uncompress of a user attachment stores its content as is', async () => {
    const content = Buffer.from('plain after all '.repeat(100));
    const p = `/patients/${t.patient}/attachments/1999`;
    await call(s, 'PUT', p, content);
    expect((await call(s, 'POST', `${p}/uncompress`)).status).to.equal(200);
    const info = (await call(s, 'GET', `${p}/info`)).json as Json;
    expect(readFileSync(storagePath(s, info.Uuid as string)).equals(content)).to.equal(true);
    expect(info).to.include({ CompressedSize: content.length, CompressedMD5: md5(content) });
    expect((await call(s, 'GET', p)).headers.get('etag')).to.equal(`"1-${md5(content)}"`);
  });
});
