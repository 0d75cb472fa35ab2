import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { archiveJobHooks, jobsTemporaryPath, MediaArchive, openJobsTemporaryDirectory } from '../src/app/archive-job.js';
import { cleanZipName, createArchive, instanceFileName, planArchive, runningArchives, writeArchive, type ArchiveProgress } from '../src/app/archive.js';
import { walkZip } from '../src/core/zip.js';
import { readPart10 } from '../src/dicom/reader.js';
import { Tags } from '../src/dicom/tag.js';
import { ImplicitVRLittleEndian } from '../src/dicom/transfer-syntax.js';
import { tempServer, type TestServer } from './helpers/context.js';
import { startServer, type RunningServer } from './helpers/process.js';
import { makeInstance, type InstanceSpec } from './helpers/factory.js';

type Json = Record<string, unknown>;

interface Download {
  status: number;
  headers: Headers;
  bytes: Buffer;
  json?: Json;
}

async function call(s: TestServer, method: string, path: string, body?: string): Promise<Download> {
  const res = await fetch(`${s.url}${path}`, { method, body });
  const bytes = Buffer.from(await res.arrayBuffer());
  let json: Json | undefined;
  if ((res.headers.get('content-type') ?? '').includes('json')) json = JSON.parse(bytes.toString('utf8')) as Json;
  return { status: res.status, headers: res.headers, bytes, json };
}

let scratch: string;
let fileCounter = 0;

function saveTemp(bytes: Buffer, name = `a${fileCounter++}.zip`): string {
  const path = join(scratch, name);
  writeFileSync(path, bytes);
  return path;
}

/** Polls until `done` holds, or a generous deadline passes (the caller then asserts: no timing is asserted). */
async function until(done: () => boolean | Promise<boolean>, ms = 10000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await done()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

/** The archive's entries, in order, with their contents (read back with yauzl), after `unzip -t` accepted it. */
async function entriesOf(zip: Buffer): Promise<Array<{ name: string; data: Buffer }>> {
  const path = saveTemp(zip);
  const out: Array<{ name: string; data: Buffer }> = [];
  const walk = await walkZip(path, async (entry) => {
    const parts: Buffer[] = [];
    for await (const c of await entry.open()) parts.push(c as Buffer);
    out.push({ name: entry.name, data: Buffer.concat(parts) });
  });
  expect(walk.errors).to.deep.equal([]);
  if (out.length > 0) expect(execFileSync('unzip', ['-t', path], { encoding: 'utf8' })).to.include('No errors detected');
  return out;
}

function sopOf(dicom: Buffer): string {
  return readPart10(dicom).dataset.text(Tags.SOPInstanceUID)!;
}

interface DirRecord {
  type: string;
  offset: number;
  next: number;
  lower: number;
  attrs: Map<string, string>;
}

/**
 * The DICOMDIR as DCMTK reads it: `dcmdump` prints each record's actual position (`offset=$N`) next to the
 * offsets we wrote, so the links can be checked against DCMTK's own reading.
 */
function dumpDicomdir(dicomdir: Buffer): { records: DirRecord[]; first: number; last: number; root: Map<string, string> } {
  const dir = mkdtempSync(join(scratch, 'dd-'));
  const path = join(dir, 'DICOMDIR');
  writeFileSync(path, dicomdir);
  expect(execFileSync('dcmftest', [path], { encoding: 'utf8' })).to.match(/^yes:/);
  const text = execFileSync('dcmdump', ['-q', path], { encoding: 'utf8' });
  const records: DirRecord[] = [];
  const root = new Map<string, string>();
  let first = -1;
  let last = -1;
  let current: DirRecord | undefined;
  for (const line of text.split('\n')) {
    const item = /"Directory Record" (\w+)/.exec(line);
    if (item) {
      current = { type: item[1]!, offset: -1, next: -1, lower: -1, attrs: new Map() };
      records.push(current);
      continue;
    }
    const offset = /#\s+offset=\$(\d+)/.exec(line);
    if (offset && current) current.offset = Number(offset[1]);
    const el = /^\s*\(([0-9a-f]{4},[0-9a-f]{4})\) (\w\w) (.*?)\s+#/.exec(line);
    if (!el) continue;
    const [, tag, vr, raw] = el;
    const value = vr === 'up' ? raw! : /^\[(.*)\]$/.exec(raw!)?.[1] ?? (raw!.startsWith('=') ? raw! : raw === '(no value available)' ? '' : raw!);
    if (tag === '0004,1200') first = Number(value);
    else if (tag === '0004,1202') last = Number(value);
    else if (!current) root.set(tag!, value);
    else if (tag === '0004,1400') current.next = Number(value);
    else if (tag === '0004,1420') current.lower = Number(value);
    else current.attrs.set(tag!, value);
  }
  return { records, first, last, root };
}

const CHILD: { [type: string]: string } = { PATIENT: 'STUDY', STUDY: 'SERIES', SERIES: 'IMAGE' };

/** Every offset points at a record of the right type: siblings of the same type, lower level one level down. */
function checkLinks(dd: ReturnType<typeof dumpDicomdir>): void {
  const byOffset = new Map(dd.records.map((r) => [r.offset, r]));
  expect(dd.records.every((r) => r.offset > 0)).to.equal(true);
  expect(byOffset.get(dd.first)?.type).to.equal('PATIENT');
  expect(byOffset.get(dd.last)?.type).to.equal('PATIENT');
  expect(byOffset.get(dd.last)!.next).to.equal(0);
  let reached = 0;
  const walk = (offset: number, type: string) => {
    for (let at = offset; at !== 0; at = byOffset.get(at)!.next) {
      const r = byOffset.get(at);
      expect(r?.type, `record at ${at}`).to.equal(type);
      reached++;
      if (type === 'IMAGE') expect(r!.lower).to.equal(0);
      else walk(r!.lower, CHILD[type]!);
    }
  };
  walk(dd.first, 'PATIENT');
  expect(reached).to.equal(dd.records.length); // every record is reachable, once
}

describe('REST: archives and media', function () {
  let s: TestServer;
  /** SOP Instance UID -> Orthanc instance ID. */
  const instanceIds = new Map<string, string>();
  /** SOP Instance UID -> the bytes uploaded. */
  const uploaded = new Map<string, Buffer>();
  let patientA: string;
  let patientB: string;
  let studyA1: string;
  let studyA2: string;
  let seriesA1: string;

  const A = { patientId: 'PA', patientName: 'DOE^JOHN' };
  const B = { patientId: 'PB', patientName: 'MÜLLER^Hans-Peter', specificCharacterSet: 'ISO_IR 192' };

  async function upload(spec: InstanceSpec): Promise<Json> {
    const bytes = makeInstance({ pixelBytes: 2000, ...spec });
    const r = await call(s, 'POST', '/instances', bytes as unknown as string);
    expect(r.status).to.equal(200);
    instanceIds.set(spec.sopInstanceUid!, r.json!.ID as string);
    uploaded.set(spec.sopInstanceUid!, bytes);
    return r.json!;
  }

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'pacsnode-archive-test-'));
    s = await tempServer();
    // Patient A, study 1: two CT series with the same description, one MR series.
    const study1 = { ...A, studyInstanceUid: '1.2.99.1', accessionNumber: 'ACC1', studyDescription: 'Head CT' };
    for (let i = 0; i < 3; i++) {
      await upload({ ...study1, seriesInstanceUid: '1.2.99.1.1', modality: 'CT', seriesDescription: 'Axial', sopInstanceUid: `1.2.99.1.1.${i}`, instanceNumber: i + 1 });
    }
    for (let i = 0; i < 2; i++) {
      await upload({ ...study1, seriesInstanceUid: '1.2.99.1.2', modality: 'CT', seriesDescription: 'Axial', sopInstanceUid: `1.2.99.1.2.${i}`, instanceNumber: i + 1 });
    }
    const last = await upload({ ...study1, seriesInstanceUid: '1.2.99.1.3', modality: 'MR', seriesDescription: 'T1 / sag?', sopInstanceUid: '1.2.99.1.3.0' });
    // Patient A, study 2: no accession, no description; a one-letter modality and an empty one.
    const study2 = { ...A, studyInstanceUid: '1.2.99.2', accessionNumber: '', studyDescription: '' };
    await upload({ ...study2, seriesInstanceUid: '1.2.99.2.1', modality: 'm', seriesDescription: 'x', sopInstanceUid: '1.2.99.2.1.0' });
    const s2 = await upload({ ...study2, seriesInstanceUid: '1.2.99.2.2', modality: '', seriesDescription: '', sopInstanceUid: '1.2.99.2.2.0' });
    // Patient B: non-ASCII name.
    const b = await upload({ ...B, studyInstanceUid: '1.2.99.3', accessionNumber: 'ÉCHO-7', studyDescription: 'Écho', seriesInstanceUid: '1.2.99.3.1', modality: 'US', seriesDescription: 'Abdomen', sopInstanceUid: '1.2.99.3.1.0' });
    await upload({ ...B, studyInstanceUid: '1.2.99.3', accessionNumber: 'ÉCHO-7', studyDescription: 'Écho', seriesInstanceUid: '1.2.99.3.1', modality: 'US', seriesDescription: 'Abdomen', sopInstanceUid: '1.2.99.3.1.1', instanceNumber: 2 });
    patientA = last.ParentPatient as string;
    studyA1 = last.ParentStudy as string;
    studyA2 = s2.ParentStudy as string;
    seriesA1 = ((await call(s, 'GET', `/instances/${instanceIds.get('1.2.99.1.1.0')}`)).json as Json).ParentSeries as string;
    patientB = b.ParentPatient as string;
  });

  after(async () => {
    await s.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  describe('naming as Orthanc', () => {
    it('cleans names: ^ is a space, non-ASCII and punctuation dropped, spaces collapsed and trimmed', () => {
      expect(cleanZipName('DOE^JOHN')).to.equal('DOE JOHN');
      expect(cleanZipName("  O'Brien^Mary-Ann   Jr. ")).to.equal('OBrien MaryAnn Jr.');
      expect(cleanZipName('MÜLLER^Hans')).to.equal('MLLER Hans');
      expect(cleanZipName('a\t\tb_c/d:e?f*g')).to.equal('a b_cdefg');
      expect(cleanZipName('???')).to.equal('');
    });

    it('names instances after the modality, with a counter on 8 characters', () => {
      expect(instanceFileName('CT', 0)).to.equal('CT000000.dcm');
      expect(instanceFileName('mr', 12)).to.equal('MR000012.dcm');
      expect(instanceFileName('M', 3)).to.equal('M0000003.dcm');
      expect(instanceFileName('', 7)).to.equal('00000007.dcm');
      expect(instanceFileName('CT', 1234567)).to.equal('CT1234567.dcm');
    });
  });

  describe('ZIP archives', () => {
    it('GET /studies/{id}/archive: Orthanc\'s folders and file names, each file the bytes of /instances/{id}/file', async () => {
      const r = await call(s, 'GET', `/studies/${studyA1}/archive`);
      expect(r.status).to.equal(200);
      expect(r.headers.get('content-type')).to.equal('application/zip');
      expect(r.headers.get('content-disposition')).to.equal(`filename="${studyA1}.zip"`);
      const entries = await entriesOf(r.bytes);
      // Series folders come in the order of their Orthanc IDs; the second "CT Axial" gets "-2".
      const names = entries.map((e) => e.name);
      const ct3 = names.filter((n) => /CT Axial(-2)?\/CT00000[0-2]\.dcm$/.test(n));
      expect(ct3).to.have.length(5);
      expect(names.every((n) => n.startsWith('PA DOE JOHN/ACC1 Head CT/'))).to.equal(true);
      expect(names).to.include('PA DOE JOHN/ACC1 Head CT/MR T1 sag/MR000000.dcm');
      const folders = [...new Set(names.map((n) => n.split('/')[2]))];
      expect(folders.sort()).to.deep.equal(['CT Axial', 'CT Axial-2', 'MR T1 sag']);
      const bigCt = names.filter((n) => n.includes('/CT Axial/')).length === 3 ? 'CT Axial' : 'CT Axial-2';
      expect(names.filter((n) => n.includes(`/${bigCt}/`)).map((n) => n.split('/')[3])).to.deep.equal([
        'CT000000.dcm', 'CT000001.dcm', 'CT000002.dcm',
      ]);
      for (const e of entries) {
        const id = instanceIds.get(sopOf(e.data))!;
        const file = await call(s, 'GET', `/instances/${id}/file`);
        expect(e.data.equals(file.bytes), e.name).to.equal(true);
      }
      // Instances in the order they were stored within their series.
      const big = entries.filter((e) => e.name.includes(`/${bigCt}/`)).map((e) => sopOf(e.data));
      expect(big).to.deep.equal(['1.2.99.1.1.0', '1.2.99.1.1.1', '1.2.99.1.1.2']);
    });

    it('GET /patients/{id}/archive: "Unknown Study", one-letter and empty modalities; POST gives the same files', async () => {
      const r = await call(s, 'GET', `/patients/${patientA}/archive`);
      const names = (await entriesOf(r.bytes)).map((e) => e.name);
      expect(names).to.have.length(8);
      expect(names).to.include('PA DOE JOHN/Unknown Study/m x/M0000000.dcm');
      expect(names).to.include('PA DOE JOHN/Unknown Study/Unknown Series/00000000.dcm');
      const post = await call(s, 'POST', `/patients/${patientA}/archive`, JSON.stringify({ Synchronous: true, Priority: 3 }));
      expect(post.status).to.equal(200);
      expect((await entriesOf(post.bytes)).map((e) => e.name)).to.deep.equal(names);
      // An empty body is taken as no options.
      const empty = await call(s, 'POST', `/patients/${patientA}/archive`);
      expect((await entriesOf(empty.bytes)).map((e) => e.name)).to.deep.equal(names);
    });

    it('GET /series/{id}/archive keeps the whole hierarchy of folders', async () => {
      const r = await call(s, 'GET', `/series/${seriesA1}/archive`);
      const names = (await entriesOf(r.bytes)).map((e) => e.name);
      expect(names).to.have.length(3);
      expect(names[0]).to.match(/^PA DOE JOHN\/ACC1 Head CT\/CT Axial\/CT000000\.dcm$/);
    });

    it('non-ASCII names lose their accents as in Orthanc', async () => {
      const r = await call(s, 'GET', `/patients/${patientB}/archive`);
      const names = (await entriesOf(r.bytes)).map((e) => e.name);
      expect(names).to.deep.equal(['PB MLLER HansPeter/CHO7 cho/US Abdomen/US000000.dcm', 'PB MLLER HansPeter/CHO7 cho/US Abdomen/US000001.dcm']);
    });

    it('POST /tools/create-archive merges resources as Orthanc: an ancestor wins, lone instances stay alone', async () => {
      const i0 = instanceIds.get('1.2.99.1.1.0')!;
      const i2 = instanceIds.get('1.2.99.1.1.2')!;
      // Two instances of a series: only they, numbered from 0 in the order asked.
      const two = await call(s, 'POST', '/tools/create-archive', JSON.stringify([i2, i0]));
      expect(two.headers.get('content-disposition')).to.equal('filename="Archive.zip"');
      const twoEntries = await entriesOf(two.bytes);
      expect(twoEntries.map((e) => e.name)).to.deep.equal([
        'PA DOE JOHN/ACC1 Head CT/CT Axial/CT000000.dcm',
        'PA DOE JOHN/ACC1 Head CT/CT Axial/CT000001.dcm',
      ]);
      expect(twoEntries.map((e) => sopOf(e.data))).to.deep.equal(['1.2.99.1.1.2', '1.2.99.1.1.0']);
      // An instance and its series: the whole series, once.
      const series = await call(s, 'POST', '/tools/create-archive', JSON.stringify({ Resources: [i0, seriesA1, i0] }));
      expect((await entriesOf(series.bytes)).map((e) => sopOf(e.data))).to.deep.equal(['1.2.99.1.1.0', '1.2.99.1.1.1', '1.2.99.1.1.2']);
      // A study and its patient: the whole patient; with another patient, patients in the order of their IDs.
      const all = await call(s, 'POST', '/tools/create-archive', JSON.stringify({ Resources: [studyA2, patientB, patientA], Synchronous: true }));
      const names = (await entriesOf(all.bytes)).map((e) => e.name);
      expect(names).to.have.length(10);
      const order = [...new Set(names.map((n) => n.split('/')[0]))];
      expect(order).to.deep.equal(patientA < patientB ? ['PA DOE JOHN', 'PB MLLER HansPeter'] : ['PB MLLER HansPeter', 'PA DOE JOHN']);
      // GET with ?resources= (Orthanc 1.12.2+) answers the same archive; `filename` names it.
      const get = await call(s, 'GET', `/tools/create-archive?resources=${studyA2},${patientB},${patientA}&filename=all.zip`);
      expect(get.headers.get('content-disposition')).to.equal('filename="all.zip"');
      expect((await entriesOf(get.bytes)).map((e) => e.name)).to.deep.equal(names);
    });

    it('an empty list of resources is an empty, valid ZIP', async () => {
      const r = await call(s, 'POST', '/tools/create-archive', '[]');
      expect(r.status).to.equal(200);
      expect(r.bytes.length).to.equal(22);
      expect(r.bytes.readUInt32LE(0)).to.equal(0x06054b50);
      expect(await entriesOf(r.bytes)).to.deep.equal([]);
    });

    it('Filename and filename name the download (unsafe characters replaced)', async () => {
      const post = await call(s, 'POST', `/studies/${studyA2}/archive`, JSON.stringify({ Filename: 'my "study".zip' }));
      expect(post.headers.get('content-disposition')).to.equal('filename="my _study_.zip"');
      const get = await call(s, 'GET', `/studies/${studyA2}/media?filename=cd.zip`);
      expect(get.headers.get('content-disposition')).to.equal('filename="cd.zip"');
    });

    it('Transcode to an uncompressed syntax rewrites the files; other syntaxes are refused with 400', async () => {
      const r = await call(s, 'POST', `/series/${seriesA1}/archive`, JSON.stringify({ Transcode: ImplicitVRLittleEndian }));
      expect(r.status).to.equal(200);
      const entries = await entriesOf(r.bytes);
      expect(entries).to.have.length(3);
      for (const e of entries) {
        const parsed = readPart10(e.data);
        expect(parsed.transferSyntaxUid).to.equal(ImplicitVRLittleEndian);
        expect(parsed.meta.text(Tags.TransferSyntaxUID)).to.equal(ImplicitVRLittleEndian);
        const original = readPart10(uploaded.get(sopOf(e.data))!);
        expect(parsed.dataset.text(Tags.PatientName)).to.equal(original.dataset.text(Tags.PatientName));
        expect(parsed.dataset.raw(Tags.PixelData)!.equals(original.dataset.raw(Tags.PixelData)!)).to.equal(true);
      }
      const get = await call(s, 'GET', `/series/${seriesA1}/archive?transcode=${ImplicitVRLittleEndian}`);
      expect((await entriesOf(get.bytes)).every((e) => readPart10(e.data).transferSyntaxUid === ImplicitVRLittleEndian)).to.equal(true);

      const jpeg = await call(s, 'POST', `/series/${seriesA1}/archive`, JSON.stringify({ Transcode: '1.2.840.10008.1.2.4.50' }));
      expect(jpeg.status).to.equal(400);
      expect(jpeg.json!.Details).to.match(/not supported yet/);
      const jpegGet = await call(s, 'GET', `/studies/${studyA1}/media?transcode=1.2.840.10008.1.2.4.90`);
      expect(jpegGet.status).to.equal(400);
      const unknown = await call(s, 'POST', '/tools/create-archive', JSON.stringify({ Resources: [seriesA1], Transcode: '1.2.3.4' }));
      expect(unknown.status).to.equal(400);
      expect(unknown.json!.Details).to.equal('Unknown transfer syntax: 1.2.3.4');
    });
  });

  describe('DICOMDIR media', () => {
    it('GET /studies/{id}/media: IMAGES/IM0... and a DICOMDIR that DCMTK reads, with consistent offsets', async () => {
      const r = await call(s, 'GET', `/studies/${studyA1}/media`);
      expect(r.status).to.equal(200);
      const entries = await entriesOf(r.bytes);
      expect(entries.map((e) => e.name)).to.deep.equal(['IMAGES/IM0', 'IMAGES/IM1', 'IMAGES/IM2', 'IMAGES/IM3', 'IMAGES/IM4', 'IMAGES/IM5', 'DICOMDIR']);
      for (const e of entries.slice(0, -1)) {
        const file = await call(s, 'GET', `/instances/${instanceIds.get(sopOf(e.data))}/file`);
        expect(e.data.equals(file.bytes)).to.equal(true);
      }
      const dd = dumpDicomdir(entries[entries.length - 1]!.data);
      expect(dd.root.get('0004,1130')).to.equal('ORTHANC_MEDIA');
      // Depth first: the patient, its study, then each series followed by its images.
      const types = dd.records.map((x) => x.type).join(' ');
      expect(types).to.match(/^PATIENT STUDY( SERIES( IMAGE)+){3}$/);
      expect(dd.records.filter((x) => x.type === 'SERIES')).to.have.length(3);
      expect(dd.records.filter((x) => x.type === 'IMAGE')).to.have.length(6);
      checkLinks(dd);
      const patient = dd.records[0]!;
      expect(patient.attrs.get('0010,0010')).to.equal('DOE^JOHN');
      expect(patient.attrs.get('0010,0020')).to.equal('PA');
      const study = dd.records[1]!;
      expect(study.attrs.get('0020,000d')).to.equal('1.2.99.1');
      expect(study.attrs.get('0008,0050')).to.equal('ACC1');
      expect(study.attrs.get('0008,0020')).to.equal('20240115');
      // Each image record names its file and what is in it.
      const bySop = new Map(entries.slice(0, -1).map((e) => [sopOf(e.data), e.name]));
      for (const image of dd.records.filter((x) => x.type === 'IMAGE')) {
        const sop = image.attrs.get('0004,1511')!;
        expect(image.attrs.get('0004,1500')!.replace('\\', '/')).to.equal(bySop.get(sop));
        expect(image.attrs.get('0004,1510')).to.equal('=CTImageStorage');
        expect(image.attrs.get('0004,1512')).to.equal('=LittleEndianExplicit');
        expect(image.attrs.has('0020,0013')).to.equal(true);
      }
      // Not extended: no Series Description.
      expect(dd.records.filter((x) => x.type === 'SERIES').some((x) => x.attrs.has('0008,103e'))).to.equal(false);
    });

    it('?extended and /tools/create-media-extended add Series Description (Orthanc\'s extended DICOMDIR)', async () => {
      const ext = await call(s, 'GET', `/studies/${studyA1}/media?extended`);
      const dd = dumpDicomdir((await entriesOf(ext.bytes)).find((e) => e.name === 'DICOMDIR')!.data);
      const descriptions = dd.records.filter((x) => x.type === 'SERIES').map((x) => x.attrs.get('0008,103e'));
      expect(descriptions.sort()).to.deep.equal(['Axial', 'Axial', 'T1 / sag?']);
      const batch = await call(s, 'POST', '/tools/create-media-extended', JSON.stringify({ Resources: [patientA, patientB] }));
      const entries = await entriesOf(batch.bytes);
      expect(entries).to.have.length(11);
      const all = dumpDicomdir(entries[entries.length - 1]!.data);
      checkLinks(all);
      expect(all.records.filter((x) => x.type === 'PATIENT')).to.have.length(2);
      expect(all.records.filter((x) => x.type === 'SERIES').every((x) => x.attrs.has('0008,103e'))).to.equal(true);
      // Non-ASCII characters are dropped as Orthanc does; the record keeps its Specific Character Set.
      const b = all.records.find((x) => x.type === 'PATIENT' && x.attrs.get('0010,0020') === 'PB')!;
      expect(b.attrs.get('0010,0010')).to.equal('MLLER^Hans-Peter');
      expect(b.attrs.get('0008,0005')).to.equal('ISO_IR 192');
      // create-media: not extended unless asked.
      const plain = await call(s, 'POST', '/tools/create-media', JSON.stringify([patientB]));
      const p = dumpDicomdir((await entriesOf(plain.bytes)).at(-1)!.data);
      expect(p.records.some((x) => x.attrs.has('0008,103e'))).to.equal(false);
      const asked = await call(s, 'POST', '/tools/create-media', JSON.stringify({ Resources: [patientB], Extended: true }));
      const q = dumpDicomdir((await entriesOf(asked.bytes)).at(-1)!.data);
      expect(q.records.filter((x) => x.type === 'SERIES').every((x) => x.attrs.get('0008,103e') === 'Abdomen')).to.equal(true);
      const viaGet = await call(s, 'GET', `/tools/create-media?resources=${patientB}&extended`);
      expect((await entriesOf(viaGet.bytes)).map((e) => e.name)).to.deep.equal(['IMAGES/IM0', 'IMAGES/IM1', 'DICOMDIR']);
    });

    it('an empty Study Date stays empty (as Orthanc); transcoded media reference their new syntax', async () => {
      const noDate = makeInstance({
        patientId: 'PC', studyInstanceUid: '1.2.99.4', seriesInstanceUid: '1.2.99.4.1', sopInstanceUid: '1.2.99.4.1.0',
        studyDate: '', extra: [{ tag: Tags.SeriesDate, vr: 'DA', value: '20230303' }],
      });
      const stored = await call(s, 'POST', '/instances', noDate as unknown as string);
      const r = await call(s, 'POST', `/studies/${stored.json!.ParentStudy}/media`, JSON.stringify({ Transcode: ImplicitVRLittleEndian }));
      const entries = await entriesOf(r.bytes);
      expect(readPart10(entries[0]!.data).transferSyntaxUid).to.equal(ImplicitVRLittleEndian);
      const dd = dumpDicomdir(entries[1]!.data);
      // An empty Study Date is kept empty (Orthanc falls back only when the element is missing).
      expect(dd.records[1]!.attrs.get('0008,0020')).to.equal('');
      expect(dd.records.find((x) => x.type === 'IMAGE')!.attrs.get('0004,1512')).to.equal('=LittleEndianImplicit');
      await call(s, 'DELETE', `/patients/${stored.json!.ParentPatient}`);
    });
  });

  describe('the producer, as a job will run it', () => {
    it('plans the files up front, reports progress, writes to any Writable, deflates on request', async () => {
      const plan = planArchive(s.ctx, { resources: [patientA], compression: 'deflate' });
      expect(plan.entries).to.have.length(8);
      expect(plan.uncompressedSize).to.equal(plan.entries.reduce((a, e) => a + e.attachment.uncompressedSize, 0));
      expect(plan.entries[0]!.path).to.match(/^PA DOE JOHN\//);
      const path = join(scratch, 'job.zip');
      const progress: ArchiveProgress[] = [];
      const result = await createArchive(s.ctx, { resources: [patientA], compression: 'deflate' }, createWriteStream(path), undefined, (p) => progress.push(p));
      expect(result).to.include({ instancesCount: 8, skipped: 0, uncompressedSize: plan.uncompressedSize });
      expect(progress.map((p) => p.done)).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(progress.every((p) => p.total === 8)).to.equal(true);
      const zip = readFileSync(path);
      expect(zip.length).to.equal(result.archiveSize);
      expect(execFileSync('zipinfo', [path], { encoding: 'utf8' }).match(/ defN /g)).to.have.length(8);
      const entries = await entriesOf(zip);
      for (const e of entries) expect(e.data.equals(uploaded.get(sopOf(e.data))!)).to.equal(true);
    });

    it('leaves out an instance deleted after the plan was made, as Orthanc does', async () => {
      const extra = await upload({ ...A, studyInstanceUid: '1.2.99.5', seriesInstanceUid: '1.2.99.5.1', sopInstanceUid: '1.2.99.5.1.0' });
      await upload({ ...A, studyInstanceUid: '1.2.99.5', seriesInstanceUid: '1.2.99.5.1', sopInstanceUid: '1.2.99.5.1.1' });
      const plan = planArchive(s.ctx, { resources: [extra.ParentSeries as string], media: true });
      expect(plan.entries).to.have.length(2);
      await s.ctx.store.delete(extra.ID as string);
      const path = join(scratch, 'deleted.zip');
      const result = await writeArchive(s.ctx, plan, createWriteStream(path));
      expect(result).to.include({ instancesCount: 1, skipped: 1 });
      const entries = await entriesOf(readFileSync(path));
      expect(entries.map((e) => e.name)).to.deep.equal(['IMAGES/IM1', 'DICOMDIR']);
      const dd = dumpDicomdir(entries[1]!.data);
      expect(dd.records.filter((x) => x.type === 'IMAGE').map((x) => x.attrs.get('0004,1511'))).to.deep.equal(['1.2.99.5.1.1']);
      await s.ctx.store.delete(extra.ParentStudy as string);
    });

    it('HEAD answers the headers without writing the archive', async () => {
      const r = await fetch(`${s.url}/studies/${studyA1}/archive`, { method: 'HEAD' });
      expect(r.status).to.equal(200);
      expect(r.headers.get('content-type')).to.equal('application/zip');
      expect(runningArchives()).to.equal(0);
      const missing = await fetch(`${s.url}/studies/${patientA}/media`, { method: 'HEAD' });
      expect(missing.status).to.equal(404);
    });
  });

  describe('errors', () => {
    it('unknown IDs, or IDs of another level, are 404 with Orthanc\'s error JSON', async () => {
      const missing = '00000000-00000000-00000000-00000000-00000000';
      for (const [method, path] of [
        ['GET', `/studies/${missing}/archive`],
        ['POST', `/studies/${missing}/archive`],
        ['GET', `/patients/${missing}/media`],
        ['POST', `/series/${missing}/media`],
        ['GET', `/studies/${patientA}/archive`],
        ['GET', `/patients/${studyA1}/media`],
        ['POST', `/series/${studyA1}/archive`],
      ] as const) {
        const r = await call(s, method, path, method === 'POST' ? '{}' : undefined);
        expect(r.status, `${method} ${path}`).to.equal(404);
        expect(r.json).to.include({ OrthancStatus: 17, Method: method, Uri: path });
      }
      const batch = await call(s, 'POST', '/tools/create-archive', JSON.stringify([patientA, missing]));
      expect(batch.status).to.equal(404);
      expect((await call(s, 'GET', `/tools/create-media?resources=${missing}`)).status).to.equal(404);
      // In the asynchronous mode too: the IDs are checked before a job is submitted.
      expect((await call(s, 'POST', `/studies/${missing}/archive`, '{"Synchronous":false}')).status).to.equal(404);
      expect((await call(s, 'POST', '/tools/create-media', JSON.stringify({ Resources: [patientA, missing], Asynchronous: true }))).status).to.equal(404);
    });

    it('bad bodies are 400', async () => {
      const bad: Array<[string, string]> = [
        ['/tools/create-archive', 'not json'],
        ['/tools/create-archive', '{}'],
        ['/tools/create-archive', '{"Resources": "abc"}'],
        ['/tools/create-archive', '[1, 2]'],
        ['/tools/create-archive', '"abc"'],
        ['/tools/create-media', '{"Resources": [], "Extended": "yes"}'],
        ['/tools/create-archive', '{"Resources": [], "Synchronous": "true"}'],
        ['/tools/create-archive', '{"Resources": [], "Priority": "high"}'],
        ['/tools/create-archive', '{"Resources": [], "Transcode": 12}'],
        ['/tools/create-archive', '{"Resources": [], "Filename": 3}'],
        [`/studies/${studyA1}/archive`, '{"Synchronous": 1}'],
        [`/studies/${studyA1}/media`, '{oops'],
      ];
      for (const [path, body] of bad) {
        const r = await call(s, 'POST', path, body);
        expect(r.status, `${path} ${body}`).to.equal(400);
        expect(r.json!.HttpStatus).to.equal(400);
      }
      expect((await call(s, 'GET', '/tools/create-archive')).status).to.equal(400);
      expect((await call(s, 'GET', `/studies/${studyA1}/media?extended=maybe`)).status).to.equal(400);
    });

    it('"Synchronous": false and "Asynchronous": true answer a job; "Synchronous" wins over "Asynchronous"', async () => {
      for (const body of ['{"Synchronous": false}', '{"Asynchronous": true}', '{"Synchronous": false, "Asynchronous": false}']) {
        const r = await call(s, 'POST', `/studies/${studyA1}/archive`, body);
        expect(r.status, body).to.equal(200);
        expect(r.headers.get('content-type')).to.match(/^application\/json/);
        expect(Object.keys(r.json!).sort()).to.deep.equal(['ID', 'Path']);
        expect(r.json!.Path).to.equal(`/jobs/${r.json!.ID as string}`);
      }
      // As in Orthanc: "Synchronous" is read first.
      const sync = await call(s, 'POST', `/studies/${studyA2}/archive`, '{"Synchronous": true, "Asynchronous": true}');
      expect(sync.status).to.equal(200);
      expect(sync.headers.get('content-type')).to.equal('application/zip');
    });
  });
});

describe('REST: archives with StorageCompression', function () {
  let s: TestServer;
  let study: string;
  const files: Buffer[] = [];

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'pacsnode-archive-test-'));
    s = await tempServer({ StorageCompression: true });
    for (let i = 0; i < 4; i++) {
      const f = makeInstance({ patientId: 'Z', studyInstanceUid: '1.2.97', seriesInstanceUid: '1.2.97.1', sopInstanceUid: `1.2.97.1.${i}`, instanceNumber: i + 1, pixelBytes: i === 3 ? 3_000_000 : 5000 });
      files.push(f);
      const r = await fetch(`${s.url}/instances`, { method: 'POST', body: f });
      study = ((await r.json()) as Json).ParentStudy as string;
    }
  });

  after(async () => {
    await s.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('files stored compressed are inflated into the archive and the media', async () => {
    const r = await call(s, 'GET', `/studies/${study}/archive`);
    const entries = await entriesOf(r.bytes);
    expect(entries.map((e) => e.name)).to.deep.equal([0, 1, 2, 3].map((i) => `Z DOE JOHN/ACC0001 Generated study/CT Generated series/CT00000${i}.dcm`));
    entries.forEach((e, i) => expect(e.data.equals(files[i]!)).to.equal(true));
    const m = await call(s, 'GET', `/studies/${study}/media`);
    const media = await entriesOf(m.bytes);
    expect(media.slice(0, -1).every((e, i) => e.data.equals(files[i]!))).to.equal(true);
    const dd = dumpDicomdir(media.at(-1)!.data);
    checkLinks(dd);
    expect(dd.records.filter((x) => x.type === 'IMAGE').map((x) => x.attrs.get('0020,0013'))).to.deep.equal(['1', '2', '3', '4']);
  });
});

describe('REST: a client leaving in the middle of a large archive', function () {
  let s: TestServer;
  let study: string;

  before(async function () {
    this.timeout(120000);
    scratch = mkdtempSync(join(tmpdir(), 'pacsnode-archive-test-'));
    s = await tempServer();
    // 24 instances of about 2 MB: the download is cut in the middle of a file.
    for (let i = 0; i < 24; i++) {
      const f = makeInstance({ patientId: 'BIG', studyInstanceUid: '1.2.98', seriesInstanceUid: '1.2.98.1', sopInstanceUid: `1.2.98.1.${i}`, instanceNumber: i + 1, pixelBytes: 2_000_000 });
      const r = await fetch(`${s.url}/instances`, { method: 'POST', body: f });
      study = ((await r.json()) as Json).ParentStudy as string;
    }
  });

  after(async () => {
    await s.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('stops writing the archive and leaves no stored file open', async function () {
    this.timeout(60000);
    const storageFiles = () =>
      readdirSync('/proc/self/fd')
        .map((fd) => {
          try {
            return readlinkSync(`/proc/self/fd/${fd}`);
          } catch {
            return '';
          }
        })
        .filter((target) => target.startsWith(join(s.dir, 'storage')) && !target.includes('.sqlite'));
    const before = storageFiles().length;
    for (const kind of ['archive', 'media']) {
      const ac = new AbortController();
      try {
        const res = await fetch(`${s.url}/studies/${study}/${kind}`, { signal: ac.signal });
        expect(res.status).to.equal(200);
        const reader = res.body!.getReader();
        let received = 0;
        while (received < 3_000_000) received += (await reader.read()).value?.length ?? 0;
        // Held back by the client: the archive (about 48 MB) waits for it, whatever the socket buffers hold.
        expect(runningArchives()).to.equal(1);
      } finally {
        // Always: a response left open would keep the server from closing.
        ac.abort();
      }
      // The writing notices the client is gone and stops; a stopped archive has closed the file it was reading.
      await until(() => runningArchives() === 0, 20000);
      expect(runningArchives(), `${kind}: still writing`).to.equal(0);
      expect(storageFiles(), kind).to.have.length(before);
    }
    // The server goes on serving, archives included.
    const again = await call(s, 'GET', `/studies/${study}/archive`);
    expect(again.status).to.equal(200);
    expect((await entriesOf(again.bytes)).length).to.equal(24);
  });
});

describe('REST: asynchronous archives and media (Archive and Media jobs)', function () {
  this.timeout(60000);
  let s: TestServer;
  let patient: string;
  let study: string;
  let series: string;
  let otherStudy: string;
  /** The files of `study`, in storage order. */
  const files: Buffer[] = [];
  const missing = '00000000-00000000-00000000-00000000-00000000';

  async function submit(path: string, body: unknown): Promise<string> {
    const r = await call(s, 'POST', path, JSON.stringify(body));
    expect(r.status, `${path} ${JSON.stringify(body)}`).to.equal(200);
    expect(r.json!.Path).to.equal(`/jobs/${r.json!.ID as string}`);
    return r.json!.ID as string;
  }

  async function job(id: string): Promise<Json> {
    const r = await call(s, 'GET', `/jobs/${id}`);
    expect(r.status).to.equal(200);
    return r.json!;
  }

  /** Polls `/jobs/{id}` until `done` holds (generous deadline; no timing is asserted). */
  async function waitJob(id: string, done: (j: Json) => boolean = (j) => j.State === 'Success' || j.State === 'Failure'): Promise<Json> {
    const deadline = Date.now() + 30000;
    for (;;) {
      const j = await job(id);
      if (done(j)) return j;
      if (Date.now() > deadline) throw new Error(`job ${id} still ${j.State as string}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async function download(id: string): Promise<Download> {
    const r = await call(s, 'GET', `/jobs/${id}/archive`);
    expect(r.status).to.equal(200);
    return r;
  }

  /** Blocks the archive jobs' step that would write file number `index` until released (or the job cancelled). */
  function holdAt(index: number): { reached: Promise<string>; release: () => void } {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let reach!: (id: string) => void;
    const reached = new Promise<string>((resolve) => (reach = resolve));
    archiveJobHooks.beforeStep = (jobId, i, signal) => {
      if (i !== index) return Promise.resolve();
      reach(jobId);
      return new Promise<void>((resolve, reject) => {
        if (signal.aborted) return reject(signal.reason as Error);
        signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
        void released.then(resolve);
      });
    };
    return { reached, release };
  }

  /** Submits an asynchronous archive and waits until its job is held before writing file number `index`. */
  async function submitHeld(index: number, path: string): Promise<{ id: string; release: () => void }> {
    const hold = holdAt(index);
    const id = await submit(path, { Asynchronous: true });
    expect(await hold.reached).to.equal(id);
    return { id, release: hold.release };
  }

  /** The job's folder in the engine's temporary folder (`<tmp>/pacsnode-<index hash>/pacsnode-jobs-*\/<id>`). */
  function workDirOf(id: string): string | undefined {
    const root = jobsTemporaryPath(join(s.dir, 'storage'));
    for (const d of readdirSync(root).filter((n) => n.startsWith('pacsnode-jobs-'))) {
      try {
        const dir = join(root, d, id);
        readdirSync(dir);
        return dir;
      } catch {
        // not this engine's
      }
    }
    return undefined;
  }

  function openFilesUnder(dir: string): string[] {
    return readdirSync('/proc/self/fd')
      .map((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`);
        } catch {
          return '';
        }
      })
      .filter((target) => target.startsWith(dir) && !target.includes('.sqlite'));
  }

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'pacsnode-archive-test-'));
    s = await tempServer({ MediaArchiveSize: 2 });
    const base = { patientId: 'JOB', patientName: 'JOB^ASYNC', studyInstanceUid: '1.2.96', accessionNumber: 'J1', studyDescription: 'Jobs' };
    for (let i = 0; i < 10; i++) {
      const seriesUid = i < 6 ? '1.2.96.1' : '1.2.96.2';
      const f = makeInstance({ ...base, seriesInstanceUid: seriesUid, modality: i < 6 ? 'CT' : 'MR', seriesDescription: 'S', sopInstanceUid: `1.2.96.${i}`, instanceNumber: i + 1, pixelBytes: 100_000 + i * 1000 });
      files.push(f);
      const r = (await call(s, 'POST', '/instances', f as unknown as string)).json!;
      patient = r.ParentPatient as string;
      study = r.ParentStudy as string;
      if (i === 0) series = r.ParentSeries as string;
    }
    const other = makeInstance({ patientId: 'JOB2', studyInstanceUid: '1.2.95', seriesInstanceUid: '1.2.95.1', sopInstanceUid: '1.2.95.1.0' });
    otherStudy = (await call(s, 'POST', '/instances', other as unknown as string)).json!.ParentStudy as string;
  });

  afterEach(() => {
    archiveJobHooks.beforeStep = undefined;
  });

  after(async () => {
    await s.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('POST /studies/{id}/archive with "Asynchronous": an Archive job whose output is the synchronous route\'s ZIP', async () => {
    const id = await submit(`/studies/${study}/archive`, { Asynchronous: true, Priority: 7 });
    const done = await waitJob(id);
    expect(done).to.include({ State: 'Success', Type: 'Archive', Progress: 100, Priority: 7, ErrorCode: 0 });
    const zip = await download(id);
    expect(zip.headers.get('content-type')).to.equal('application/zip');
    expect(zip.headers.get('content-disposition')).to.equal(`filename="${study}.zip"`);
    const uncompressed = files.reduce((a, f) => a + f.length, 0);
    // Orthanc's ArchiveJob content: sizes in MB, and in bytes as strings (Orthanc 1.9.4+).
    expect(done.Content).to.deep.equal({
      ArchiveSize: String(zip.bytes.length),
      ArchiveSizeMB: Math.floor(zip.bytes.length / (1024 * 1024)),
      Description: 'REST API',
      InstancesCount: 10,
      UncompressedSize: String(uncompressed),
      UncompressedSizeMB: Math.floor(uncompressed / (1024 * 1024)),
    });
    const sync = await call(s, 'POST', `/studies/${study}/archive`, '{}');
    const asyncEntries = await entriesOf(zip.bytes);
    expect(asyncEntries.map((e) => e.name)).to.deep.equal((await entriesOf(sync.bytes)).map((e) => e.name));
    expect(asyncEntries).to.deep.equal(await entriesOf(sync.bytes));
    expect(asyncEntries.map((e) => e.data)).to.deep.equal(files);
    expect(zip.bytes.length).to.equal(sync.bytes.length);
  });

  it('media, batches, Transcode and Filename: a Media job, same entries and bytes as the synchronous routes', async () => {
    const cases: Array<{ path: string; body: Json; type: string; filename: string }> = [
      { path: `/patients/${patient}/media`, body: { Synchronous: false }, type: 'Media', filename: `${patient}.zip` },
      { path: `/series/${series}/archive`, body: { Synchronous: false, Filename: 'ct "one".zip' }, type: 'Archive', filename: 'ct _one_.zip' },
      { path: '/tools/create-archive', body: { Resources: [otherStudy, series], Asynchronous: true }, type: 'Archive', filename: 'Archive.zip' },
      { path: '/tools/create-media-extended', body: { Resources: [study, otherStudy], Asynchronous: true, Filename: 'cd.zip' }, type: 'Media', filename: 'cd.zip' },
      { path: '/tools/create-media', body: { Resources: [series], Asynchronous: true, Extended: true, Transcode: ImplicitVRLittleEndian }, type: 'Media', filename: 'Archive.zip' },
    ];
    for (const c of cases) {
      const id = await submit(c.path, c.body);
      const done = await waitJob(id);
      expect(done, c.path).to.include({ State: 'Success', Type: c.type });
      const zip = await download(id);
      expect(zip.headers.get('content-disposition')).to.equal(`filename="${c.filename}"`);
      const { Synchronous: _s, Asynchronous: _a, ...syncBody } = c.body;
      const sync = await call(s, 'POST', c.path, JSON.stringify(syncBody));
      expect(sync.status).to.equal(200);
      const entries = await entriesOf(zip.bytes);
      expect(entries.length, c.path).to.be.greaterThan(0);
      const syncEntries = await entriesOf(sync.bytes);
      expect(entries.map((e) => e.name), c.path).to.deep.equal(syncEntries.map((e) => e.name));
      const dicomFiles = c.type === 'Media' ? entries.slice(0, -1) : entries;
      dicomFiles.forEach((e, i) => expect(e.data.equals(syncEntries[i]!.data), `${c.path} ${e.name}`).to.equal(true));
      if (c.type === 'Media') {
        // Every DICOMDIR has its own SOP Instance UID (in its meta header): the same records, each time.
        expect(entries.at(-1)!.name).to.equal('DICOMDIR');
        const dd = dumpDicomdir(entries.at(-1)!.data);
        checkLinks(dd);
        const records = (d: ReturnType<typeof dumpDicomdir>) => d.records.map((r) => [r.type, [...r.attrs]]);
        expect(records(dd)).to.deep.equal(records(dumpDicomdir(syncEntries.at(-1)!.data)));
      }
      const content = done.Content as Json;
      expect(content.InstancesCount).to.equal(entries.length - (c.type === 'Media' ? 1 : 0));
      if (c.body.Transcode !== undefined) {
        expect(content.Transcode).to.equal(ImplicitVRLittleEndian);
        expect(entries.slice(0, -1).every((e) => readPart10(e.data).transferSyntaxUid === ImplicitVRLittleEndian)).to.equal(true);
      } else {
        expect(content).to.not.have.property('Transcode');
      }
    }
  });

  it('an empty list of resources makes an empty, valid ZIP', async () => {
    const id = await submit('/tools/create-archive', { Resources: [], Synchronous: false });
    const done = await waitJob(id);
    expect(done.State).to.equal('Success');
    expect((done.Content as Json).InstancesCount).to.equal(0);
    const zip = await download(id);
    expect(zip.bytes.length).to.equal(22);
    expect(zip.bytes.readUInt32LE(0)).to.equal(0x06054b50);
  });

  it('MediaArchiveSize (2 here): a third archive removes the least recently used one, a download counting as a use', async () => {
    const archiveStatus = async (id: string) => (await call(s, 'GET', `/jobs/${id}/archive`)).status;
    const first = await submit(`/studies/${otherStudy}/archive`, { Asynchronous: true });
    expect((await waitJob(first)).State).to.equal('Success');
    const second = await submit(`/studies/${otherStudy}/media`, { Asynchronous: true });
    expect((await waitJob(second)).State).to.equal('Success');
    // Downloaded after the second was made, the first becomes the most recent: the second goes first.
    expect((await download(first)).headers.get('content-disposition')).to.equal(`filename="${otherStudy}.zip"`);
    const third = await submit(`/studies/${otherStudy}/archive`, { Asynchronous: true });
    expect((await waitJob(third)).State).to.equal('Success');
    const secondDir = workDirOf(second)!;
    await until(async () => (await archiveStatus(second)) === 404 && readdirSync(secondDir).length === 0);
    const gone = await call(s, 'GET', `/jobs/${second}/archive`);
    expect(gone.status).to.equal(404);
    expect(gone.json!.Details).to.equal('Job has no such output: archive');
    expect(readdirSync(secondDir)).to.deep.equal([]);
    expect((await job(second)).State).to.equal('Success');
    expect(await archiveStatus(first)).to.equal(200);
    expect(await archiveStatus(third)).to.equal(200);
    // DELETE /jobs/{id}/archive removes the file; deleting the job removes its folder.
    const dir = workDirOf(third)!;
    expect(readdirSync(dir)).to.deep.equal(['archive.zip']);
    expect((await call(s, 'DELETE', `/jobs/${third}/archive`)).status).to.equal(200);
    expect(await archiveStatus(third)).to.equal(404);
    expect((await call(s, 'DELETE', `/jobs/${third}/archive`)).status).to.equal(404);
    await until(() => readdirSync(dir).length === 0);
    expect(readdirSync(dir)).to.deep.equal([]);
    expect((await call(s, 'DELETE', `/jobs/${first}`)).status).to.equal(200);
    expect(await archiveStatus(first)).to.equal(404);
    await until(() => workDirOf(first) === undefined);
    expect(workDirOf(first)).to.equal(undefined);
  });

  it('reports its progress file by file, pauses between two files and resumes to the same ZIP', async () => {
    const hold = await submitHeld(4, `/studies/${study}/archive`);
    const id = hold.id;
    const running = await job(id);
    expect(running.State).to.equal('Running');
    expect(running.Progress).to.be.greaterThan(0).and.lessThan(100);
    const content = running.Content as Json;
    expect(content.InstancesCount).to.equal(10);
    expect(Number(content.ArchiveSize)).to.be.greaterThan(4 * 100_000);
    expect((await call(s, 'POST', `/jobs/${id}/pause`, '{}')).status).to.equal(200);
    hold.release();
    const paused = await waitJob(id, (j) => j.State === 'Paused');
    expect(paused.Progress).to.be.greaterThan(running.Progress as number).and.lessThan(100);
    // Paused: the ZIP so far is in the file, which is closed until the job resumes.
    const dir = workDirOf(id)!;
    expect(statSync(join(dir, 'archive.zip')).size).to.equal(Number((paused.Content as Json).ArchiveSize));
    expect(openFilesUnder(dir)).to.deep.equal([]);
    // No output while not done.
    expect((await call(s, 'GET', `/jobs/${id}/archive`)).status).to.equal(404);
    expect((await call(s, 'POST', `/jobs/${id}/resume`, '{}')).status).to.equal(200);
    expect((await waitJob(id)).State).to.equal('Success');
    const sync = await call(s, 'POST', `/studies/${study}/archive`, '{}');
    expect(await entriesOf((await download(id)).bytes)).to.deep.equal(await entriesOf(sync.bytes));
  });

  it('a job cancelled while paused fails at once, holds no file, and its partial ZIP goes with the job', async () => {
    const hold = await submitHeld(2, `/series/${series}/media`);
    const id = hold.id;
    expect((await call(s, 'POST', `/jobs/${id}/pause`, '{}')).status).to.equal(200);
    hold.release();
    await waitJob(id, (j) => j.State === 'Paused');
    const dir = workDirOf(id)!;
    expect((await call(s, 'POST', `/jobs/${id}/cancel`, '{}')).status).to.equal(200);
    expect(await job(id)).to.include({ State: 'Failure', ErrorCode: 37 });
    expect(openFilesUnder(dir)).to.deep.equal([]);
    expect((await call(s, 'GET', `/jobs/${id}/archive`)).status).to.equal(404);
    expect((await call(s, 'DELETE', `/jobs/${id}`)).status).to.equal(200);
    await until(() => workDirOf(id) === undefined);
    expect(workDirOf(id)).to.equal(undefined);
  });

  it('cancelling stops the writing and removes the partial ZIP; a cancelled archive cannot be resubmitted', async () => {
    const hold = await submitHeld(3, `/patients/${patient}/media`);
    const id = hold.id;
    const dir = workDirOf(id)!;
    expect(readdirSync(dir)).to.deep.equal(['archive.zip']);
    // Three files written (the last bytes may still be in the stream's buffer).
    expect(readFileSync(join(dir, 'archive.zip')).length).to.be.greaterThan(2 * 100_000);
    expect(openFilesUnder(dir)).to.have.length(1);
    expect((await call(s, 'POST', `/jobs/${id}/cancel`, '{}')).status).to.equal(200);
    const failed = await waitJob(id);
    expect(failed).to.include({ State: 'Failure', ErrorCode: 37, ErrorDescription: 'This job was canceled', Type: 'Media' });
    await until(() => readdirSync(dir).length === 0);
    expect(readdirSync(dir)).to.deep.equal([]);
    expect(openFilesUnder(dir)).to.deep.equal([]);
    expect(openFilesUnder(join(s.dir, 'storage'))).to.deep.equal([]);
    expect((await call(s, 'GET', `/jobs/${id}/archive`)).status).to.equal(404);
    // As Orthanc: "Cannot resubmit the creation of an archive".
    expect((await call(s, 'POST', `/jobs/${id}/resubmit`, '{}')).status).to.equal(400);
    expect((await job(id)).State).to.equal('Failure');
    // A cancelled job that had not started yet fails at once, without a file.
    const pending = holdAt(0);
    const blocker = await submit(`/studies/${study}/archive`, { Asynchronous: true });
    await pending.reached;
    const queued = [
      await submit(`/studies/${study}/archive`, { Asynchronous: true, Priority: -1 }),
      await submit(`/studies/${study}/archive`, { Asynchronous: true, Priority: -1 }),
    ];
    // ConcurrentJobs is 2: one of them waits in the queue.
    const states = await Promise.all(queued.map(async (q) => (await job(q)).State));
    const waiting = queued[states.indexOf('Pending')]!;
    expect(waiting).to.be.a('string');
    expect((await call(s, 'POST', `/jobs/${waiting}/cancel`, '{}')).status).to.equal(200);
    expect((await job(waiting))).to.include({ State: 'Failure', ErrorCode: 37 });
    expect(workDirOf(waiting)).to.equal(undefined);
    archiveJobHooks.beforeStep = undefined;
    pending.release();
    for (const other of [blocker, ...queued.filter((q) => q !== waiting)]) expect((await waitJob(other)).State).to.equal('Success');
  });

  it('errors: unknown resources are 404 and bad bodies 400, without submitting a job; unknown jobs are 404', async () => {
    const before = (await call(s, 'GET', '/jobs')).json as unknown as string[];
    const notFound: Array<[string, Json]> = [
      [`/studies/${missing}/archive`, { Asynchronous: true }],
      [`/series/${study}/media`, { Synchronous: false }],
      ['/tools/create-archive', { Resources: [study, missing], Asynchronous: true }],
      ['/tools/create-media-extended', { Resources: [missing], Synchronous: false }],
    ];
    for (const [path, body] of notFound) {
      const r = await call(s, 'POST', path, JSON.stringify(body));
      expect(r.status, path).to.equal(404);
      expect(r.json).to.include({ OrthancStatus: 17 });
    }
    const bad: Array<[string, string]> = [
      [`/studies/${study}/archive`, '{"Asynchronous": "yes"}'],
      [`/studies/${study}/archive`, '{"Asynchronous": true, "Priority": 1.5}'],
      [`/studies/${study}/media`, '{"Asynchronous": true, "Extended": 1}'],
      [`/studies/${study}/archive`, '{"Asynchronous": true, "Transcode": "1.2.3.4"}'],
      [`/studies/${study}/archive`, '{"Asynchronous": true, "Transcode": "1.2.840.10008.1.2.4.50"}'],
      [`/studies/${study}/archive`, '{"Asynchronous": true, "Filename": false}'],
      ['/tools/create-archive', '{"Asynchronous": true}'],
      ['/tools/create-archive', '{"Resources": [1], "Asynchronous": true}'],
    ];
    for (const [path, body] of bad) {
      const r = await call(s, 'POST', path, body);
      expect(r.status, `${path} ${body}`).to.equal(400);
      expect(r.json!.HttpStatus).to.equal(400);
    }
    expect((await call(s, 'GET', '/jobs')).json).to.deep.equal(before);
    const unknownJob = await call(s, 'GET', `/jobs/${missing}/archive`);
    expect(unknownJob.status).to.equal(404);
    // A job that is not an archive has no `archive` output either; nor has an archive job another key.
    const id = await submit(`/studies/${otherStudy}/archive`, { Asynchronous: true });
    await waitJob(id);
    expect((await call(s, 'GET', `/jobs/${id}/dicomdir`)).status).to.equal(404);
  });
});

describe('MediaArchive (MediaArchiveSize)', () => {
  /** A jobs engine reduced to what MediaArchive asks: jobs in Success with an `archive` output, or gone. */
  function fakeJobs(ids: string[]) {
    const outputs = new Set(ids);
    const jobs = new Set(ids);
    return {
      outputs,
      jobs,
      state: (id: string) => (jobs.has(id) ? ('Success' as const) : undefined),
      output: (id: string, key: string) => (outputs.has(id) && key === 'archive' ? { path: `/x/${id}`, mimeType: 'application/zip' } : undefined),
      deleteOutput: (id: string, key: string) => key === 'archive' && outputs.delete(id),
    };
  }

  it('keeps the last `size` archives, the least recently used goes first; archives already gone free their place', () => {
    const jobs = fakeJobs(['a', 'b', 'c', 'd', 'e']);
    const archive = new MediaArchive(jobs, 2);
    archive.add('a');
    archive.add('b');
    expect(archive.list()).to.deep.equal(['a', 'b']);
    archive.touch('a');
    archive.add('c');
    expect([...jobs.outputs].sort()).to.deep.equal(['a', 'c', 'd', 'e']);
    expect(archive.list()).to.deep.equal(['a', 'c']);
    // A job deleted (or beyond JobsHistorySize) does not hold a place: nothing else is removed for it.
    jobs.jobs.delete('a');
    jobs.outputs.delete('a');
    archive.add('d');
    expect(archive.list()).to.deep.equal(['c', 'd']);
    expect(jobs.outputs.has('c')).to.equal(true);
    archive.add('e');
    expect(archive.list()).to.deep.equal(['d', 'e']);
    expect(jobs.outputs.has('c')).to.equal(false);
    expect(() => new MediaArchive(jobs, 0)).to.throw(/at least 1/);
  });
});

describe('REST: archive jobs and restarts (archive jobs are not saved, as in Orthanc)', function () {
  this.timeout(120000);
  let dir: string;
  let configPath: string;
  let running: RunningServer | undefined;
  const indexDir = () => join(dir, 'storage');

  async function submitAndWait(url: string, path: string): Promise<string> {
    const r = await fetch(`${url}${path}`, { method: 'POST', body: '{"Asynchronous": true}' });
    expect(r.status).to.equal(200);
    const id = ((await r.json()) as Json).ID as string;
    let state = '';
    await until(async () => {
      state = ((await (await fetch(`${url}/jobs/${id}`)).json()) as Json).State as string;
      return state === 'Success' || state === 'Failure';
    }, 30000);
    expect(state, `job ${id}`).to.equal('Success');
    return id;
  }

  /** Files under `root`, relative to it (recursively). */
  function filesUnder(root: string): string[] {
    return (readdirSync(root, { recursive: true }) as string[]).filter((p) => !statSync(join(root, p)).isDirectory()).sort();
  }

  let savedTmpdir: string | undefined;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pacsnode-archive-restart-'));
    // A temporary folder of our own (children inherit TMPDIR): other pacsnodes starting meanwhile on this machine
    // would otherwise clean our crashed server's folder first (as they should).
    savedTmpdir = process.env.TMPDIR;
    process.env.TMPDIR = join(dir, 'tmp');
    mkdirSync(process.env.TMPDIR);
    configPath = join(dir, 'config.json');
    writeFileSync(configPath, JSON.stringify({ StorageDirectory: indexDir(), HttpPort: 0, DicomPort: 0, SyncStorageArea: false, SaveJobs: true }));
  });

  afterEach(async () => {
    if (running && running.child.exitCode === null && running.child.signalCode === null) {
      running.child.kill('SIGKILL');
      await running.exited;
    }
    running = undefined;
  });

  after(() => {
    if (savedTmpdir === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmpdir;
    rmSync(dir, { recursive: true, force: true });
  });

  it('a crash leaves the ZIP of an archive job behind: the next start removes it, the job is gone; a clean stop leaves nothing', async () => {
    running = await startServer(configPath);
    let study = '';
    for (let i = 0; i < 3; i++) {
      const f = makeInstance({ patientId: 'RST', studyInstanceUid: '1.2.94', seriesInstanceUid: '1.2.94.1', sopInstanceUid: `1.2.94.1.${i}`, pixelBytes: 50_000 });
      const r = await fetch(`${running.url}/instances`, { method: 'POST', body: f });
      study = ((await r.json()) as Json).ParentStudy as string;
    }
    const id = await submitAndWait(running.url, `/studies/${study}/archive`);
    const temp = jobsTemporaryPath(indexDir());
    const zip = filesUnder(temp).find((p) => p.endsWith(`${id}/archive.zip`));
    expect(zip, 'the finished archive, in the jobs temporary folder').to.be.a('string');
    expect(readFileSync(join(temp, 'owner.pid'), 'utf8')).to.equal(String(running.child.pid));
    running.child.kill('SIGKILL');
    await running.exited;
    // What a crash leaves: the ZIP, and the folder's owner (a process gone).
    expect(filesUnder(temp)).to.include.members([zip, 'owner.pid']);

    running = await startServer(configPath);
    expect(filesUnder(temp)).to.deep.equal(['owner.pid']);
    // Logged before "ready" (stdout), but stderr is another pipe: its line may come a little later.
    const logged = /removed \d+ temporary file\(s\) or folder\(s\) of jobs left by an unclean stop/;
    await until(() => logged.test(running!.stderr()));
    expect(running.stderr()).to.match(logged);
    // SaveJobs is true, yet the archive job is not back (Orthanc does not save archive jobs either).
    expect(await (await fetch(`${running.url}/jobs`)).json()).to.deep.equal([]);
    expect((await fetch(`${running.url}/jobs/${id}/archive`)).status).to.equal(404);
    // Archives still work; a clean stop removes their files and the folder.
    const again = await submitAndWait(running.url, `/studies/${study}/media`);
    expect((await fetch(`${running.url}/jobs/${again}/archive`)).status).to.equal(200);
    running.child.kill('SIGTERM');
    expect((await running.exited).code).to.equal(0);
    expect(existsSync(temp)).to.equal(false);
  });

  it('an archive job still running at a clean stop is abandoned: never saved, its partial ZIP removed with the folder', async () => {
    const t = await tempServer({ SaveJobs: true });
    try {
      for (let i = 0; i < 4; i++) {
        const f = makeInstance({ patientId: 'RST2', studyInstanceUid: '1.2.93', seriesInstanceUid: '1.2.93.1', sopInstanceUid: `1.2.93.1.${i}`, pixelBytes: 50_000 });
        await fetch(`${t.url}/instances`, { method: 'POST', body: f });
      }
      const study = ((await (await fetch(`${t.url}/studies`)).json()) as string[])[0]!;
      let reached!: (id: string) => void;
      const atStep = new Promise<string>((resolve) => (reached = resolve));
      // Holds the job before its third file until pacsnode stops (the step's signal aborts).
      archiveJobHooks.beforeStep = (jobId, i, signal) =>
        i !== 2
          ? Promise.resolve()
          : new Promise<void>((_resolve, reject) => {
              reached(jobId);
              signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
            });
      const r = await fetch(`${t.url}/studies/${study}/archive`, { method: 'POST', body: '{"Asynchronous": true}' });
      const id = ((await r.json()) as Json).ID as string;
      expect(await atStep).to.equal(id);
      const temp = jobsTemporaryPath(join(t.dir, 'storage'));
      expect(filesUnder(temp).filter((p) => p.endsWith('archive.zip'))).to.have.length(1);
      // Running, yet never saved (SaveJobs is true): the next start cannot resume it.
      expect(((await (await fetch(`${t.url}/jobs/${id}`)).json()) as Json).State).to.equal('Running');
      expect(t.ctx.index.loadJobs().map((j) => j.id)).to.not.include(id);
      await t.http.close();
      await t.ctx.close();
      expect(existsSync(temp)).to.equal(false);
    } finally {
      archiveJobHooks.beforeStep = undefined;
      await t.close();
    }
  });
});


describe('the jobs temporary folder (openJobsTemporaryDirectory)', () => {
  let root: string;

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'pacsnode-archive-tmproot-'));
  });

  afterEach(() => {
    rmSync(root, { recursive: true, force: true });
  });

  /** A folder as a pacsnode leaves it: `owner.pid` (when given) and an archive in an engine folder. */
  function leftover(name: string, owner: number | undefined): string {
    const folder = join(root, name);
    mkdirSync(join(folder, 'pacsnode-jobs-x', 'job'), { recursive: true });
    writeFileSync(join(folder, 'pacsnode-jobs-x', 'job', 'archive.zip'), 'zip');
    if (owner !== undefined) writeFileSync(join(folder, 'owner.pid'), String(owner));
    return folder;
  }

  it('removes what dead owners left (this index\'s and others\'), keeps the folders of live processes and those being made', async () => {
    // A PID that was alive and is not any more: a child that has exited.
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const mine = jobsTemporaryPath('/data/index-a', root);
    leftover(mine.slice(root.length + 1), dead);
    const otherDead = leftover('pacsnode-0123456789abcdef', dead);
    const otherAlive = leftover('pacsnode-fedcba9876543210', process.ppid);
    const beingMade = leftover('pacsnode-00000000000000aa', undefined);
    const unrelated = leftover('pacsnode-test-xyz', dead);
    const t = await openJobsTemporaryDirectory('/data/index-a', root);
    expect(t.path).to.equal(mine);
    expect(readdirSync(mine)).to.deep.equal(['owner.pid']);
    expect(readFileSync(join(mine, 'owner.pid'), 'utf8')).to.equal(String(process.pid));
    expect(existsSync(otherDead)).to.equal(false);
    for (const kept of [otherAlive, beingMade, unrelated]) expect(readdirSync(kept), kept).to.include('pacsnode-jobs-x');
    // A second pacsnode on the same index (another live process: our parent stands for it) leaves its files alone.
    writeFileSync(join(mine, 'owner.pid'), String(process.ppid));
    writeFileSync(join(mine, 'in-use'), '');
    const second = await openJobsTemporaryDirectory('/data/index-a', root);
    expect(readdirSync(mine).sort()).to.deep.equal(['in-use', 'owner.pid']);
    await second.close();
    expect(readdirSync(mine).sort()).to.deep.equal(['in-use', 'owner.pid']);
    rmSync(join(mine, 'in-use'));
    writeFileSync(join(mine, 'owner.pid'), String(process.pid));
    await t.close();
    expect(existsSync(mine)).to.equal(false);
  });

  it('takes its own PID in owner.pid for a previous run (a container restarted after a crash keeps /tmp and PID 1)', async () => {
    const mine = jobsTemporaryPath('/data/index-b', root);
    leftover(mine.slice(root.length + 1), process.pid);
    const t = await openJobsTemporaryDirectory('/data/index-b', root);
    expect(readdirSync(mine)).to.deep.equal(['owner.pid']);
    await t.close();
    expect(existsSync(mine)).to.equal(false);
  });
});

describe('REST: archive jobs leaving the jobs history (JobsHistorySize)', function () {
  this.timeout(60000);

  it('an archive job forgotten by the history takes its ZIP and its folder with it', async () => {
    const t = await tempServer({ JobsHistorySize: 1, MediaArchiveSize: 5 });
    try {
      const f = makeInstance({ patientId: 'HIST', studyInstanceUid: '1.2.92', seriesInstanceUid: '1.2.92.1', sopInstanceUid: '1.2.92.1.0' });
      const study = ((await (await fetch(`${t.url}/instances`, { method: 'POST', body: f })).json()) as Json).ParentStudy as string;
      const root = jobsTemporaryPath(join(t.dir, 'storage'));
      const zips = () => (readdirSync(root, { recursive: true }) as string[]).filter((p) => p.endsWith('archive.zip')).sort();
      const ids: string[] = [];
      for (let i = 0; i < 2; i++) {
        const r = await fetch(`${t.url}/studies/${study}/archive`, { method: 'POST', body: '{"Asynchronous": true}' });
        const id = ((await r.json()) as Json).ID as string;
        ids.push(id);
        await until(async () => ((await (await fetch(`${t.url}/jobs/${id}`)).json()) as Json).State === 'Success');
        expect((await fetch(`${t.url}/jobs/${id}/archive`)).status).to.equal(200);
      }
      // The second job pushed the first out of the history (1 job kept), with its archive.
      expect(await (await fetch(`${t.url}/jobs`)).json()).to.deep.equal([ids[1]]);
      const left = () => (readdirSync(root, { recursive: true }) as string[]).filter((p) => p.includes(ids[0]!));
      await until(() => left().length === 0);
      expect(left()).to.deep.equal([]);
      expect(zips()).to.have.length(1);
      expect(zips()[0]).to.include(ids[1]);
    } finally {
      await t.close();
    }
  });
});
