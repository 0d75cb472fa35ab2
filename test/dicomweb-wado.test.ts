/**
 * WADO-RS retrieval over real HTTP: the pydicom test corpus stored with the npm package dicomweb-client (a real
 * DICOMweb client, over xhr2's XMLHttpRequest for Node) and read back byte for byte; study and series retrieval as
 * streamed multipart; transfer syntax conversion between the uncompressed syntaxes (checked with DCMTK's dcmdump
 * and the DICOM JSON model) and 406 for what would need a codec; the OHIF viewer's frame and bulk data requests of
 * shared/OHIF.md §3, with their exact Accept headers; bulk data Range requests; bad input.
 *
 * Reference frame bytes come from the Orthanc REST route `/instances/{id}/frames/{n}/raw`, which
 * test/rest-content.test.ts checks against DCMTK.
 */
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import * as dicomweb from 'dicomweb-client';
import { parseMediaType, readMultipart } from '../src/dicomweb/multipart.js';
import { valueRange } from '../src/dicom/frames.js';
import { datasetToDicomJson } from '../src/dicom/json.js';
import { readPart10 } from '../src/dicom/reader.js';
import { Tags } from '../src/dicom/tag.js';
import {
  DeflatedExplicitVRLittleEndian,
  ExplicitVRBigEndian,
  ExplicitVRLittleEndian,
  ImplicitVRLittleEndian,
} from '../src/dicom/transfer-syntax.js';
import { generateUid } from '../src/dicom/uids.js';
import { dicomParts, findInstances, planAll, sharedPartsInUse } from '../src/dicomweb/wado.js';
import { tempServer, type TestServer } from './helpers/context.js';
import { makeInstance } from './helpers/factory.js';
import { freePort, waitFor } from './helpers/interop.js';

const CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const OHIF_FRAMES_ACCEPT = 'multipart/related; type=application/octet-stream; transfer-syntax=*';
const OHIF_DEFAULT_FRAMES_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax="*"';

// dicomweb-client speaks XMLHttpRequest; xhr2 implements it over node:http.
(globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest ??= createRequire(import.meta.url)('xhr2');

/** The part of dicomweb-client's API used here (its bundled types mark every option as required). */
interface Client {
  storeInstances(o: { datasets: ArrayBuffer[]; studyInstanceUID?: string }): Promise<unknown>;
  retrieveStudy(o: { studyInstanceUID: string }): Promise<ArrayBuffer[]>;
  retrieveSeries(o: { studyInstanceUID: string; seriesInstanceUID: string }): Promise<ArrayBuffer[]>;
  retrieveInstance(o: { studyInstanceUID: string; seriesInstanceUID: string; sopInstanceUID: string }): Promise<ArrayBuffer>;
  retrieveInstanceFrames(o: {
    studyInstanceUID: string;
    seriesInstanceUID: string;
    sopInstanceUID: string;
    frameNumbers: string;
    mediaTypes?: { mediaType: string; transferSyntaxUID?: string }[];
  }): Promise<Uint8Array[]>;
  retrieveBulkData(o: { BulkDataURI: string; byteRange?: number[] }): Promise<ArrayBuffer[]>;
}

function client(s: TestServer): Client {
  const options = { url: `${s.url}/dicom-web`, verbose: false };
  return new dicomweb.api.DICOMwebClient(options as unknown as ConstructorParameters<typeof dicomweb.api.DICOMwebClient>[0]) as unknown as Client;
}

const arrayBuffer = (b: Buffer): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.length) as ArrayBuffer;

interface Part {
  headers: Map<string, string>;
  body: Buffer;
}

interface Answer {
  status: number;
  type: string;
  headers: Headers;
  body: Buffer;
}

async function get(url: string, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(url, { headers });
  return { status: res.status, type: res.headers.get('content-type') ?? '', headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** The parts of a multipart/related answer, read with the boundary of its Content-Type. */
async function parts(a: Answer): Promise<Part[]> {
  const mt = parseMediaType(a.type);
  expect(mt.type, a.body.toString().slice(0, 300)).to.equal('multipart/related');
  const out: Part[] = [];
  async function* source() {
    yield a.body;
  }
  for await (const part of readMultipart(source(), mt.params.get('boundary')!)) {
    const chunks: Buffer[] = [];
    for await (const c of part.body) chunks.push(c);
    out.push({ headers: part.headers, body: Buffer.concat(chunks) });
  }
  return out;
}

interface StoredFile {
  name: string;
  bytes: Buffer;
  study: string;
  series: string;
  sop: string;
  transferSyntax: string;
}

/** The Orthanc ID of an instance, by SOP Instance UID. */
async function orthancId(s: TestServer, sop: string): Promise<string> {
  const found = (await (await fetch(`${s.url}/tools/lookup`, { method: 'POST', body: sop })).json()) as { ID: string }[];
  return found[0]!.ID;
}

async function rawFrame(s: TestServer, sop: string, frame: number): Promise<Buffer> {
  const a = await get(`${s.url}/instances/${await orthancId(s, sop)}/frames/${frame}/raw`);
  expect(a.status).to.equal(200);
  return a.body;
}

/** dcmdump reads a file without an error, and says which transfer syntax it is in. */
function dcmdumpCheck(file: Buffer): string {
  const dir = mkdtempSync(join(tmpdir(), 'he2-dcmdump-'));
  try {
    writeFileSync(join(dir, 'f.dcm'), file);
    const r = spawnSync('dcmdump', ['-M', join(dir, 'f.dcm')], { encoding: 'latin1' });
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stderr).to.not.match(/^E:/m);
    return r.stdout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const hasDcmdump = spawnSync('dcmdump', ['--version']).status === 0;

describe('DICOMweb WADO-RS', function () {
  this.timeout(120000);
  let s: TestServer;
  let dw: Client;
  /** Every corpus file the ingestion path accepts, by name; files sharing a SOP Instance UID are swapped by `use`. */
  const corpus = new Map<string, StoredFile>();
  /** Which file is stored now for each SOP Instance UID. */
  const current = new Map<string, string>();
  const stow = async (bytes: Buffer): Promise<StoredFile | undefined> => {
    let answer: Record<string, { Value?: Record<string, { Value?: string[] }>[] }>;
    try {
      answer = JSON.parse(Buffer.from((await dw.storeInstances({ datasets: [arrayBuffer(bytes)] })) as ArrayBuffer).toString());
    } catch (e) {
      expect((e as { status: number }).status).to.equal(409); // refused by the ingestion path
      return undefined;
    }
    const [ref] = answer['00081199']!.Value!;
    const [, , , study, , series, , sop] = new URL(ref!['00081190']!.Value![0]!).pathname.split('/');
    return { name: '', bytes, study: study!, series: series!, sop: sop!, transferSyntax: readPart10(bytes).transferSyntaxUid };
  };
  /**
   * Deletes every instance with this SOP Instance UID: corpus files sharing one may differ in a patient or study
   * attribute (read as UN in one of them), which would make the WADO-RS URL name two instances.
   */
  const removeSop = async (sop: string): Promise<void> => {
    const found = (await (await fetch(`${s.url}/tools/lookup`, { method: 'POST', body: sop })).json()) as { ID: string; Type: string }[];
    for (const r of found.filter((x) => x.Type === 'Instance')) {
      expect((await fetch(`${s.url}/instances/${r.ID}`, { method: 'DELETE' })).status).to.equal(200);
    }
  };
  /** Makes `name` the stored file of its SOP Instance UID (deleting another corpus file that has the same UID). */
  const use = async (name: string): Promise<StoredFile> => {
    const f = corpus.get(name);
    expect(f, name).to.not.equal(undefined);
    if (current.get(f!.sop) !== name) {
      await removeSop(f!.sop);
      expect(await stow(f!.bytes)).to.not.equal(undefined);
      current.set(f!.sop, name);
    }
    return f!;
  };
  const instanceUrl = (f: StoredFile) => `${s.url}/dicom-web/studies/${f.study}/series/${f.series}/instances/${f.sop}`;

  before(async function () {
    if (!existsSync(CORPUS)) this.skip();
    s = await tempServer();
    dw = client(s);
    for (const name of readdirSync(CORPUS).filter((f) => f.endsWith('.dcm')).sort()) {
      const bytes = readFileSync(join(CORPUS, name));
      let sop: string | undefined;
      try {
        sop = readPart10(bytes).dataset.string(Tags.SOPInstanceUID);
      } catch {
        sop = undefined;
      }
      if (sop !== undefined && current.has(sop)) {
        await removeSop(sop);
        current.delete(sop); // `use` stores it again
      }
      const f = await stow(bytes);
      if (!f) continue;
      corpus.set(name, { ...f, name });
      current.set(f.sop, name);
    }
  });
  after(async () => {
    await s?.close();
  });

  it('gives back every instance of the corpus byte for byte (dicomweb-client retrieveInstance)', async () => {
    expect(corpus.size).to.be.greaterThan(50);
    for (const name of corpus.keys()) {
      const f = await use(name);
      const got = Buffer.from(await dw.retrieveInstance({ studyInstanceUID: f.study, seriesInstanceUID: f.series, sopInstanceUID: f.sop }));
      const hasPart10Header = f.bytes.length > 132 && f.bytes.toString('latin1', 128, 132) === 'DICM';
      // A file received without its meta header is stored with one (as Orthanc): compare with the REST door's file.
      const expected = hasPart10Header ? f.bytes : Buffer.from(await (await fetch(`${s.url}/instances/${await orthancId(s, f.sop)}/file`)).arrayBuffer());
      expect(got.equals(expected), f.name).to.equal(true);
    }
  });

  it('streams a study as one application/dicom part per instance, each with its transfer syntax and length', async () => {
    const study = generateUid();
    const series = [generateUid(), generateUid()];
    const files = [0, 1, 2, 3, 4].map((i) => makeInstance({ studyInstanceUid: study, seriesInstanceUid: series[i % 2], instanceNumber: i, pixelBytes: 200000 }));
    await dw.storeInstances({ datasets: files.map(arrayBuffer) });
    const a = await get(`${s.url}/dicom-web/studies/${study}`, { Accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' });
    expect(a.status).to.equal(200);
    expect(parseMediaType(a.type).params.get('type')).to.equal('application/dicom');
    expect(a.headers.get('content-length')).to.equal(null); // streamed
    const got = await parts(a);
    expect(got).to.have.length(5);
    for (const p of got) {
      expect(p.headers.get('content-type')).to.equal(`application/dicom; transfer-syntax=${ExplicitVRLittleEndian}`);
      expect(Number(p.headers.get('content-length'))).to.equal(p.body.length);
      expect(files.some((f) => f.equals(p.body))).to.equal(true);
    }
    const [one] = await dw.retrieveSeries({ studyInstanceUID: study, seriesInstanceUID: series[1]! }).then((l) => [l.length]);
    expect(one).to.equal(2);
    const all = await dw.retrieveStudy({ studyInstanceUID: study });
    expect(all.map((b) => files.findIndex((f) => f.equals(Buffer.from(b)))).sort()).to.deep.equal([0, 1, 2, 3, 4]);
  });

  it('sends a file larger than 4 MB in chunks between whole-read parts, the same piped to HTTP or read as a stream', async () => {
    const study = generateUid();
    const sizes = [150000, 9 << 20, 70000, 300000];
    const files = sizes.map((n, i) => makeInstance({ studyInstanceUid: study, seriesInstanceUid: `${study}.1`, instanceNumber: i, pixelBytes: n }));
    for (const f of files) await dw.storeInstances({ datasets: [arrayBuffer(f)] });
    // Over HTTP (the stream is piped into the response, buffers reused between parts): every part, in order.
    const a = await get(`${s.url}/dicom-web/studies/${study}`);
    expect(a.status).to.equal(200);
    const got = await parts(a);
    expect(got.map((p) => files.findIndex((f) => f.equals(p.body)))).to.deep.equal([0, 1, 2, 3]);
    // Read as a stream (a new buffer per part): the same bytes, with the same boundary.
    const boundary = parseMediaType(a.type).params.get('boundary')!;
    const instances = findInstances(s.ctx.store, { study });
    const chunks: Buffer[] = [];
    for await (const c of dicomParts(s.ctx.store, instances, planAll(instances, ['*']), boundary)) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(a.body)).to.equal(true);
    // Piped into something else than a response (which may hold chunks after its callback): no buffer is reused.
    const piped: Buffer[] = [];
    const through = dicomParts(s.ctx.store, instances, planAll(instances, ['*']), boundary).pipe(new PassThrough());
    for await (const c of through) piped.push(c as Buffer);
    expect(Buffer.concat(piped).equals(a.body)).to.equal(true);
  });

  it('a client that leaves in the middle of a study costs nothing: no error escapes, the next request is served', async () => {
    const study = generateUid();
    const files = Array.from({ length: 12 }, (_, i) => makeInstance({ studyInstanceUid: study, instanceNumber: i, pixelBytes: 400000 }));
    await dw.storeInstances({ datasets: files.map(arrayBuffer) });
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        const controller = new AbortController();
        const res = await fetch(`${s.url}/dicom-web/studies/${study}`, { signal: controller.signal });
        const reader = res.body!.getReader();
        await reader.read(); // the first bytes, then the client goes away
        controller.abort();
        await reader.read().catch(() => undefined);
      }
      const whole = await parts(await get(`${s.url}/dicom-web/studies/${study}`));
      expect(whole).to.have.length(12);
      await new Promise((r) => setTimeout(r, 50)); // let the server's aborted reads settle
      // The shared blocks the parts are cut from are reused only once every part of them is sent: concurrent
      // retrievals after the clients that left get every file intact, in order.
      for (let round = 0; round < 2; round++) {
        const answers = await Promise.all([0, 1, 2, 3].map(() => get(`${s.url}/dicom-web/studies/${study}`)));
        for (const a of answers) {
          const got = await parts(a);
          expect(got.map((p) => files.findIndex((f) => f.equals(p.body)))).to.deep.equal([...files.keys()]);
        }
      }
      // Every part cut from the shared blocks went back, those of the clients that left too.
      await new Promise((r) => setTimeout(r, 50));
      expect(sharedPartsInUse()).to.equal(0);
      expect(unhandled).to.deep.equal([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  describe('transfer syntax negotiation', () => {
    const accept = (ts: string) => ({ Accept: `multipart/related; type="application/dicom"; transfer-syntax=${ts}` });

    for (const [name, target] of [
      ['MR_small.dcm', ImplicitVRLittleEndian],
      ['MR_small.dcm', ExplicitVRBigEndian],
      ['MR_small.dcm', DeflatedExplicitVRLittleEndian],
      ['MR_small_bigendian.dcm', ExplicitVRLittleEndian],
      ['MR_small_implicit.dcm', ExplicitVRLittleEndian],
      ['rtplan.dcm', ExplicitVRLittleEndian],
      ['rtplan.dcm', ExplicitVRBigEndian],
    ] as const) {
      it(`converts ${name} to ${target}: DCMTK reads it, every attribute is the same`, async function () {
        const f = await use(name);
        const a = await get(instanceUrl(f), accept(target));
        expect(a.status, a.body.toString().slice(0, 300)).to.equal(200);
        const [p] = await parts(a);
        expect(p!.headers.get('content-type')).to.equal(`application/dicom; transfer-syntax=${target}`);
        const converted = readPart10(p!.body);
        expect(converted.transferSyntaxUid).to.equal(target);
        expect(converted.truncated).to.equal(false);
        const original = readPart10(f.bytes);
        // Pixel data compared in little endian order (the JSON model gives a big endian dataset's bytes as found).
        const json = (ds: typeof original.dataset) =>
          datasetToDicomJson(ds, { bulkDataThreshold: Number.MAX_SAFE_INTEGER, omit: (tag) => tag === Tags.PixelData });
        const pixels = (ds: typeof original.dataset) => {
          const el = ds.get(Tags.PixelData);
          return el ? valueRange(ds, el, 0, el.length) : undefined;
        };
        expect(json(converted.dataset)).to.deep.equal(json(original.dataset));
        expect(pixels(converted.dataset)).to.deep.equal(pixels(original.dataset));
        expect(converted.meta.string(Tags.MediaStorageSOPInstanceUID)).to.equal(original.meta.string(Tags.MediaStorageSOPInstanceUID));
        if (hasDcmdump) expect(dcmdumpCheck(p!.body)).to.contain(`(0002,0010) UI =`);
      });
    }

    it('leaves out the dataset group lengths a conversion would make wrong (ExplVR_BigEnd has (7FE0,0000))', async () => {
      const f = await use('ExplVR_BigEnd.dcm');
      expect([...readPart10(f.bytes).dataset.elements.keys()].some((tag) => tag === 0x7fe00000)).to.equal(true);
      const a = await get(instanceUrl(f), accept(ImplicitVRLittleEndian));
      expect(a.status).to.equal(200);
      const [p] = await parts(a);
      const converted = readPart10(p!.body);
      expect(converted.transferSyntaxUid).to.equal(ImplicitVRLittleEndian);
      expect([...converted.dataset.elements.keys()].filter((tag) => (tag & 0xffff) === 0)).to.deep.equal([]);
      if (hasDcmdump) expect(dcmdumpCheck(p!.body)).to.contain('(0002,0010) UI =');
    });

    it('plans each instance of a study: converted when it must be, as stored when it already is', async () => {
      const study = generateUid();
      const implicit = makeInstance({ studyInstanceUid: study, transferSyntaxUid: ImplicitVRLittleEndian });
      const explicit = makeInstance({ studyInstanceUid: study });
      await dw.storeInstances({ datasets: [arrayBuffer(implicit), arrayBuffer(explicit)] });
      const got = await parts(await get(`${s.url}/dicom-web/studies/${study}`, accept(ExplicitVRLittleEndian)));
      expect(got.map((p) => p.headers.get('content-type'))).to.deep.equal([
        `application/dicom; transfer-syntax=${ExplicitVRLittleEndian}`,
        `application/dicom; transfer-syntax=${ExplicitVRLittleEndian}`,
      ]);
      expect(got.some((p) => p.body.equals(explicit))).to.equal(true);
      const converted = got.find((p) => !p.body.equals(explicit))!;
      expect(readPart10(converted.body).dataset.string(Tags.SOPInstanceUID)).to.equal(readPart10(implicit).dataset.string(Tags.SOPInstanceUID));
      expect(Number(converted.headers.get('content-length'))).to.equal(converted.body.length);
    });

    it('sends as stored for transfer-syntax=*, for no parameter, and when the stored syntax is asked', async () => {
      const f = (await use('JPEG2000.dcm'));
      for (const headers of [accept('*'), { Accept: 'multipart/related; type="application/dicom"' }, accept(f.transferSyntax), {}]) {
        const [p] = await parts(await get(instanceUrl(f), headers));
        expect(p!.body.equals(f.bytes)).to.equal(true);
        expect(p!.headers.get('content-type')).to.equal(`application/dicom; transfer-syntax=${f.transferSyntax}`);
      }
    });

    it('answers 406 saying why for a compressed instance asked uncompressed, unless another range can be served', async () => {
      const f = (await use('JPEG-lossy.dcm'));
      const a = await get(instanceUrl(f), accept(ExplicitVRLittleEndian));
      expect(a.status).to.equal(406);
      const error = JSON.parse(a.body.toString()) as { Details: string; HttpStatus: number };
      expect(error.HttpStatus).to.equal(406);
      expect(error.Details).to.contain('cannot compress or decompress');
      // The study holds it: the whole study is refused before anything is sent.
      expect((await get(`${s.url}/dicom-web/studies/${f.study}`, accept(ImplicitVRLittleEndian))).status).to.equal(406);
      // An uncompressed instance cannot be compressed either.
      expect((await get(instanceUrl((await use('MR_small.dcm'))), accept('1.2.840.10008.1.2.4.50'))).status).to.equal(406);
      const second = await get(instanceUrl(f), {
        Accept: `multipart/related; type="application/dicom"; transfer-syntax=${ExplicitVRLittleEndian}, multipart/related; type="application/dicom"; transfer-syntax=*; q=0.5`,
      });
      expect(second.status).to.equal(200);
      expect((await parts(second))[0]!.body.equals(f.bytes)).to.equal(true);
      expect((await get(instanceUrl(f), { Accept: 'application/dicom+json' })).status).to.equal(406);
    });
  });

  describe('frames (the OHIF requests of shared/OHIF.md §3)', () => {
    const framesUrl = (f: StoredFile, list: string) => `${instanceUrl(f)}/frames/${list}`;

    for (const [name, type, ts] of [
      ['MR_small.dcm', 'application/octet-stream', ExplicitVRLittleEndian],
      ['MR_small_bigendian.dcm', 'application/octet-stream', ExplicitVRLittleEndian],
      ['JPEG-lossy.dcm', 'image/jpeg', '1.2.840.10008.1.2.4.51'],
      ['SC_rgb_jpeg_dcmtk.dcm', 'image/jpeg', '1.2.840.10008.1.2.4.50'],
      ['JPEG2000.dcm', 'image/jp2', '1.2.840.10008.1.2.4.91'],
      ['MR_small_jp2klossless.dcm', 'image/jp2', '1.2.840.10008.1.2.4.90'],
      ['MR_small_RLE.dcm', 'image/dicom-rle', '1.2.840.10008.1.2.5'],
      ['MR_small_jpeg_ls_lossless.dcm', 'image/jls', '1.2.840.10008.1.2.4.80'],
    ] as const) {
      it(`frames/1 of ${name}: one ${type} part in the stored syntax, with both OHIF Accept headers`, async () => {
        const f = await use(name);
        const expected = await rawFrame(s, f.sop, 0);
        for (const acceptHeader of [OHIF_FRAMES_ACCEPT, OHIF_DEFAULT_FRAMES_ACCEPT]) {
          const a = await get(framesUrl(f, '1'), { Accept: acceptHeader });
          expect(a.status, a.body.toString().slice(0, 300)).to.equal(200);
          expect(parseMediaType(a.type).params.get('type')).to.equal(type);
          const [p, ...rest] = await parts(a);
          expect(rest).to.have.length(0);
          expect(p!.headers.get('content-type')).to.equal(`${type}; transfer-syntax=${ts}`);
          expect(p!.headers.get('content-location')).to.equal(`${framesUrl(f, '1')}`);
          expect(p!.body.equals(expected)).to.equal(true);
        }
      });
    }

    it('frames/2,1 of a two-frame image: two parts in the order asked; frames/1,1 repeats', async () => {
      const f = (await use('SC_rgb_rle_2frame.dcm'));
      const [first, second] = [await rawFrame(s, f.sop, 0), await rawFrame(s, f.sop, 1)];
      expect(first!.equals(second!)).to.equal(false);
      const got = await parts(await get(framesUrl(f, '2,1'), { Accept: OHIF_FRAMES_ACCEPT }));
      expect(got.map((p) => p.body)).to.deep.equal([second, first]);
      expect(got.map((p) => p.headers.get('content-location'))).to.deep.equal([framesUrl(f, '2'), framesUrl(f, '1')]);
      expect(await parts(await get(framesUrl(f, '1,1'), { Accept: OHIF_FRAMES_ACCEPT }))).to.have.length(2);
    });

    it('dicomweb-client retrieveInstanceFrames: its default Accept for native frames, image/jpeg for JPEG', async () => {
      const native = (await use('MR_small.dcm'));
      const ids = (f: StoredFile) => ({ studyInstanceUID: f.study, seriesInstanceUID: f.series, sopInstanceUID: f.sop, frameNumbers: '1' });
      const [frame] = await dw.retrieveInstanceFrames(ids(native));
      expect(Buffer.from(frame!).equals(await rawFrame(s, native.sop, 0))).to.equal(true);
      const jpeg = (await use('SC_rgb_jpeg_dcmtk.dcm'));
      const [compressed] = await dw.retrieveInstanceFrames({ ...ids(jpeg), mediaTypes: [{ mediaType: 'image/jpeg' }] });
      expect(Buffer.from(compressed!).equals(await rawFrame(s, jpeg.sop, 0))).to.equal(true);
      // Asked for uncompressed frames (its default Accept), a JPEG image is 406: decompression is not available.
      const refused = await dw.retrieveInstanceFrames(ids(jpeg)).then(
        () => 0,
        (e: { status: number }) => e.status,
      );
      expect(refused).to.equal(406);
    });

    it('bad frame lists are 400; a frame past the last is 400; an unknown instance is 404', async () => {
      const f = (await use('MR_small.dcm'));
      for (const list of ['0', 'x', '1,,2', '-1', '1.5']) {
        expect((await get(framesUrl(f, list), { Accept: OHIF_FRAMES_ACCEPT })).status, list).to.equal(400);
      }
      expect((await get(framesUrl(f, '2'), { Accept: OHIF_FRAMES_ACCEPT })).status).to.equal(400);
      expect((await get(`${s.url}/dicom-web/studies/${f.study}/series/${f.series}/instances/1.2.3/frames/1`)).status).to.equal(404);
      expect((await get(framesUrl(f, '1'), { Accept: 'multipart/related; type="image/jpeg"' })).status).to.equal(406);
    });
  });

  describe('bulk data', () => {
    it('the BulkDataURI of the series metadata gives the pixel data to OHIF (Accept */*)', async () => {
      const f = (await use('MR_small.dcm'));
      const meta = await get(`${s.url}/dicom-web/studies/${f.study}/series/${f.series}/metadata`, { Accept: 'application/dicom+json' });
      expect(meta.status).to.equal(200);
      const [instance] = (JSON.parse(meta.body.toString()) as Record<string, { BulkDataURI?: string }>[]).filter((i) => JSON.stringify(i).includes(f.sop));
      const uri = instance!['7FE00010']!.BulkDataURI!;
      expect(uri).to.equal(`${instanceUrl(f)}/bulk/7fe00010`);
      const a = await get(uri, { Accept: '*/*' });
      expect(a.status).to.equal(200);
      expect(a.type).to.equal('application/octet-stream');
      expect(a.headers.get('accept-ranges')).to.equal('bytes');
      expect(a.body.equals(await rawFrame(s, f.sop, 0))).to.equal(true);
    });

    it('pixel data of any stored syntax: little endian bytes (big endian swapped), fragments when encapsulated', async () => {
      for (const name of ['MR_small_implicit.dcm', 'MR_small_bigendian.dcm', 'MR_small_RLE.dcm', 'liver_1frame.dcm']) {
        const f = await use(name);
        const a = await get(`${instanceUrl(f)}/bulk/7fe00010`);
        expect(a.status, name).to.equal(200);
        expect(a.body.equals(await rawFrame(s, f.sop, 0)), name).to.equal(true);
      }
      // A value read from the file in several chunks, with a range across chunk boundaries.
      const sop = generateUid();
      const study = generateUid();
      const series = generateUid();
      const big = makeInstance({ sopInstanceUid: sop, studyInstanceUid: study, seriesInstanceUid: series, pixelBytes: 600000 });
      await dw.storeInstances({ datasets: [arrayBuffer(big)] });
      const pixels = readPart10(big).dataset.raw(Tags.PixelData)!;
      const uri = `${s.url}/dicom-web/studies/${study}/series/${series}/instances/${sop}/bulk/7fe00010`;
      expect((await get(uri)).body.equals(pixels)).to.equal(true);
      const ranged = await get(uri, { Range: 'bytes=65000-300000' });
      expect(ranged.status).to.equal(206);
      expect(ranged.body.equals(pixels.subarray(65000, 300001))).to.equal(true);
    });

    it('an encapsulated PDF and a value inside a sequence item, as OHIF and dicomweb-client fetch them', async () => {
      const pdf = Buffer.from('%PDF-1.4\n% a tiny document\n%%EOF\n\n'); // even length: no padding
      const nested = Buffer.from([1, 2, 3, 4, 5, 6]);
      const sop = generateUid();
      const study = generateUid();
      const series = generateUid();
      const instance = makeInstance({
        sopInstanceUid: sop,
        studyInstanceUid: study,
        seriesInstanceUid: series,
        extra: [
          { tag: 0x00420011, vr: 'OB', value: pdf },
          { tag: 0x00420012, vr: 'LO', value: 'application/pdf' },
          { tag: 0x0040a730, vr: 'SQ', value: [[{ tag: 0x00420011, vr: 'OB', value: nested }]] },
        ],
      });
      await dw.storeInstances({ datasets: [arrayBuffer(instance)] });
      const base = `${s.url}/dicom-web/studies/${study}/series/${series}/instances/${sop}`;
      const a = await get(`${base}/bulk/00420011`, { Accept: '*/*' });
      expect(a.body.toString()).to.equal(pdf.toString());
      const [viaClient] = await dw.retrieveBulkData({ BulkDataURI: `${base}/bulk/00420011` });
      expect(Buffer.from(viaClient!).equals(pdf)).to.equal(true);
      const inItem = await get(`${base}/bulk/0040a730/1/00420011`);
      expect(inItem.body.equals(nested)).to.equal(true);
      expect((await get(`${base}/bulk/0040a730/2/00420011`)).status).to.equal(404);
      expect((await get(`${base}/bulk/0040a730`)).status).to.equal(400);
      expect((await get(`${base}/bulk/00431234`)).status).to.equal(404);
      expect((await get(`${base}/bulk/zz`)).status).to.equal(400);
      expect((await get(`${base}/bulk/00420011`, { Accept: 'image/png' })).status).to.equal(406);
    });

    it('Range requests: 206 with Content-Range, suffix and open ranges, 416 past the end, multipart parts too', async () => {
      const f = (await use('MR_small.dcm'));
      const uri = `${instanceUrl(f)}/bulk/7fe00010`;
      const whole = await rawFrame(s, f.sop, 0);
      const total = whole.length;
      const first = await get(uri, { Range: 'bytes=0-99' });
      expect(first.status).to.equal(206);
      expect(first.headers.get('content-range')).to.equal(`bytes 0-99/${total}`);
      expect(first.body.equals(whole.subarray(0, 100))).to.equal(true);
      const open = await get(uri, { Range: `bytes=${total - 50}-` });
      expect(open.body.equals(whole.subarray(total - 50))).to.equal(true);
      const suffix = await get(uri, { Range: 'bytes=-10' });
      expect(suffix.headers.get('content-range')).to.equal(`bytes ${total - 10}-${total - 1}/${total}`);
      expect(suffix.body.equals(whole.subarray(total - 10))).to.equal(true);
      const past = await get(uri, { Range: `bytes=${total}-` });
      expect(past.status).to.equal(416);
      expect(past.headers.get('content-range')).to.equal(`bytes */${total}`);
      // Several ranges: the whole value (RFC 9110 lets a server ignore Range).
      const several = await get(uri, { Range: 'bytes=0-1,4-5' });
      expect(several.status).to.equal(200);
      expect(several.body.equals(whole)).to.equal(true);
      // dicomweb-client asks multipart with a Range: one part holding the range, with its Content-Range.
      const [ranged] = await dw.retrieveBulkData({ BulkDataURI: uri, byteRange: [10, 19] });
      expect(Buffer.from(ranged!).equals(whole.subarray(10, 20))).to.equal(true);
      const multi = await get(uri, { Accept: 'multipart/related; type="application/octet-stream"', Range: 'bytes=10-19' });
      expect(multi.status).to.equal(206);
      const [p] = await parts(multi);
      expect(p!.headers.get('content-range')).to.equal(`bytes 10-19/${total}`);
      expect(p!.body.equals(whole.subarray(10, 20))).to.equal(true);
      // An empty value (CT_small's AccessionNumber) has no range to satisfy, a suffix one included.
      const ct = await use('CT_small.dcm');
      const empty = await get(`${instanceUrl(ct)}/bulk/00080050`, { Range: 'bytes=-5' });
      expect(empty.status).to.equal(416);
      expect(empty.headers.get('content-range')).to.equal('bytes */0');
    });

    it('HEAD answers the headers of a study, an instance or a bulk value without a body', async () => {
      const f = await use('MR_small.dcm');
      for (const url of [`${s.url}/dicom-web/studies/${f.study}`, instanceUrl(f), `${instanceUrl(f)}/bulk/7fe00010`]) {
        const head = await fetch(url, { method: 'HEAD' });
        expect(head.status, url).to.equal(200);
        expect(head.headers.get('content-type'), url).to.match(/^(multipart\/related|application\/octet-stream)/);
        expect((await head.arrayBuffer()).byteLength).to.equal(0);
      }
      const head = await fetch(`${s.url}/dicom-web/studies/1.2.3.4.5.6.7.8.9`, { method: 'HEAD' });
      expect(head.status).to.equal(404);
    });
  });

  describe('bad requests', () => {
    it('unknown study, series or instance: 404; invalid UIDs: 400', async () => {
      const f = (await use('CT_small.dcm'));
      expect((await get(`${s.url}/dicom-web/studies/1.2.3.4.5`)).status).to.equal(404);
      expect((await get(`${s.url}/dicom-web/studies/${f.study}/series/1.2.3`)).status).to.equal(404);
      expect((await get(`${s.url}/dicom-web/studies/${f.study}/series/${f.series}/instances/1.2.3`)).status).to.equal(404);
      const invalid = await get(`${s.url}/dicom-web/studies/1.2.x`);
      expect(invalid.status).to.equal(400);
      expect((JSON.parse(invalid.body.toString()) as { Details: string }).Details).to.contain('invalid Study Instance UID');
      expect((await get(`${s.url}/dicom-web/studies/${f.study}/series/.1`)).status).to.equal(400);
    });
  });
});

const ORTHANC = '/usr/sbin/Orthanc';
const ORTHANC_DICOMWEB = '/usr/share/orthanc/plugins/libOrthancDicomWeb.so';
const withOrthanc = existsSync(ORTHANC) && existsSync(ORTHANC_DICOMWEB);

describe(
  withOrthanc ? "Orthanc's DICOMweb plugin as a client of pacsnode" : `Orthanc's DICOMweb plugin as a client (skipped: ${ORTHANC} or its plugin is missing)`,
  function () {
    this.timeout(90000);
    let s: TestServer;
    let orthanc: ChildProcess | undefined;
    let orthancUrl: string;
    let dir: string;
    let orthancLog = '';
    const study = generateUid();
    const files = [0, 1, 2].map((i) => makeInstance({ studyInstanceUid: study, seriesInstanceUid: `${study}.1`, instanceNumber: i, pixelBytes: 70000 }));

    before(async function () {
      if (!withOrthanc) this.skip();
      s = await tempServer();
      dir = mkdtempSync(join(tmpdir(), 'he2-orthanc-'));
      const port = await freePort();
      const config = {
        Name: 'pacsnode-dicomweb-peer',
        StorageDirectory: join(dir, 'storage'),
        IndexDirectory: join(dir, 'storage'),
        HttpPort: port,
        DicomPort: await freePort(),
        RemoteAccessAllowed: false,
        AuthenticationEnabled: false,
        Plugins: [ORTHANC_DICOMWEB],
        DicomWeb: { Enable: true, Root: '/dicom-web/', Servers: { pacsnode: [`${s.url}/dicom-web/`] } },
        SaveJobs: false,
        OrthancExplorerEnabled: false,
      };
      writeFileSync(join(dir, 'orthanc.json'), JSON.stringify(config));
      orthanc = spawn(ORTHANC, ['--verbose', join(dir, 'orthanc.json')], { stdio: ['ignore', 'pipe', 'pipe'] });
      orthanc.stdout!.on('data', (d: Buffer) => (orthancLog += d.toString()));
      orthanc.stderr!.on('data', (d: Buffer) => (orthancLog += d.toString()));
      orthancUrl = `http://127.0.0.1:${port}`;
      await waitFor(() => fetch(`${orthancUrl}/system`).then((r) => r.ok, () => false), 'Orthanc to start', 30000);
    });
    after(async () => {
      if (orthanc && orthanc.exitCode === null) {
        const exited = new Promise((r) => orthanc!.once('exit', r));
        orthanc.kill('SIGTERM');
        await exited;
      }
      await s?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const orthancPost = async (path: string, body: unknown) => {
      const res = await fetch(`${orthancUrl}${path}`, { method: 'POST', body: Buffer.isBuffer(body) ? body : JSON.stringify(body) });
      const text = await res.text();
      expect(res.status, `${path}: ${text}\n${orthancLog.split('\n').slice(-30).join('\n')}`).to.equal(200);
      return JSON.parse(text) as Record<string, unknown>;
    };

    it("Orthanc's STOW-RS client sends a study to pacsnode, its WADO-RS client gets it back: every file byte for byte", async () => {
      const ids: string[] = [];
      for (const f of files) ids.push((await orthancPost('/instances', f)).ParentStudy as string);
      await orthancPost('/dicom-web/servers/pacsnode/stow', { Resources: [ids[0]] });
      const got = await parts(await get(`${s.url}/dicom-web/studies/${study}`));
      expect(got).to.have.length(3);
      for (const f of files) expect(got.some((p) => p.body.equals(f))).to.equal(true);

      // Orthanc forgets the study, then retrieves it from pacsnode with WADO-RS.
      expect((await fetch(`${orthancUrl}/studies/${ids[0]!}`, { method: 'DELETE' })).status).to.equal(200);
      await orthancPost('/dicom-web/servers/pacsnode/retrieve', { Resources: [{ Study: study }] });
      const instances = (await (await fetch(`${orthancUrl}/instances`)).json()) as string[];
      expect(instances).to.have.length(3);
      for (const id of instances) {
        const file = Buffer.from(await (await fetch(`${orthancUrl}/instances/${id}/file`)).arrayBuffer());
        expect(files.some((f) => f.equals(file))).to.equal(true);
      }
    });
  },
);

describe('WADO-RS and the storage cache (MaximumStorageCacheSize)', function () {
  let s: TestServer | undefined;
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });

  /**
   * Stores one instance and retrieves it once, then removes its file from the disk behind the store's back: only a
   * cache can answer.
   */
  async function storeAndDropFile(overrides: Record<string, unknown>): Promise<{ url: string; bytes: Buffer }> {
    s = await tempServer(overrides);
    const [study, series, sop] = [generateUid(), generateUid(), generateUid()];
    const bytes = makeInstance({ studyInstanceUid: study, seriesInstanceUid: series, sopInstanceUid: sop });
    const ids = await s.ctx.store.store(bytes, { kind: 'rest' });
    const url = `${s.url}/dicom-web/studies/${study}/series/${series}/instances/${sop}`;
    const first = await get(url);
    expect(first.status).to.equal(200);
    expect((await parts(first))[0]!.body.equals(bytes)).to.equal(true);
    const att = s.ctx.index.attachment(s.ctx.index.findByPublicId(ids.ID)!.id, 1)!;
    rmSync(join(s.ctx.config.StorageDirectory, att.uuid.slice(0, 2), att.uuid.slice(2, 4), att.uuid));
    return { url, bytes };
  }

  it('sends an instance read once from memory (the cache is on by default, 128 MB), byte for byte', async () => {
    const { url, bytes } = await storeAndDropFile({});
    expect(s!.ctx.config.MaximumStorageCacheSize).to.equal(128);
    const a = await get(url);
    expect(a.status).to.equal(200);
    const got = await parts(a);
    expect(got).to.have.length(1);
    expect(got[0]!.body.equals(bytes)).to.equal(true);
  });

  it('reads the disk when MaximumStorageCacheSize is 0', async () => {
    const { url } = await storeAndDropFile({ MaximumStorageCacheSize: 0 });
    const a = await get(url);
    expect(a.status).to.not.equal(200);
    expect(a.body.toString()).to.match(/InexistentFile|missing/i);
  });
});
