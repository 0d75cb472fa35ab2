/**
 * The instance content routes (`/header`, `/content/{path}`, `/frames`, `/frames/{n}/raw[.gz]`, `/pdf`) over real
 * HTTP. Expected bytes come from DCMTK's dcmdump (`+W` writes each pixel item, or the whole native pixel data in
 * little endian, to a file), from the values the tests encode themselves, or from an independent bit-by-bit
 * computation; files are Debian python3-pydicom's test corpus and datasets built here.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterPixelData, parseContentTag } from '../src/dicom/content-path.js';
import { datasetToOrthancJson } from '../src/dicom/json.js';
import { readPart10 } from '../src/dicom/reader.js';
import { Tags } from '../src/dicom/tag.js';
import { ExplicitVRBigEndian, ExplicitVRLittleEndian } from '../src/dicom/transfer-syntax.js';
import { generateUid, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, SopClasses } from '../src/dicom/uids.js';
import { buildMetaHeader, encodeDataset, encodePart10, type WriteElement } from '../src/dicom/writer.js';
import { tempServer, type TestServer } from './helpers/context.js';
import { makeInstance } from './helpers/factory.js';

const CORPUS = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const corpus = (name: string) => readFileSync(join(CORPUS, name));

type Json = Record<string, unknown>;

interface Answer {
  status: number;
  body: Buffer;
  json: unknown;
  type: string;
  headers: Headers;
}

async function get(s: TestServer, path: string): Promise<Answer> {
  const res = await fetch(`${s.url}${path}`);
  const body = Buffer.from(await res.arrayBuffer());
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    json = undefined;
  }
  return { status: res.status, body, json, type: res.headers.get('content-type') ?? '', headers: res.headers };
}

/** Stores a file; several corpus files share a SOP Instance UID, so an instance already there is replaced. */
async function upload(s: TestServer, file: Buffer): Promise<string> {
  const post = async () => {
    const res = await fetch(`${s.url}/instances`, { method: 'POST', body: file });
    expect(res.status).to.equal(200);
    return (await res.json()) as Json;
  };
  let answer = await post();
  if (answer.Status === 'AlreadyStored') {
    expect((await fetch(`${s.url}/instances/${answer.ID as string}`, { method: 'DELETE' })).status).to.equal(200);
    answer = await post();
  }
  expect(answer.Status).to.equal('Success');
  return answer.ID as string;
}

function expectError(a: Answer, status: number, orthancStatus: number, uri: string): void {
  expect(a.status, a.body.toString()).to.equal(status);
  const e = a.json as Json;
  expect(e.HttpStatus).to.equal(status);
  expect(e.OrthancStatus).to.equal(orthancStatus);
  expect(e.Method).to.equal('GET');
  expect(e.Uri).to.equal(uri);
}

/** DCMTK's view of a file: `dcmdump +W` writes each pixel item (or the native pixel data, little endian) to a file. */
function dcmdumpPixelItems(file: Buffer): Buffer[] {
  const dir = mkdtempSync(join(tmpdir(), 'pacsnode-dcmdump-'));
  try {
    writeFileSync(join(dir, 'in.dcm'), file);
    const out = join(dir, 'out');
    spawnSync('mkdir', [out]);
    const r = spawnSync('dcmdump', ['+W', out, join(dir, 'in.dcm')], { encoding: 'latin1' });
    expect(r.status, r.stderr).to.equal(0);
    const names = readdirSync(out)
      .map((n) => ({ n, i: Number(/\.(\d+)\.raw$/.exec(n)?.[1]) }))
      .sort((a, b) => a.i - b.i);
    return names.map(({ n }) => readFileSync(join(out, n)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** dcmdump's text output (UIDs as numbers). */
function dcmdumpText(file: Buffer): string {
  const dir = mkdtempSync(join(tmpdir(), 'pacsnode-dcmdump-'));
  try {
    writeFileSync(join(dir, 'in.dcm'), file);
    const r = spawnSync('dcmdump', ['-Un', '+L', join(dir, 'in.dcm')], { encoding: 'latin1' });
    expect(r.status, r.stderr).to.equal(0);
    return r.stdout;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The top-level tags dcmdump lists for the dataset (not the meta header), as `gggg-eeee`. */
function dcmdumpTopLevelTags(file: Buffer): string[] {
  const text = dcmdumpText(file);
  const dataset = text.slice(text.indexOf('# Dicom-Data-Set'));
  return dataset
    .split('\n')
    .filter((l) => /^\([0-9a-f]{4},[0-9a-f]{4}\)/.test(l) && !l.startsWith('(fffe,'))
    .map((l) => l.slice(1, 10).replace(',', '-'));
}

// ---------------------------------------------------------------- datasets built here

const uids = () => ({ study: generateUid(), series: generateUid(), sop: generateUid() });

function identity(sopClassUid: string, ids = uids()): WriteElement[] {
  return [
    { tag: Tags.SOPClassUID, vr: 'UI', value: sopClassUid },
    { tag: Tags.SOPInstanceUID, vr: 'UI', value: ids.sop },
    { tag: Tags.PatientName, vr: 'PN', value: 'CONTENT^TEST' },
    { tag: Tags.PatientID, vr: 'LO', value: 'CONTENT1' },
    { tag: Tags.StudyInstanceUID, vr: 'UI', value: ids.study },
    { tag: Tags.SeriesInstanceUID, vr: 'UI', value: ids.series },
  ];
}

/** A Part 10 file whose pixel data is encapsulated: a Basic Offset Table item then the fragments (PS3.5 §A.4). */
function encapsulated(options: {
  frames: number;
  fragments: Buffer[];
  bot?: number[];
  eot?: number[];
  transferSyntaxUid?: string;
}): Buffer {
  const ids = uids();
  const elements: WriteElement[] = [
    ...identity(SopClasses.SecondaryCaptureImageStorage, ids),
    { tag: Tags.SamplesPerPixel, vr: 'US', value: [1] },
    { tag: Tags.PhotometricInterpretation, vr: 'CS', value: 'MONOCHROME2' },
    { tag: Tags.NumberOfFrames, vr: 'IS', value: String(options.frames) },
    { tag: Tags.Rows, vr: 'US', value: [8] },
    { tag: Tags.Columns, vr: 'US', value: [8] },
    { tag: Tags.BitsAllocated, vr: 'US', value: [8] },
    { tag: Tags.BitsStored, vr: 'US', value: [8] },
    { tag: Tags.PixelRepresentation, vr: 'US', value: [0] },
  ];
  if (options.eot) {
    const table = Buffer.alloc(options.eot.length * 8);
    options.eot.forEach((o, i) => table.writeBigUInt64LE(BigInt(o), i * 8));
    elements.push({ tag: 0x7fe00001, vr: 'OV', value: table });
    elements.push({ tag: 0x7fe00002, vr: 'OV', value: Buffer.alloc(options.eot.length * 8) });
  }
  const item = (value: Buffer) => {
    const h = Buffer.alloc(8);
    h.writeUInt16LE(0xfffe, 0);
    h.writeUInt16LE(0xe000, 2);
    h.writeUInt32LE(value.length, 4);
    return Buffer.concat([h, value]);
  };
  const bot = Buffer.alloc((options.bot ?? []).length * 4);
  (options.bot ?? []).forEach((o, i) => bot.writeUInt32LE(o, i * 4));
  const pixelHeader = Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x42, 0, 0, 0xff, 0xff, 0xff, 0xff]);
  const delimiter = Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
  return Buffer.concat([
    buildMetaHeader({
      sopClassUid: SopClasses.SecondaryCaptureImageStorage,
      sopInstanceUid: ids.sop,
      transferSyntaxUid: options.transferSyntaxUid ?? '1.2.840.10008.1.2.4.70',
    }),
    encodeDataset(elements, { explicitVr: true, littleEndian: true }),
    pixelHeader,
    item(bot),
    ...options.fragments.map(item),
    delimiter,
  ]);
}

/** Offsets of the first fragment of each frame, counted from the first fragment's item tag (8-byte headers). */
function offsetsOf(fragments: Buffer[], firstFragmentOfFrame: number[]): number[] {
  return firstFragmentOfFrame.map((first) => fragments.slice(0, first).reduce((n, f) => n + 8 + f.length, 0));
}

/** Distinct, even-length fragment contents. */
function fragment(n: number, length: number): Buffer {
  return Buffer.from(Array.from({ length }, (_, i) => (n * 37 + i * 11) & 0xff));
}

// ---------------------------------------------------------------- the tests

describe('REST: instance content (header, content, frames, pdf)', function () {
  let s: TestServer;
  before(async () => {
    s = await tempServer();
  });
  after(async () => {
    await s.close();
  });

  describe('GET /instances/{id}/content/{path}', () => {
    let id: string;
    let file: Buffer;
    const refSop = ['1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.5.1.4.1.1.4'];
    const refInstance = ['1.2.3.4.5.6.7', '1.2.3.4.5.6.78'];
    before(async () => {
      file = makeInstance({
        patientName: 'DOE^JOHNX',
        extra: [
          {
            tag: 0x00081140, // ReferencedImageSequence
            vr: 'SQ',
            value: [0, 1].map((i) => [
              { tag: Tags.ReferencedSOPClassUID, vr: 'UI', value: refSop[i]! },
              { tag: Tags.ReferencedSOPInstanceUID, vr: 'UI', value: refInstance[i]! },
              {
                tag: 0x0040a170, // PurposeOfReferenceCodeSequence
                vr: 'SQ',
                value: [[{ tag: 0x00080100, vr: 'SH', value: `CODE${i}` }]],
              },
            ]),
          },
          { tag: 0x00090010, vr: 'LO', value: 'ACME' },
          { tag: 0x00091001, vr: 'LO', value: 'PRIVATE' },
        ],
      });
      id = await upload(s, file);
    });

    it('lists the top-level tags as gggg-eeee, as DCMTK sees them', async () => {
      const a = await get(s, `/instances/${id}/content`);
      expect(a.status).to.equal(200);
      expect(a.type).to.match(/^application\/json/);
      expect(a.json).to.deep.equal(dcmdumpTopLevelTags(file));
      expect(a.json).to.include.members(['0008-1140', '0009-0010', '0009-1001', '7fe0-0010']);
      expect((await get(s, `/instances/${id}/content/`)).json).to.deep.equal(a.json);
    });

    it('gives a leaf value as stored, padding included, with any tag spelling', async () => {
      for (const tag of ['0010-0010', '0010,0010', '00100010', 'PatientName']) {
        const a = await get(s, `/instances/${id}/content/${tag}`);
        expect(a.status, tag).to.equal(200);
        expect(a.type).to.equal('application/octet-stream');
        // 9 characters, padded with a space to an even length (PS3.5 §7.1.1).
        expect(a.body.toString('latin1')).to.equal('DOE^JOHNX ');
      }
      const rows = await get(s, `/instances/${id}/content/0028-0010`);
      const expected = Buffer.alloc(2);
      expected.writeUInt16LE(readPart10(file).dataset.number(Tags.Rows)!);
      expect(rows.body).to.deep.equal(expected);
    });

    it('walks sequences: a sequence lists its items, an item its tags', async () => {
      expect((await get(s, `/instances/${id}/content/0008-1140`)).json).to.deep.equal(['0', '1']);
      expect((await get(s, `/instances/${id}/content/ReferencedImageSequence`)).json).to.deep.equal(['0', '1']);
      expect((await get(s, `/instances/${id}/content/0008-1140/1`)).json).to.deep.equal(['0008-1150', '0008-1155', '0040-a170']);
      for (const i of [0, 1]) {
        const uid = await get(s, `/instances/${id}/content/0008-1140/${i}/0008-1155`);
        const stored = refInstance[i]!.length % 2 === 1 ? `${refInstance[i]}\0` : refInstance[i];
        expect(uid.body.toString('latin1')).to.equal(stored);
        const code = await get(s, `/instances/${id}/content/0008-1140/${i}/0040-a170/0/0008-0100`);
        expect(code.body.toString('latin1')).to.equal(`CODE${i} `); // SH padded to an even length
      }
      const byKeyword = await get(s, `/instances/${id}/content/ReferencedImageSequence/0/ReferencedSOPClassUID`);
      expect(byKeyword.body.toString('latin1')).to.equal(`${refSop[0]}\0`);
      expect((await get(s, `/instances/${id}/content/0008-1140/0/0040-a170/0`)).json).to.deep.equal(['0008-0100']);
    });

    it('native pixel data is one block, the whole value', async () => {
      expect((await get(s, `/instances/${id}/content/7fe0-0010`)).json).to.deep.equal(['0']);
      const block = await get(s, `/instances/${id}/content/7fe0-0010/0`);
      expect(block.body).to.deep.equal(dcmdumpPixelItems(file)[0]);
      expectError(await get(s, `/instances/${id}/content/7fe0-0010/1`), 404, 7, `/instances/${id}/content/7fe0-0010/1`);
    });

    it('answers 404 with Orthanc\'s error JSON for paths that lead nowhere', async () => {
      const cases: [string, number][] = [
        ['0018-0050', 21], // absent tag
        ['0008-1140/2', 7], // no such item
        ['0008-1140/x', 7], // not an index
        ['0010-0020/0', 21], // not a sequence
        ['0008-1140/0/0010-0010', 21], // absent in the item
      ];
      for (const [path, status] of cases) {
        expectError(await get(s, `/instances/${id}/content/${path}`), 404, status, `/instances/${id}/content/${path}`);
      }
      // An unknown keyword is Orthanc's UnknownDicomTag (500, as Orthanc).
      expectError(await get(s, `/instances/${id}/content/NoSuchKeyword`), 500, 27, `/instances/${id}/content/NoSuchKeyword`);
      expectError(await get(s, '/instances/nope/content/0010-0010'), 404, 17, '/instances/nope/content/0010-0010');
    });

    it('gives binary numbers of a big endian dataset in little endian order (as DCMTK hands them over)', async () => {
      const be = makeInstance({ transferSyntaxUid: ExplicitVRBigEndian, extra: [{ tag: 0x00181151, vr: 'IS', value: '250' }] });
      const beId = await upload(s, be);
      const rows = await get(s, `/instances/${beId}/content/0028-0010`);
      const expected = Buffer.alloc(2);
      expected.writeUInt16LE(readPart10(be).dataset.number(Tags.Rows)!);
      expect(rows.body).to.deep.equal(expected);
      expect((await get(s, `/instances/${beId}/content/0018-1151`)).body.toString('latin1')).to.equal('250 ');
      // dcmdump +W writes OW pixel data swapped per 16-bit word, as DCMTK gives it to Orthanc.
      expect((await get(s, `/instances/${beId}/content/7fe0-0010/0`)).body).to.deep.equal(dcmdumpPixelItems(be)[0]);
    });

    it('walks a real file (pydicom rtplan.dcm) as DCMTK does', async () => {
      const plan = corpus('rtplan.dcm');
      const planId = await upload(s, plan);
      expect((await get(s, `/instances/${planId}/content`)).json).to.deep.equal(dcmdumpTopLevelTags(plan));
      const text = dcmdumpText(plan);
      // dcmdump: "(300a,00b0) SQ (Sequence with explicit length #=2)" gives the number of items.
      const count = Number(/\(300a,00b0\) SQ \(Sequence with [a-z ]+ #=(\d+)\)/.exec(text)![1]);
      const beams = (await get(s, `/instances/${planId}/content/300a-00b0`)).json as string[];
      expect(beams).to.deep.equal(Array.from({ length: count }, (_, i) => String(i)));
      const name = await get(s, `/instances/${planId}/content/300a-00b0/0/300a-00c2`);
      const dumped = /\(300a,00c2\) LO \[([^\]]*)\]\s+#\s+(\d+)/.exec(text)!;
      expect(name.body.length).to.equal(Number(dumped[2]));
      expect(name.body.toString('latin1').trimEnd()).to.equal(dumped[1]);
    });
  });

  describe('GET /instances/{id}/tags?whole', () => {
    it('shows the root tags after the pixel data only with ?whole (Orthanc 1.12.4+)', async () => {
      const file = makeInstance({ extra: [{ tag: 0x7fe10010, vr: 'LO', value: 'TRAILER' }, { tag: 0x7fe11001, vr: 'LO', value: 'after' }] });
      const id = await upload(s, file);
      for (const route of ['tags', 'simplified-tags', 'tags?simplify']) {
        const plain = (await (await fetch(`${s.url}/instances/${id}/${route}`)).json()) as Json;
        const whole = (await (await fetch(`${s.url}/instances/${id}/${route}${route.includes('?') ? '&' : '?'}whole`)).json()) as Json;
        expect(Object.keys(whole).length, route).to.equal(Object.keys(plain).length + 2);
        expect(JSON.stringify(plain), route).to.not.contain('after');
        expect(JSON.stringify(whole), route).to.contain('after');
      }
    });
  });

  describe('GET /instances/{id}/header', () => {
    it('answers the meta header in the /tags formats, without its binary elements', async () => {
      const file = corpus('MR_small.dcm');
      const id = await upload(s, file);
      const text = dcmdumpText(file);
      const meta = text.slice(text.indexOf('# Dicom-Meta-Information-Header'), text.indexOf('# Dicom-Data-Set'));
      const expected: Json = {};
      const names: Record<string, string> = {};
      for (const m of meta.matchAll(/^\((0002,[0-9a-f]{4})\) (\w\w) (?:\[([^\]]*)\]|(\S+))\s+#\s+\d+, \d+ (\w+)/gm)) {
        if (m[2] === 'OB') continue;
        expected[m[1]!] = { Name: m[5], Type: 'String', Value: m[3] ?? m[4] };
        names[m[5]!] = m[3] ?? m[4]!;
      }
      expect(Object.keys(expected)).to.include.members(['0002,0000', '0002,0002', '0002,0010', '0002,0016']);
      const full = await get(s, `/instances/${id}/header`);
      expect(full.status).to.equal(200);
      expect(full.type).to.match(/^application\/json/);
      expect(full.json).to.deep.equal(expected);
      expect(full.json).to.not.have.property('0002,0001');
      expect((await get(s, `/instances/${id}/header?simplify`)).json).to.deep.equal(names);
      const short = (await get(s, `/instances/${id}/header?short`)).json as Json;
      expect(short).to.deep.equal(Object.fromEntries(Object.entries(expected).map(([k, v]) => [k, (v as Json).Value])));
    });

    it('answers what pacsnode wrote in its own meta header', async () => {
      const ids = uids();
      const file = makeInstance({ sopInstanceUid: ids.sop, studyInstanceUid: ids.study, seriesInstanceUid: ids.series });
      const id = await upload(s, file);
      const header = (await get(s, `/instances/${id}/header?simplify`)).json as Json;
      expect(header).to.deep.equal({
        // The group length is the UL right after the 132-byte preamble and the element's 8-byte header.
        FileMetaInformationGroupLength: String(file.readUInt32LE(140)),
        MediaStorageSOPClassUID: SopClasses.CTImageStorage,
        MediaStorageSOPInstanceUID: ids.sop,
        TransferSyntaxUID: ExplicitVRLittleEndian,
        ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
        ImplementationVersionName: IMPLEMENTATION_VERSION_NAME,
      });
      expectError(await get(s, '/instances/nope/header'), 404, 17, '/instances/nope/header');
    });
  });

  describe('GET /instances/{id}/frames and /frames/{n}/raw', () => {
    async function expectFrames(file: Buffer, frames: Buffer[], mime: string): Promise<string> {
      const id = await upload(s, file);
      const list = await get(s, `/instances/${id}/frames`);
      expect(list.status).to.equal(200);
      expect(list.json).to.deep.equal(frames.map((_, i) => i));
      for (let i = 0; i < frames.length; i++) {
        const raw = await get(s, `/instances/${id}/frames/${i}/raw`);
        expect(raw.status, raw.body.toString()).to.equal(200);
        expect(raw.type).to.equal(mime);
        expect(raw.headers.get('content-length')).to.equal(String(frames[i]!.length));
        expect(raw.body.equals(frames[i]!), `frame ${i}`).to.equal(true);
      }
      const past = `/instances/${id}/frames/${frames.length}/raw`;
      expectError(await get(s, past), 400, 3, past);
      return id;
    }

    /** Native pixel data cut in equal frames. */
    const slices = (whole: Buffer, count: number, size: number) =>
      Array.from({ length: count }, (_, i) => whole.subarray(i * size, (i + 1) * size));

    it('slices native multi-frame pixel data (rtdose.dcm: 15 frames of 10x10 32-bit, implicit VR)', async () => {
      const file = corpus('rtdose.dcm');
      const id = await expectFrames(file, slices(dcmdumpPixelItems(file)[0]!, 15, 400), 'application/octet-stream');
      const gz = await get(s, `/instances/${id}/frames/3/raw.gz`);
      expect(gz.status).to.equal(200);
      expect(gz.type).to.equal('application/gzip');
      expect(gunzipSync(gz.body).equals(dcmdumpPixelItems(file)[0]!.subarray(1200, 1600))).to.equal(true);
      expectError(await get(s, `/instances/${id}/frames/x/raw`), 404, 17, `/instances/${id}/frames/x/raw`);
      expectError(await get(s, `/instances/${id}/frames/99/raw.gz`), 400, 3, `/instances/${id}/frames/99/raw.gz`);
    });

    it('gives big endian native frames as DCMTK does (OW swapped per 16-bit word)', async () => {
      await expectFrames(corpus('rtdose_expb.dcm'), slices(dcmdumpPixelItems(corpus('rtdose_expb.dcm'))[0]!, 15, 400), 'application/octet-stream');
      const mr = corpus('MR_small_bigendian.dcm');
      await expectFrames(mr, dcmdumpPixelItems(mr), 'application/octet-stream');
      // The same image stored little endian gives the same bytes.
      expect(dcmdumpPixelItems(mr)[0]!.equals(dcmdumpPixelItems(corpus('MR_small.dcm'))[0]!)).to.equal(true);
    });

    it('leaves out the pad byte of odd-sized native frames and reads deflated files', async () => {
      // 3x3 RGB 8-bit: 27 bytes of frame in a 28-byte value.
      const odd = corpus('SC_rgb_small_odd.dcm');
      await expectFrames(odd, [dcmdumpPixelItems(odd)[0]!.subarray(0, 27)], 'application/octet-stream');
      const deflated = corpus('image_dfl.dcm');
      await expectFrames(deflated, dcmdumpPixelItems(deflated), 'application/octet-stream');
    });

    it('sizes native YBR_FULL_422 frames with two samples per pixel (PS3.3 C.7.6.3.1.2)', async () => {
      const file = corpus('SC_ybr_full_422_uncompressed.dcm');
      const whole = dcmdumpPixelItems(file)[0]!;
      expect(whole.length).to.equal(100 * 100 * 2);
      await expectFrames(file, [whole], 'application/octet-stream');
    });

    it('gives 1-bit frames (a segmentation), realigned on a byte when a frame does not end on one', async () => {
      const liver = corpus('liver_1frame.dcm');
      await expectFrames(liver, [dcmdumpPixelItems(liver)[0]!.subarray(0, (512 * 512) / 8)], 'application/octet-stream');

      // 3 frames of 3x3 1-bit pixels: 27 bits, frames start at bits 0, 9 and 18.
      const packed = Buffer.from([0b10110101, 0b01101100, 0b11100011, 0b00000101]);
      const bits = Array.from({ length: 32 }, (_, i) => (packed[i >> 3]! >> (i & 7)) & 1);
      const frames = [0, 1, 2].map((f) => {
        const out = Buffer.alloc(2);
        for (let i = 0; i < 9; i++) out[i >> 3]! |= bits[f * 9 + i]! << (i & 7);
        return out;
      });
      const file = encodePart10(
        [
          ...identity(SopClasses.SecondaryCaptureImageStorage),
          { tag: Tags.SamplesPerPixel, vr: 'US', value: [1] },
          { tag: Tags.PhotometricInterpretation, vr: 'CS', value: 'MONOCHROME2' },
          { tag: Tags.NumberOfFrames, vr: 'IS', value: '3' },
          { tag: Tags.Rows, vr: 'US', value: [3] },
          { tag: Tags.Columns, vr: 'US', value: [3] },
          { tag: Tags.BitsAllocated, vr: 'US', value: [1] },
          { tag: Tags.BitsStored, vr: 'US', value: [1] },
          { tag: Tags.PixelData, vr: 'OB', value: packed },
        ],
        { sopClassUid: SopClasses.SecondaryCaptureImageStorage, sopInstanceUid: generateUid() },
      );
      await expectFrames(file, frames, 'application/octet-stream');
    });

    it('gives one fragment per frame when there are as many fragments as frames (RLE)', async () => {
      const rle = corpus('SC_rgb_rle_2frame.dcm');
      const items = dcmdumpPixelItems(rle);
      expect(items).to.have.length(3);
      const id = await expectFrames(rle, items.slice(1), 'application/octet-stream');
      // /content/7fe0-0010 lists the items, the Basic Offset Table first.
      expect((await get(s, `/instances/${id}/content/7fe0-0010`)).json).to.deep.equal(['0', '1', '2']);
      for (let i = 0; i < 3; i++) {
        expect((await get(s, `/instances/${id}/content/7fe0-0010/${i}`)).body.equals(items[i]!)).to.equal(true);
      }
      expectError(await get(s, `/instances/${id}/content/7fe0-0010/3`), 404, 7, `/instances/${id}/content/7fe0-0010/3`);
      const dose = corpus('rtdose_rle.dcm');
      await expectFrames(dose, dcmdumpPixelItems(dose).slice(1), 'application/octet-stream');
    });

    it('answers the Content-Type Orthanc gives JPEG baseline and JPEG 2000 frames', async () => {
      for (const [name, mime] of [
        ['SC_rgb_jpeg_dcmtk.dcm', 'image/jpeg'],
        ['JPEG2000.dcm', 'image/jp2'],
        ['GDCMJ2K_TextGBR.dcm', 'image/jp2'],
        ['JPGExtended.dcm', 'application/octet-stream'],
        ['MR_small_jpeg_ls_lossless.dcm', 'application/octet-stream'],
      ] as const) {
        const file = corpus(name);
        const items = dcmdumpPixelItems(file);
        expect(items, name).to.have.length(2);
        await expectFrames(file, [items[1]!], mime);
      }
    });

    it('groups fragments into frames with the Basic Offset Table', async () => {
      const fragments = [fragment(0, 10), fragment(1, 6), fragment(2, 20), fragment(3, 4), fragment(4, 8)];
      // Frame 0 = fragments 0-1, frame 1 = fragment 2, frame 2 = fragments 3-4.
      const file = encapsulated({ frames: 3, fragments, bot: offsetsOf(fragments, [0, 2, 3]) });
      const expected = [Buffer.concat(fragments.slice(0, 2)), fragments[2]!, Buffer.concat(fragments.slice(3))];
      // DCMTK sees the items written.
      expect(dcmdumpPixelItems(file).slice(1)).to.deep.equal(fragments);
      const id = await expectFrames(file, expected, 'application/octet-stream');
      const gz = await get(s, `/instances/${id}/frames/2/raw.gz`);
      expect(gunzipSync(gz.body).equals(expected[2]!)).to.equal(true);
    });

    it('uses the Extended Offset Table when the Basic Offset Table is empty', async () => {
      const fragments = [fragment(5, 12), fragment(6, 2), fragment(7, 30), fragment(8, 14)];
      const file = encapsulated({ frames: 2, fragments, eot: offsetsOf(fragments, [0, 3]) });
      await expectFrames(file, [Buffer.concat(fragments.slice(0, 3)), fragments[3]!], 'application/octet-stream');
    });

    it('makes one frame of every fragment for a single frame, and refuses what cannot be split', async () => {
      const fragments = [fragment(9, 16), fragment(10, 18), fragment(11, 2)];
      await expectFrames(encapsulated({ frames: 1, fragments }), [Buffer.concat(fragments)], 'application/octet-stream');

      // Two frames in three fragments, no offset table: Orthanc's BadFileFormat.
      const unsplittable = await upload(s, encapsulated({ frames: 2, fragments }));
      expectError(await get(s, `/instances/${unsplittable}/frames/0/raw`), 400, 15, `/instances/${unsplittable}/frames/0/raw`);
      // More frames than fragments.
      const short = await upload(s, encapsulated({ frames: 4, fragments }));
      expectError(await get(s, `/instances/${short}/frames/0/raw`), 400, 15, `/instances/${short}/frames/0/raw`);
      // An offset that is not the start of a fragment.
      const wrong = await upload(s, encapsulated({ frames: 2, fragments, bot: [0, 10] }));
      expectError(await get(s, `/instances/${wrong}/frames/1/raw`), 400, 15, `/instances/${wrong}/frames/1/raw`);
    });

    it('counts frames as Orthanc: none, zero, and a broken NumberOfFrames', async () => {
      const zero = await upload(s, makeInstance({ extra: [{ tag: Tags.NumberOfFrames, vr: 'IS', value: '0' }] }));
      expect((await get(s, `/instances/${zero}/frames`)).json).to.deep.equal([]);
      expectError(await get(s, `/instances/${zero}/frames/0/raw`), 400, 3, `/instances/${zero}/frames/0/raw`);
      const broken = await upload(s, makeInstance({ extra: [{ tag: Tags.NumberOfFrames, vr: 'IS', value: 'X' }] }));
      expectError(await get(s, `/instances/${broken}/frames`), 400, 15, `/instances/${broken}/frames`);
      // No NumberOfFrames: one frame (makeInstance writes none).
      const single = makeInstance();
      const singleId = await upload(s, single);
      expect((await get(s, `/instances/${singleId}/frames`)).json).to.deep.equal([0]);
      expect((await get(s, `/instances/${singleId}/frames/0/raw`)).body.equals(dcmdumpPixelItems(single)[0]!)).to.equal(true);
      expectError(await get(s, '/instances/nope/frames'), 404, 17, '/instances/nope/frames');
      expectError(await get(s, '/instances/nope/frames/0/raw'), 404, 17, '/instances/nope/frames/0/raw');
    });
  });

  describe('GET /instances/{id}/pdf', () => {
    function pdfInstance(pdf: Buffer, overrides: { sopClassUid?: string; mime?: string } = {}): Buffer {
      const sopClassUid = overrides.sopClassUid ?? SopClasses.EncapsulatedPDFStorage;
      const sop = generateUid();
      return encodePart10(
        [
          ...identity(sopClassUid, { study: generateUid(), series: generateUid(), sop }),
          { tag: Tags.Modality, vr: 'CS', value: 'DOC' },
          { tag: 0x00420012, vr: 'LO', value: overrides.mime ?? 'application/pdf' },
          { tag: 0x00420011, vr: 'OB', value: pdf },
        ],
        { sopClassUid, sopInstanceUid: sop },
      );
    }

    it('answers the embedded PDF without its pad byte, as application/pdf', async () => {
      // Odd length: stored with a NUL pad byte, which Orthanc drops (the last byte is neither CR nor LF).
      const odd = Buffer.from('%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF');
      expect(odd.length % 2).to.equal(1);
      const oddId = await upload(s, pdfInstance(odd));
      const a = await get(s, `/instances/${oddId}/pdf`);
      expect(a.status).to.equal(200);
      expect(a.type).to.equal('application/pdf');
      expect(a.body.equals(odd)).to.equal(true);
      // The raw element keeps the pad byte.
      expect((await get(s, `/instances/${oddId}/content/0042-0011`)).body.equals(Buffer.concat([odd, Buffer.from([0])]))).to.equal(true);

      // Even length ending with a line end: kept whole.
      const even = Buffer.from('%PDF-1.4\ntrailer << >>\n%%EOF\r\n');
      expect(even.length % 2).to.equal(0);
      expect((await get(s, `/instances/${await upload(s, pdfInstance(even))}/pdf`)).body.equals(even)).to.equal(true);
    });

    it('answers 404 for anything but an Encapsulated PDF, and a PDF has one frame without pixel data', async () => {
      const ct = await upload(s, makeInstance());
      expectError(await get(s, `/instances/${ct}/pdf`), 404, 21, `/instances/${ct}/pdf`);
      const notPdf = await upload(s, pdfInstance(Buffer.from('<xml/>\n'), { mime: 'text/xml' }));
      expectError(await get(s, `/instances/${notPdf}/pdf`), 404, 21, `/instances/${notPdf}/pdf`);
      const wrongClass = await upload(s, pdfInstance(Buffer.from('%PDF\n'), { sopClassUid: SopClasses.SecondaryCaptureImageStorage }));
      expectError(await get(s, `/instances/${wrongClass}/pdf`), 404, 21, `/instances/${wrongClass}/pdf`);
      expectError(await get(s, '/instances/nope/pdf'), 404, 17, '/instances/nope/pdf');

      const pdf = await upload(s, pdfInstance(Buffer.from('%PDF\n')));
      expect((await get(s, `/instances/${pdf}/frames`)).json).to.deep.equal([0]);
      expectError(await get(s, `/instances/${pdf}/frames/0/raw`), 400, 8, `/instances/${pdf}/frames/0/raw`);
    });
  });

  describe('helpers', () => {
    it('parses content-path tags in every spelling Orthanc accepts', () => {
      for (const text of ['0008-1140', '0008,1140', '00081140', 'ReferencedImageSequence']) {
        expect(parseContentTag(text), text).to.equal(0x00081140);
      }
      expect(() => parseContentTag('NotAKeyword')).to.throw('Unknown DICOM tag');
    });

    it('afterPixelData leaves out the root tags after the pixel data (Orthanc\'s /tags without ?whole)', () => {
      const file = makeInstance({ extra: [{ tag: 0x7fe10010, vr: 'LO', value: 'AFTER' }, { tag: 0x7fe11001, vr: 'LO', value: 'X' }] });
      const ds = readPart10(file).dataset;
      const whole = datasetToOrthancJson(ds, 'short');
      const stopped = datasetToOrthancJson(ds, 'short', { omit: afterPixelData });
      expect(whole).to.include({ '7fe1,0010': 'AFTER', '7fe1,1001': 'X' });
      expect(stopped).to.not.have.any.keys('7fe1,0010', '7fe1,1001');
      expect(stopped).to.have.property('7fe0,0010', null);
      expect(Object.keys(stopped)).to.have.length(Object.keys(whole).length - 2);
    });
  });
});
