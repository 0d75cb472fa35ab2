/**
 * STOW-RS (`POST {root}studies`, `POST {root}studies/{study}`) over real HTTP: the pydicom test corpus stored ten
 * instances per request with the same outcome as the REST upload door, the PS3.18 response (200/202/409/400,
 * ReferencedSOPSequence, FailedSOPSequence with FailureReason) in JSON and XML, bodies streamed with chunked
 * transfer, and bad input refused with the right status and nothing stored half-way.
 */
import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { closeDelimiter, partHead } from '../src/dicomweb/multipart.js';
import { generateUid } from '../src/dicom/uids.js';
import { tempServer, type TestServer } from './helpers/context.js';
import { makeInstance } from './helpers/factory.js';

const CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const BOUNDARY = 'stow-test-boundary-1234';
const CONTENT_TYPE = `multipart/related; type="application/dicom"; boundary=${BOUNDARY}`;

type Json = Record<string, { vr: string; Value?: unknown[] }>;

interface Answer {
  status: number;
  text: string;
  json: unknown;
  headers: Headers;
}

function multipart(bodies: readonly Buffer[], options: { boundary?: string; type?: string; close?: boolean } = {}): Buffer {
  const boundary = options.boundary ?? BOUNDARY;
  const out: Buffer[] = [];
  bodies.forEach((body, i) => out.push(partHead(boundary, { 'Content-Type': options.type ?? 'application/dicom' }, i === 0), body));
  if (options.close !== false) out.push(closeDelimiter(boundary));
  return Buffer.concat(out);
}

async function post(
  s: TestServer,
  path: string,
  body: Buffer | ReadableStream<Uint8Array>,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const init: RequestInit & { duplex?: 'half' } = {
    method: 'POST',
    body,
    headers: { 'Content-Type': CONTENT_TYPE, ...headers },
  };
  if (!Buffer.isBuffer(body)) init.duplex = 'half';
  const res = await fetch(`${s.url}${path}`, init);
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json, headers: res.headers };
}

async function instanceCount(s: TestServer): Promise<number> {
  return ((await (await fetch(`${s.url}/instances`)).json()) as string[]).length;
}

function seq(answer: Answer, tag: string): Json[] {
  const attr = (answer.json as Json)[tag];
  expect(attr, `${tag} in ${answer.text}`).to.not.equal(undefined);
  expect(attr!.vr).to.equal('SQ');
  return (attr!.Value ?? []) as Json[];
}

const uidOf = (item: Json, tag: string) => (item[tag]?.Value as string[] | undefined)?.[0];

function expectOrthancError(a: Answer, status: number): void {
  expect(a.status, a.text).to.equal(status);
  const e = a.json as Record<string, unknown>;
  expect(e.HttpStatus).to.equal(status);
  expect(e.Method).to.equal('POST');
}

/** `body` as a stream of 64 KB chunks: fetch sends it chunked, without a Content-Length. */
function inChunks(body: Buffer): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= body.length) return controller.close();
      controller.enqueue(body.subarray(at, at + 65536));
      at += 65536;
    },
  });
}

describe('DICOMweb STOW-RS', function () {
  let s: TestServer;
  beforeEach(async () => {
    s = await tempServer();
  });
  afterEach(async () => {
    await s.close();
  });

  describe('the pydicom corpus', function () {
    before(function () {
      if (!existsSync(CORPUS)) this.skip();
    });

    it('stores it ten instances per request with the outcome of the REST upload door for every file', async function () {
      this.timeout(120000);
      const files = readdirSync(CORPUS).filter((f) => f.endsWith('.dcm')).sort();
      // The REST door (POST /instances) on another server says which files the ingestion path refuses.
      const other = await tempServer();
      const refused = new Set<string>();
      try {
        for (const f of files) {
          const res = await fetch(`${other.url}/instances`, { method: 'POST', body: readFileSync(join(CORPUS, f)) });
          await res.arrayBuffer();
          if (res.status !== 200) refused.add(f);
        }
      } finally {
        await other.close();
      }
      expect(refused.size).to.be.greaterThan(0);
      expect(refused.size).to.be.lessThan(files.length / 2);

      let stored = 0;
      let failed = 0;
      for (let i = 0; i < files.length; i += 10) {
        const batch = files.slice(i, i + 10);
        const a = await post(s, '/dicom-web/studies', multipart(batch.map((f) => readFileSync(join(CORPUS, f)))));
        const expectedFailures = batch.filter((f) => refused.has(f)).length;
        const referenced = seq(a, '00081199');
        const failures = seq(a, '00081198');
        expect(failures.length, a.text).to.equal(expectedFailures);
        expect(referenced.length, a.text).to.equal(batch.length - expectedFailures);
        expect(a.status).to.equal(expectedFailures === 0 ? 200 : expectedFailures === batch.length ? 409 : 202);
        for (const f of failures) expect(f['00081197']!.Value).to.deep.equal([0xc000]);
        for (const r of referenced) {
          const url = (r['00081190']!.Value as string[])[0]!;
          expect(url).to.match(new RegExp(`^${s.url}/dicom-web/studies/[0-9.]+/series/[0-9.]+/instances/${uidOf(r, '00081155')!.replace(/\./g, '\\.')}$`));
          expect(uidOf(r, '00081150')).to.match(/^1\.2\.840\.10008\.5\.1\.4\./);
        }
        stored += referenced.length;
        failed += failures.length;
      }
      expect(failed).to.equal(refused.size);
      // Corpus files sharing a SOP Instance UID are stored once (the next ones are AlreadyStored, a success).
      const distinct = await instanceCount(s);
      expect(distinct).to.be.at.most(stored).and.greaterThan(stored / 2);
    });
  });

  it('answers the Store Instances Response in XML when asked (PS3.19)', async () => {
    const study = generateUid();
    const sop = generateUid();
    const a = await post(s, '/dicom-web/studies', multipart([makeInstance({ studyInstanceUid: study, sopInstanceUid: sop })]), {
      Accept: 'application/dicom+xml',
    });
    expect(a.status).to.equal(200);
    expect(a.headers.get('content-type')).to.match(/^application\/dicom\+xml/);
    expect(a.text).to.match(/^<\?xml version="1\.0" encoding="UTF-8"\?>\n<NativeDicomModel xmlns="http:\/\/dicom\.nema\.org\/PS3\.19\/models\/NativeDICOM">/);
    expect(a.text).to.contain('<DicomAttribute tag="00081199" vr="SQ" keyword="ReferencedSOPSequence">');
    expect(a.text).to.contain(`<Value number="1">${sop}</Value>`);
    expect(a.text).to.contain(`<Value number="1">${s.url}/dicom-web/studies/${study}</Value>`);
    // A multipart Accept of XML, as PS3.18 allows, is the same answer.
    const b = await post(s, '/dicom-web/studies', multipart([makeInstance()]), { Accept: 'multipart/related; type="application/dicom+xml"' });
    expect(b.headers.get('content-type')).to.match(/^application\/dicom\+xml/);
  });

  it('POST studies/{study} stores that study and refuses an instance of another one (0110), storing nothing of it', async () => {
    const study = generateUid();
    const mine = makeInstance({ studyInstanceUid: study });
    const foreignSop = generateUid();
    const foreign = makeInstance({ sopInstanceUid: foreignSop });
    const a = await post(s, `/dicom-web/studies/${study}`, multipart([mine, foreign]));
    expect(a.status, a.text).to.equal(202);
    expect(seq(a, '00081199')).to.have.length(1);
    const [f] = seq(a, '00081198');
    expect(uidOf(f!, '00081155')).to.equal(foreignSop);
    expect(f!['00081197']!.Value).to.deep.equal([0x0110]);
    expect(((a.json as Json)['00081190']!.Value as string[])[0]).to.equal(`${s.url}/dicom-web/studies/${study}`);
    expect(await instanceCount(s)).to.equal(1);

    const none = await post(s, `/dicom-web/studies/${study}`, multipart([foreign]));
    expect(none.status).to.equal(409);
    expect(await instanceCount(s)).to.equal(1);

    // A large part of another study (past the in-memory limit) is skipped, and the next part is read whole.
    const bigForeign = makeInstance({ pixelBytes: 3 << 20 });
    const next = makeInstance({ studyInstanceUid: study });
    const mixed = await post(s, `/dicom-web/studies/${study}`, multipart([bigForeign, next]));
    expect(mixed.status, mixed.text).to.equal(202);
    expect(seq(mixed, '00081198')[0]!['00081197']!.Value).to.deep.equal([0x0110]);
    expect(seq(mixed, '00081199')).to.have.length(1);
    expect(await instanceCount(s)).to.equal(2);
  });

  it('streams a body sent with chunked transfer, a part larger than the in-memory limit included, byte for byte', async () => {
    const big = makeInstance({ pixelBytes: 3 << 20 });
    const small = makeInstance();
    const body = multipart([small, big, makeInstance()]);
    const a = await post(s, '/dicom-web/studies', inChunks(body));
    expect(a.status, a.text).to.equal(200);
    expect(seq(a, '00081199')).to.have.length(3);
    const [ref] = seq(a, '00081199').filter((r) => big.includes(Buffer.from(uidOf(r, '00081155')!)));
    const url = new URL((ref!['00081190']!.Value as string[])[0]!);
    const [, , , study, , series, , sop] = url.pathname.split('/');
    const found = (await (
      await fetch(`${s.url}/tools/lookup`, { method: 'POST', body: sop })
    ).json()) as { ID: string; Type: string }[];
    expect(found[0]!.Type).to.equal('Instance');
    const file = Buffer.from(await (await fetch(`${s.url}/instances/${found[0]!.ID}/file`)).arrayBuffer());
    expect(file.equals(big)).to.equal(true);
    expect(study).to.match(/^[0-9.]+$/);
    expect(series).to.match(/^[0-9.]+$/);
  });

  it('MaximumHttpBodySize bounds a chunked body too: 413 once it is passed, the instances before it stored whole', async () => {
    const limited = await tempServer({ MaximumHttpBodySize: 1 });
    try {
      const body = multipart([makeInstance(), makeInstance({ pixelBytes: 3 << 20 }), makeInstance()]);
      const a = await post(limited, '/dicom-web/studies', inChunks(body));
      expectOrthancError(a, 413);
      // The first part (small, whole) may be stored; the large one, cut by the limit, is not: nothing half-way.
      const ids = (await (await fetch(`${limited.url}/instances`)).json()) as string[];
      expect(ids.length).to.be.at.most(1);
      for (const id of ids) expect((await fetch(`${limited.url}/instances/${id}/file`)).status).to.equal(200);
      expect((await post(limited, '/dicom-web/studies', multipart([makeInstance()]))).status).to.equal(200);
    } finally {
      await limited.close();
    }
  });

  it('records the origin as Orthanc does for its DICOMweb plugin, and an instance sent twice is a success', async () => {
    const file = makeInstance();
    expect((await post(s, '/dicom-web/studies', multipart([file]))).status).to.equal(200);
    const again = await post(s, '/dicom-web/studies', multipart([file]));
    expect(again.status).to.equal(200);
    expect(seq(again, '00081199')).to.have.length(1);
    const [id] = (await (await fetch(`${s.url}/instances`)).json()) as string[];
    expect(await (await fetch(`${s.url}/instances/${id!}/metadata/Origin`)).text()).to.equal('Plugins');
  });

  describe('bad input: the right status, nothing stored', () => {
    const one = () => multipart([makeInstance()]);

    it('a body that is not multipart/related is 415; a metadata + bulk data request is 415 too', async () => {
      expectOrthancError(await post(s, '/dicom-web/studies', makeInstance(), { 'Content-Type': 'application/dicom' }), 415);
      const json = await post(s, '/dicom-web/studies', one(), { 'Content-Type': `multipart/related; type="application/dicom+json"; boundary=${BOUNDARY}` });
      expectOrthancError(json, 415);
      expect((json.json as { Details: string }).Details).to.contain('not supported');
      expect(await instanceCount(s)).to.equal(0);
    });

    it('a Content-Type without a boundary, or a body without the boundary it names, is 400', async () => {
      expectOrthancError(await post(s, '/dicom-web/studies', one(), { 'Content-Type': 'multipart/related; type="application/dicom"' }), 400);
      const wrong = await post(s, '/dicom-web/studies', one(), {
        'Content-Type': 'multipart/related; type="application/dicom"; boundary=another-boundary',
      });
      expect(wrong.status).to.equal(400);
      expect(wrong.headers.get('warning')).to.contain('does not contain the boundary');
      expect(seq(wrong, '00081199')).to.have.length(0);
      expect(await instanceCount(s)).to.equal(0);
    });

    it('a body truncated inside its only part is 400; truncated inside the second, the first is stored (202)', async () => {
      const first = makeInstance();
      const second = makeInstance();
      const whole = multipart([first, second]);
      const cutInFirst = whole.subarray(0, 200);
      const a = await post(s, '/dicom-web/studies', cutInFirst);
      expect(a.status).to.equal(400);
      expect(a.headers.get('warning')).to.contain('ends inside part 1');
      expect(await instanceCount(s)).to.equal(0);

      // A large part (streamed into the store) cut in the middle: its pending file is removed too.
      const big = multipart([makeInstance({ pixelBytes: 3 << 20 })]);
      const c = await post(s, '/dicom-web/studies', big.subarray(0, 2 << 20));
      expect(c.status).to.equal(400);
      expect(await instanceCount(s)).to.equal(0);
      const files = readdirSync(join(s.dir, 'storage'), { recursive: true, withFileTypes: true });
      expect(files.filter((e) => e.isFile() && !e.name.startsWith('pacsnode-index')).map((e) => e.name)).to.deep.equal([]);

      const cutInSecond = whole.subarray(0, whole.length - closeDelimiter(BOUNDARY).length - 100);
      const b = await post(s, '/dicom-web/studies', cutInSecond);
      expect(b.status, b.text).to.equal(202);
      expect(seq(b, '00081199')).to.have.length(1);
      expect(seq(b, '00081198')).to.have.length(1);
      expect(seq(b, '00081198')[0]!['00081197']!.Value).to.deep.equal([0xc000]);
      expect(await instanceCount(s)).to.equal(1);
    });

    it('parts that are not DICOM, empty, or of another type fail alone with 0xC000 (409 when none is stored)', async () => {
      const a = await post(s, '/dicom-web/studies', multipart([Buffer.from('not a DICOM file at all'), Buffer.alloc(0)]));
      expect(a.status).to.equal(409);
      expect(seq(a, '00081198').map((f) => f['00081197']!.Value![0])).to.deep.equal([0xc000, 0xc000]);
      const b = await post(s, '/dicom-web/studies', multipart([makeInstance()], { type: 'application/json' }));
      expect(b.status).to.equal(409);
      expect(await instanceCount(s)).to.equal(0);
    });

    it('an invalid Study Instance UID in the URL is 400; an Accept STOW-RS cannot answer is 406; both before reading', async () => {
      expectOrthancError(await post(s, '/dicom-web/studies/1.2.abc', one()), 400);
      expectOrthancError(await post(s, '/dicom-web/studies/1..2', one()), 400);
      expectOrthancError(await post(s, '/dicom-web/studies', one(), { Accept: 'text/html' }), 406);
      expect(await instanceCount(s)).to.equal(0);
    });

    it('a message with no part at all is 400', async () => {
      const a = await post(s, '/dicom-web/studies', closeDelimiter(BOUNDARY));
      expect(a.status).to.equal(400);
      expect(a.headers.get('warning')).to.contain('no parts');
      expect(await instanceCount(s)).to.equal(0);
    });
  });
});
