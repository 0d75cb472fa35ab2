import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { createWriteStream, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanZipName, createArchive, instanceFileName, planArchive, runningArchives, writeArchive, type ArchiveProgress } from '../src/app/archive.js';
import { walkZip } from '../src/core/zip.js';
import { readPart10 } from '../src/dicom/reader.js';
import { Tags } from '../src/dicom/tag.js';
import { ImplicitVRLittleEndian } from '../src/dicom/transfer-syntax.js';
import { tempServer, type TestServer } from './helpers/context.js';
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
      // The ID is checked before the asynchronous mode is refused.
      expect((await call(s, 'POST', `/studies/${missing}/archive`, '{"Synchronous":false}')).status).to.equal(404);
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

    it('asynchronous archives are refused until the jobs engine runs them (501)', async () => {
      for (const body of ['{"Synchronous": false}', '{"Asynchronous": true}']) {
        const r = await call(s, 'POST', `/studies/${studyA1}/archive`, body);
        expect(r.status).to.equal(501);
        expect(r.json!.Details).to.match(/jobs engine/);
      }
      const batch = await call(s, 'POST', '/tools/create-media', JSON.stringify({ Resources: [studyA1], Asynchronous: true }));
      expect(batch.status).to.equal(501);
      // "Synchronous" wins over "Asynchronous", as in Orthanc.
      const sync = await call(s, 'POST', `/studies/${studyA2}/archive`, '{"Synchronous": true, "Asynchronous": true}');
      expect(sync.status).to.equal(200);
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
      const res = await fetch(`${s.url}/studies/${study}/${kind}`, { signal: ac.signal });
      expect(res.status).to.equal(200);
      const reader = res.body!.getReader();
      let received = 0;
      while (received < 3_000_000) received += (await reader.read()).value?.length ?? 0;
      // Held back by the client: the archive waits, with the file it is reading open.
      await new Promise((r) => setTimeout(r, 50));
      expect(runningArchives()).to.equal(1);
      expect(storageFiles().length).to.equal(before + 1);
      ac.abort();
      const deadline = Date.now() + 10000;
      while (runningArchives() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(runningArchives()).to.equal(0);
      await new Promise((r) => setTimeout(r, 50));
      expect(storageFiles().length).to.equal(before);
    }
    // The server goes on serving, archives included.
    const again = await call(s, 'GET', `/studies/${study}/archive`);
    expect(again.status).to.equal(200);
    expect((await entriesOf(again.bytes)).length).to.equal(24);
  });
});
