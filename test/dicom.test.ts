import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { DicomFormatError } from '../src/core/errors.js';
import { type DataSet, isNumericVr, STRING_VRS } from '../src/dicom/dataset.js';
import { keywordOf, lookupTag, tagFromKeywordOrString, vrOf } from '../src/dicom/dictionary.js';
import { NeedMoreBytes, part10DatasetOffset, readPart10, type ParsedDicom } from '../src/dicom/reader.js';
import { Tags } from '../src/dicom/tag.js';
import {
  DeflatedExplicitVRLittleEndian,
  ExplicitVRBigEndian,
  ExplicitVRLittleEndian,
  ImplicitVRLittleEndian,
} from '../src/dicom/transfer-syntax.js';
import { buildMetaHeader, encodeDataset, encodePart10, type WriteElement } from '../src/dicom/writer.js';

/** Debian's python3-pydicom test data (the corpus these tests read; not copied into the repository). */
const PYDICOM_DATA = '/usr/lib/python3/dist-packages/pydicom/data';

interface CorpusExpectation {
  pydicomError?: string;
  hasMetaHeader: boolean;
  metaTransferSyntax: string | null;
  explicitVr: boolean;
  littleEndian: boolean;
  elementCount: number;
  values: Record<string, string | number | Array<string | number>>;
  pixelData?: { headerOffset: number; valueOffset: number; encapsulated: boolean; fragments?: number; fragmentLengths?: number[] };
  orthancPixelDataOffset?: number;
}

/** What pydicom 2.3.1 reads from each corpus file, and Orthanc 1.10.1's PixelDataOffset (see fixtures/dicom/README.md). */
const EXPECTED = (
  JSON.parse(readFileSync(new URL('../fixtures/dicom/corpus-expected.json', import.meta.url), 'utf8')) as {
    files: Record<string, CorpusExpectation>;
  }
).files;

function corpusBytes(name: string): Buffer {
  return readFileSync(join(PYDICOM_DATA, name.includes('/') ? name : `test_files/${name}`));
}

function read(name: string, options?: Parameters<typeof readPart10>[1]): ParsedDicom {
  return readPart10(corpusBytes(name), options);
}

function tag(keyword: string): number {
  const t = tagFromKeywordOrString(keyword);
  if (t === undefined) throw new Error(`unknown keyword ${keyword}`);
  return t;
}

/** A dataset's value in the shape pydicom gives it: numbers for binary numbers, IS and DS; strings otherwise. */
function valueLikePydicom(ds: DataSet, keyword: string, sample: unknown): unknown {
  const t = tag(keyword);
  const el = ds.get(t);
  if (!el) return undefined;
  if (typeof sample === 'number') return ds.number(t);
  if (Array.isArray(sample)) return typeof sample[0] === 'number' ? ds.numbers(t) : ds.strings(t);
  let text = ds.text(t) ?? '';
  // pydicom drops empty trailing PN component groups ("Wang^XiaoDong=王^小東=" -> "Wang^XiaoDong=王^小東").
  if (el.vr === 'PN') text = text.replace(/=+$/, '');
  // A value sent as UN keeps its padding in the dataset (Element.fromUN); pydicom strips it.
  if (el.fromUN) text = text.replace(/[ \0]+$/, '');
  return text;
}

/** Deterministic pseudo-random bytes (mulberry32). */
function randomBytes(seed: number, length: number): Buffer {
  let a = seed >>> 0;
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) & 0xff;
  }
  return out;
}

function hasDcmdump(): boolean {
  return spawnSync('dcmdump', ['--version'], { encoding: 'utf8' }).status === 0;
}

/** Runs DCMTK's dcmdump on bytes; returns its exit status and everything it printed as a warning or an error. */
function dcmdump(bytes: Buffer): { status: number | null; problems: string[]; stdout: string } {
  const dir = mkdtempSync(join(tmpdir(), 'pacsnode-dcmdump-'));
  try {
    const file = join(dir, 'test.dcm');
    writeFileSync(file, bytes);
    const run = spawnSync('dcmdump', ['+L', '+U8', file], { encoding: 'utf8' });
    const problems = `${run.stdout}\n${run.stderr}`.split('\n').filter((l) => /^[WEF]: /.test(l));
    return { status: run.status, problems, stdout: run.stdout };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('dicom reader', () => {
  describe("pydicom's test corpus (python3-pydicom; this suite is skipped only when its data directory is missing)", function () {
    before(function () {
      if (!existsSync(join(PYDICOM_DATA, 'test_files'))) this.skip();
    });

    // Files every reader rejects: no_meta.dcm has a stray byte before its first element (DCMTK fails on it too).
    const REJECTED = new Set(['test_files/no_meta.dcm']);
    // Files that end inside an element.
    const TRUNCATED = new Set(['test_files/MR_truncated.dcm', 'test_files/rtplan_truncated.dcm']);

    for (const [name, expected] of Object.entries(EXPECTED)) {
      if (REJECTED.has(name)) continue;
      it(`${name} reads as pydicom reads it`, () => {
        const parsed = read(name);
        const ds = parsed.dataset;
        expect(parsed.hasMetaHeader, 'meta header').to.equal(expected.hasMetaHeader);
        if (expected.metaTransferSyntax) expect(parsed.transferSyntaxUid).to.equal(expected.metaTransferSyntax);
        expect(ds.explicitVr, 'explicit VR').to.equal(expected.explicitVr);
        expect(ds.littleEndian, 'little endian').to.equal(expected.littleEndian);
        expect(parsed.truncated, 'truncated').to.equal(TRUNCATED.has(name));
        if (!TRUNCATED.has(name)) expect(ds.elements.size, 'top-level elements').to.equal(expected.elementCount);
        for (const [keyword, value] of Object.entries(expected.values)) {
          expect(valueLikePydicom(ds, keyword, value), keyword).to.deep.equal(value);
        }
        const pixel = ds.get(Tags.PixelData);
        if (!expected.pixelData) {
          expect(pixel, 'pixel data').to.equal(undefined);
          expect(parsed.pixelDataOffset).to.equal(undefined);
          return;
        }
        expect(pixel, 'pixel data').to.not.equal(undefined);
        if (parsed.transferSyntaxUid === DeflatedExplicitVRLittleEndian) {
          // Offsets in a deflated file do not point into the file: none is given (Orthanc records none either).
          expect(parsed.pixelDataOffset).to.equal(undefined);
        } else {
          expect(parsed.pixelDataOffset, 'pixel data offset').to.equal(expected.pixelData.headerOffset);
          expect(pixel!.offset, 'pixel data value offset').to.equal(expected.pixelData.valueOffset);
        }
        if (expected.orthancPixelDataOffset !== undefined) {
          expect(parsed.pixelDataOffset, "Orthanc's PixelDataOffset").to.equal(expected.orthancPixelDataOffset);
        }
        if (expected.pixelData.encapsulated) {
          expect(pixel!.fragments?.map((f) => f.length), 'fragments').to.deep.equal(expected.pixelData.fragmentLengths);
          expect(pixel!.offsetTable, 'Basic Offset Table item').to.not.equal(undefined);
        } else {
          expect(pixel!.fragments).to.equal(undefined);
        }
      });
    }

    it('no_meta.dcm (a stray byte before the first element) is rejected, as DCMTK rejects it', () => {
      expect(() => read('no_meta.dcm')).to.throw(DicomFormatError);
      if (hasDcmdump()) expect(dcmdump(corpusBytes('no_meta.dcm')).status).to.not.equal(0);
    });

    it('reads the same values from implicit LE, explicit LE and explicit BE encodings of one dataset', () => {
      const reference = read('MR_small.dcm').dataset;
      for (const name of ['MR_small_implicit.dcm', 'MR_small_bigendian.dcm', 'MR_small_expb.dcm']) {
        const ds = read(name).dataset;
        let compared = 0;
        for (const [t, el] of ds.elements) {
          const ref = reference.get(t);
          if (!ref || t === Tags.PixelData || t >>> 16 === 0x0002 || el.items) continue;
          expect(el.vr, `${name} ${t.toString(16)}`).to.equal(ref.vr);
          if (STRING_VRS.has(el.vr)) expect(ds.strings(t), `${name} ${t.toString(16)}`).to.deep.equal(reference.strings(t));
          else if (isNumericVr(el.vr) || el.vr === 'AT') {
            expect(ds.numbers(t), `${name} ${t.toString(16)}`).to.deep.equal(reference.numbers(t));
            expect(ds.elementTags(el), `${name} ${t.toString(16)}`).to.deep.equal(reference.elementTags(ref));
          } else continue;
          compared++;
        }
        expect(compared, name).to.be.greaterThan(50);
      }
    });

    it('decodes binary numbers of explicit big endian files in big endian', () => {
      const parsed = read('ExplVR_BigEnd.dcm');
      const ds = parsed.dataset;
      expect(parsed.transferSyntaxUid).to.equal(ExplicitVRBigEndian);
      expect(ds.littleEndian).to.equal(false);
      expect(ds.raw(Tags.Rows)).to.deep.equal(Buffer.from([0x00, 0x3c]));
      expect(ds.number(Tags.Rows)).to.equal(60);
      expect(ds.number(Tags.Columns)).to.equal(80);
      expect(ds.number(Tags.SamplesPerPixel)).to.equal(3);
      const dose = read('rtdose_expb.dcm').dataset;
      expect(dose.numbers(Tags.BitsAllocated)).to.deep.equal([32]);
      expect(dose.numbers(tag('GridFrameOffsetVector')).slice(0, 3)).to.deep.equal([0, 5, 10]);
      // Pixel data stays as stored: the first 32-bit big endian sample.
      const implicitDose = read('rtdose.dcm').dataset;
      const bePixels = dose.raw(Tags.PixelData)!;
      const lePixels = implicitDose.raw(Tags.PixelData)!;
      expect(bePixels.readUInt32BE(0)).to.equal(lePixels.readUInt32LE(0));
    });

    it('inflates a deflated dataset (image_dfl.dcm)', () => {
      const input = corpusBytes('image_dfl.dcm');
      const parsed = readPart10(input);
      expect(parsed.transferSyntaxUid).to.equal(DeflatedExplicitVRLittleEndian);
      expect(parsed.bytes.length).to.be.greaterThan(input.length);
      expect(parsed.dataset.number(Tags.Rows)).to.equal(512);
      expect(parsed.dataset.number(Tags.Columns)).to.equal(512);
      expect(parsed.dataset.raw(Tags.PixelData)!.length).to.equal(512 * 512);
      expect(parsed.dataset.string(Tags.Modality)).to.equal('OT');
    });

    it('finds the fragments of encapsulated pixel data, one per frame for RLE', () => {
      const j2k = read('JPEG2000.dcm').dataset.get(Tags.PixelData)!;
      expect(j2k.fragments).to.have.length(1);
      // The J2K codestream starts with its SOC marker.
      expect(read('JPEG2000.dcm').bytes.readUInt16BE(j2k.fragments![0]!.offset)).to.equal(0xff4f);
      const jpeg = read('JPGExtended.dcm');
      expect(jpeg.bytes.readUInt16BE(jpeg.dataset.get(Tags.PixelData)!.fragments![0]!.offset)).to.equal(0xffd8);
      for (const name of ['SC_rgb_rle_2frame.dcm', 'SC_rgb_rle_32bit_2frame.dcm', 'rtdose_rle.dcm']) {
        const ds = read(name).dataset;
        const frames = ds.number(Tags.NumberOfFrames)!;
        expect(frames, name).to.be.greaterThan(1);
        expect(ds.get(Tags.PixelData)!.fragments, name).to.have.length(frames);
      }
      // Bytes equal to a Sequence Delimitation Item inside a fragment do not end the pixel data.
      const embedded = read('JPEG2000-embedded-sequence-delimiter.dcm').dataset.get(Tags.PixelData)!;
      expect(embedded.fragments!.map((f) => f.length)).to.deep.equal(j2k.fragments!.map((f) => f.length));
    });

    it('reads native multi-frame pixel data whole (rtdose.dcm: 15 frames of 10x10x32 bits)', () => {
      const ds = read('rtdose.dcm').dataset;
      expect(ds.number(Tags.NumberOfFrames)).to.equal(15);
      expect(ds.raw(Tags.PixelData)!.length).to.equal(15 * 10 * 10 * 4);
      expect(ds.numbers(tag('GridFrameOffsetVector'))).to.have.length(15);
      expect(ds.string(tag('DoseGridScaling'))).to.equal('1.0000000e-6');
      expect(ds.items(tag('ReferencedRTPlanSequence'))[0]!.string(Tags.ReferencedSOPInstanceUID)).to.equal(
        '1.2.123.456.78.9.0123.4567.89012345678901',
      );
    });

    it('walks the nested content tree of an SR (test-SR.dcm)', () => {
      const ds = read('test-SR.dcm').dataset;
      const ContentSequence = tag('ContentSequence');
      const ValueType = tag('ValueType');
      let total = 0;
      let depth = 0;
      const texts: string[] = [];
      const types: Record<string, number> = {};
      const walk = (items: DataSet[], level: number): void => {
        for (const item of items) {
          total++;
          depth = Math.max(depth, level);
          const type = item.string(ValueType) ?? '-';
          types[type] = (types[type] ?? 0) + 1;
          if (type === 'TEXT') texts.push(item.text(tag('TextValue'))!);
          walk(item.items(ContentSequence), level + 1);
        }
      };
      walk(ds.items(ContentSequence), 1);
      // pydicom 2.3.1 finds the same tree.
      expect(total).to.equal(28);
      expect(depth).to.equal(4);
      expect(types).to.deep.equal({
        UIDREF: 1, CONTAINER: 2, TEXT: 7, CODE: 5, NUM: 2, SCOORD: 1, TCOORD: 1, '-': 2, COMPOSITE: 1, DATE: 1,
        TIME: 1, DATETIME: 1, IMAGE: 2, WAVEFORM: 1,
      });
      expect(texts.slice(0, 3)).to.deep.equal(['A mass of', 'was detected.', 'A mass of']);
      const title = ds.items(tag('ConceptNameCodeSequence'))[0]!;
      expect(title.string(tag('CodeMeaning'))).to.equal('Diagnosis');
    });

    it('reads RT objects: plan, structure set (no meta header), dose', () => {
      const plan = read('rtplan.dcm').dataset;
      const beams = plan.items(tag('BeamSequence'));
      expect(beams).to.have.length(1);
      expect(beams[0]!.string(tag('BeamName'))).to.equal('Field 1');
      const controlPoints = beams[0]!.items(tag('ControlPointSequence'));
      expect(controlPoints).to.have.length(2);
      expect(controlPoints[0]!.number(tag('NominalBeamEnergy'))).to.equal(6);
      const jaws = controlPoints[0]!.items(tag('BeamLimitingDevicePositionSequence'))[0]!;
      expect(jaws.numbers(tag('LeafJawPositions'))).to.deep.equal([-100, 100]);
      const fraction = plan.items(tag('FractionGroupSequence'))[0]!;
      expect(fraction.items(tag('ReferencedBeamSequence'))[0]!.string(tag('BeamMeterset'))).to.equal('116.003669700000');

      const struct = read('rtstruct.dcm');
      expect(struct.hasMetaHeader).to.equal(false);
      expect(struct.transferSyntaxUid).to.equal(ImplicitVRLittleEndian);
      const rois = struct.dataset.items(tag('ROIContourSequence'));
      expect(rois.map((r) => r.items(tag('ContourSequence')).length)).to.deep.equal([3, 1, 1]);
      let points = 0;
      for (const roi of rois) for (const c of roi.items(tag('ContourSequence'))) points += c.numbers(tag('ContourData')).length;
      expect(points).to.equal(57);
      const first = rois[0]!.items(tag('ContourSequence'))[0]!;
      expect(first.numbers(tag('ContourData')).slice(0, 3)).to.deep.equal([-200, 150, -200]);
      expect(first.number(tag('NumberOfContourPoints'))).to.equal(5);
      expect(struct.dataset.items(tag('StructureSetROISequence')).map((s) => s.string(tag('ROIName')))).to.deep.equal([
        'patient', 'Isocenter 1', 'Isocenter 2',
      ]);
    });

    it('reads files without a meta header in the syntax their first element shows', () => {
      const cases: Array<[string, string]> = [
        ['ExplVR_BigEndNoMeta.dcm', ExplicitVRBigEndian],
        ['ExplVR_LitEndNoMeta.dcm', ExplicitVRLittleEndian],
        ['rtstruct.dcm', ImplicitVRLittleEndian],
      ];
      for (const [name, ts] of cases) {
        const parsed = read(name);
        expect(parsed.hasMetaHeader, name).to.equal(false);
        expect(parsed.meta.elements.size, name).to.equal(0);
        expect(parsed.datasetOffset, name).to.equal(0);
        expect(parsed.transferSyntaxUid, name).to.equal(ts);
      }
      const be = read('ExplVR_BigEndNoMeta.dcm').dataset;
      const le = read('ExplVR_LitEndNoMeta.dcm').dataset;
      expect(be.string(Tags.SOPInstanceUID)).to.equal('1.2.333.4444.5.6.7.8');
      for (const [t] of le.elements) expect(be.strings(t), t.toString(16)).to.deep.equal(le.strings(t));
    });

    it('reads a dataset written implicit under a meta header that says explicit (SC_rgb_jpeg.dcm)', () => {
      const parsed = read('SC_rgb_jpeg.dcm');
      expect(parsed.transferSyntaxUid).to.equal('1.2.840.10008.1.2.4.50');
      expect(parsed.dataset.explicitVr).to.equal(false);
      expect(parsed.dataset.number(Tags.Rows)).to.equal(256);
      expect(parsed.dataset.number(Tags.SamplesPerPixel)).to.equal(3);
      const pixel = parsed.dataset.get(Tags.PixelData)!;
      expect(pixel.fragments!.map((f) => f.length)).to.deep.equal([3498]);
      expect(parsed.bytes.readUInt16BE(pixel.fragments![0]!.offset)).to.equal(0xffd8);
      expect(parsed.pixelDataOffset).to.equal(934);
    });

    it('reads public tags sent as UN with their dictionary VR (rtdose_rle.dcm)', () => {
      const ds = read('rtdose_rle.dcm').dataset;
      const name = ds.get(Tags.PatientName)!;
      expect(name.vr).to.equal('PN');
      expect(name.fromUN).to.equal(true);
      expect(ds.text(Tags.PatientName)).to.equal('Lastname^Firstname');
      expect(ds.get(Tags.SOPInstanceUID)!.vr).to.equal('UI');
      expect(ds.string(Tags.SOPInstanceUID)).to.equal('1.9.999.999.99.9.9999.9999.20030818153516');
      const pointer = ds.get(tag('FrameIncrementPointer'))!;
      expect(pointer.vr).to.equal('AT');
      expect(ds.elementTags(pointer)).to.deep.equal([tag('GridFrameOffsetVector')]);
      expect(ds.numbers(tag('ImageOrientationPatient'))).to.deep.equal([1, 0, 0, 0, 1, 0]);
      // A sequence sent as UN with a defined length stays UN (its items are implicit VR: no safe way to read them).
      expect(ds.get(tag('ReferencedRTPlanSequence'))!.vr).to.equal('UN');
    });

    it('keeps what was readable of truncated files', () => {
      const mr = read('MR_truncated.dcm');
      expect(mr.truncated).to.equal(true);
      const complete = read('MR_small.dcm').dataset;
      expect(mr.dataset.elements.size).to.equal(EXPECTED['test_files/MR_truncated.dcm']!.elementCount);
      expect(mr.dataset.string(Tags.SOPInstanceUID)).to.equal(complete.string(Tags.SOPInstanceUID));
      const pixel = mr.dataset.get(Tags.PixelData)!;
      // The pixel data is cut: its length is what the file holds, and the warnings say so.
      expect(pixel.offset + pixel.length).to.equal(mr.bytes.length);
      expect(pixel.length).to.be.lessThan(complete.get(Tags.PixelData)!.length);
      expect(mr.warnings.join('\n')).to.match(/truncated/);

      const plan = read('rtplan_truncated.dcm');
      const full = read('rtplan.dcm').dataset;
      expect(plan.truncated).to.equal(true);
      // Every element read whole is kept, with the values of the complete file. The Beam Sequence, cut inside its
      // item, is dropped (pydicom keeps it with a partial item: 32 elements).
      expect(plan.dataset.elements.size).to.equal(31);
      for (const [t, el] of plan.dataset.elements) {
        expect(full.has(t), t.toString(16)).to.equal(true);
        if (!el.items) expect(plan.dataset.strings(t), t.toString(16)).to.deep.equal(full.strings(t));
      }
      expect(plan.dataset.items(tag('FractionGroupSequence'))).to.have.length(1);
      expect(plan.dataset.has(tag('BeamSequence'))).to.equal(false);
      expect(plan.dataset.string(Tags.PatientName)).to.equal('Last^First^mid^pre');
    });

    it('pixelDataOffset is Orthanc\'s PixelDataOffset (CT_small.dcm: 6288)', () => {
      const parsed = read('CT_small.dcm');
      expect(parsed.pixelDataOffset).to.equal(6288);
      // The header there is (7FE0,0010) OW with a 4-byte length.
      expect(parsed.bytes.readUInt32LE(6288)).to.equal(0x00107fe0);
      expect(parsed.bytes.toString('latin1', 6292, 6294)).to.equal('OW');
      expect(parsed.pixelDataEnd).to.equal(6288 + 12 + 128 * 128 * 2);
    });

    it('in partial mode throws NeedMoreBytes for a prefix and reads the whole file', () => {
      const bytes = corpusBytes('CT_small.dcm');
      for (const length of [0, 10, 128, 131, 140, 400, 3000, 6290, bytes.length - 1]) {
        expect(() => readPart10(bytes.subarray(0, length), { partial: true }), `prefix ${length}`).to.throw(NeedMoreBytes);
      }
      // Also when the prefix ends exactly between two elements (in CT_small, at 384, 400 and 414 bytes).
      for (const length of [384, 400, 414]) {
        expect(() => readPart10(bytes.subarray(0, length), { partial: true, untilPixelData: true }), `prefix ${length}`).to.throw(
          NeedMoreBytes,
        );
      }
      // A prefix is never the whole dataset, unless it reaches the pixel data and the caller stops there.
      expect(() => readPart10(bytes, { partial: true })).to.throw(NeedMoreBytes);
      const head = readPart10(bytes, { partial: true, untilPixelData: true });
      expect(head.truncated).to.equal(false);
      // Everything but the Data Set Trailing Padding after the pixel data.
      expect(head.dataset.elements.size).to.equal(EXPECTED['test_files/CT_small.dcm']!.elementCount - 1);
      expect(head.dataset.has(0xfffcfffc)).to.equal(false);
      // An implicit VR file without pixel data: complete only when the caller says so.
      const implicit = corpusBytes('rtplan.dcm');
      expect(() => readPart10(implicit.subarray(0, 1500), { partial: true, untilPixelData: true })).to.throw(NeedMoreBytes);
      expect(() => readPart10(implicit, { partial: true, untilPixelData: true })).to.throw(NeedMoreBytes);
      expect(readPart10(implicit, { untilPixelData: true }).dataset.elements.size).to.equal(36);
    });

    it('untilPixelData stops at the pixel data header', () => {
      const bytes = corpusBytes('MR_small.dcm');
      const full = readPart10(bytes);
      const head = readPart10(bytes, { untilPixelData: true });
      expect(head.pixelDataOffset).to.equal(full.pixelDataOffset);
      expect(head.dataset.get(Tags.PixelData)!.length).to.equal(0);
      // MR_small has Data Set Trailing Padding after the pixel data: not read.
      expect(full.dataset.has(0xfffcfffc)).to.equal(true);
      expect(head.dataset.has(0xfffcfffc)).to.equal(false);
      expect(head.dataset.elements.size).to.equal(full.dataset.elements.size - 1);
      // A prefix that ends right after the pixel data header is enough, even in partial mode.
      const prefix = bytes.subarray(0, full.pixelDataOffset! + 12);
      const partial = readPart10(prefix, { untilPixelData: true, partial: true });
      expect(partial.dataset.string(Tags.SOPInstanceUID)).to.equal(full.dataset.string(Tags.SOPInstanceUID));
      expect(partial.pixelDataOffset).to.equal(full.pixelDataOffset);
      expect(partial.truncated).to.equal(false);
    });

    it('reads every charset file of the corpus and decodes PatientName', () => {
      const names = Object.keys(EXPECTED).filter((n) => n.startsWith('charset_files/'));
      expect(names.length).to.be.greaterThan(15);
      const expectedNames: Record<string, string> = {
        'charset_files/chrH31.dcm': 'Yamada^Tarou=山田^太郎=やまだ^たろう',
        'charset_files/chrX1.dcm': 'Wang^XiaoDong=王^小東',
        'charset_files/chrRuss.dcm': 'Люкceмбypг',
        'charset_files/chrGreek.dcm': 'Διονυσιος',
        'charset_files/chrKoreanMulti.dcm': '김희중',
      };
      for (const name of names) {
        const parsed = read(name);
        const wanted = EXPECTED[name]!.values.PatientName;
        if (wanted === undefined) continue;
        expect(valueLikePydicom(parsed.dataset, 'PatientName', wanted), name).to.equal(wanted);
        if (expectedNames[name]) expect(wanted, name).to.equal(expectedNames[name]);
      }
    });
  });

  it("part10DatasetOffset: where the dataset starts, as readPart10 finds it, for a file with a DICM prefix, a meta group alone, a bare dataset", () => {
    const dataset = encodeDataset(
      [
        { tag: Tags.SOPClassUID, vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.7' },
        { tag: Tags.SOPInstanceUID, vr: 'UI', value: '1.2.3.4.5' },
        { tag: Tags.PatientName, vr: 'PN', value: 'OFFSET^TEST' },
      ],
      { explicitVr: true, littleEndian: true },
    );
    const meta = buildMetaHeader({ sopClassUid: '1.2.840.10008.5.1.4.1.1.7', sopInstanceUid: '1.2.3.4.5', transferSyntaxUid: '1.2.840.10008.1.2.1' });
    const file = Buffer.concat([meta, dataset]);
    expect(part10DatasetOffset(file)).to.equal(readPart10(file).datasetOffset).and.to.equal(meta.length);
    const metaAlone = file.subarray(132);
    expect(part10DatasetOffset(metaAlone)).to.equal(readPart10(metaAlone).datasetOffset).and.to.equal(meta.length - 132);
    expect(part10DatasetOffset(dataset)).to.equal(0);
    if (existsSync(PYDICOM_DATA)) {
      for (const name of ['CT_small.dcm', 'MR_small_bigendian.dcm', 'JPEG2000.dcm']) {
        const bytes = readFileSync(join(PYDICOM_DATA, 'test_files', name));
        expect(part10DatasetOffset(bytes), name).to.equal(readPart10(bytes).datasetOffset);
      }
    }
  });

  describe('rejection', () => {
    it('rejects random bytes with DicomFormatError', () => {
      for (let seed = 1; seed <= 200; seed++) {
        const bytes = randomBytes(seed, 64 + ((seed * 37) % 4000));
        expect(() => readPart10(bytes), `seed ${seed}`).to.throw(DicomFormatError);
      }
    });

    it('rejects empty input, a DICM prefix without meta header and a bad meta header', () => {
      expect(() => readPart10(Buffer.alloc(0))).to.throw(DicomFormatError);
      const prefixOnly = Buffer.alloc(132);
      prefixOnly.write('DICM', 128, 'latin1');
      expect(() => readPart10(prefixOnly)).to.throw(DicomFormatError);
      const garbage = Buffer.concat([prefixOnly, randomBytes(7, 300)]);
      expect(() => readPart10(garbage)).to.throw(DicomFormatError);
      const text = Buffer.from('This is not a DICOM file, only some text.\n'.repeat(10));
      expect(() => readPart10(text)).to.throw(DicomFormatError);
    });
  });
});

describe('dicom dictionary', () => {
  it('looks up tags and keywords', () => {
    const entry = lookupTag(0x00100010)!;
    expect(entry).to.include({ tag: 0x00100010, vr: 'PN', vm: '1', keyword: 'PatientName', retired: false });
    expect(keywordOf(0x0020000d)).to.equal('StudyInstanceUID');
    expect(vrOf(0x00280010)).to.equal('US');
    expect(tagFromKeywordOrString('PatientName')).to.equal(0x00100010);
    expect(tagFromKeywordOrString('0010,0010')).to.equal(0x00100010);
    expect(tagFromKeywordOrString('(0010,0020)')).to.equal(0x00100020);
    expect(tagFromKeywordOrString('0020000D')).to.equal(0x0020000d);
    expect(tagFromKeywordOrString('NoSuchKeyword')).to.equal(undefined);
    expect(lookupTag(0x00080017)).to.include({ keyword: 'AcquisitionUID', vr: 'UI' });
  });

  it('knows retired attributes by their RETIRED_ keyword and their plain name', () => {
    const entry = lookupTag(0x00080010)!;
    expect(entry.retired).to.equal(true);
    expect(entry.keyword).to.equal('RETIRED_RecognitionCode');
    expect(tagFromKeywordOrString('RETIRED_RecognitionCode')).to.equal(0x00080010);
    expect(tagFromKeywordOrString('RecognitionCode')).to.equal(0x00080010);
  });

  it('resolves ambiguous VRs to the usual choice and keeps the PS3.6 one', () => {
    expect(lookupTag(Tags.PixelData)).to.include({ vr: 'OW', rawVr: 'ox' });
    expect(lookupTag(0x00280106)).to.include({ keyword: 'SmallestImagePixelValue', vr: 'US', rawVr: 'xs' });
    expect(lookupTag(0x00281201)).to.include({ vr: 'OW' });
    expect(lookupTag(Tags.Item)).to.include({ keyword: 'Item', vr: 'UN', rawVr: 'na' });
  });

  it('follows repeating groups 50xx, 60xx and 7Fxx', () => {
    for (const group of [0x6000, 0x6002, 0x601e]) {
      const rows = lookupTag(((group << 16) | 0x0010) >>> 0)!;
      expect(rows).to.include({ keyword: 'OverlayRows', vr: 'US', tag: ((group << 16) | 0x0010) >>> 0 });
      expect(lookupTag(((group << 16) | 0x3000) >>> 0)).to.include({ keyword: 'OverlayData', vr: 'OW' });
    }
    expect(lookupTag(0x50100005)).to.include({ keyword: 'RETIRED_CurveDimensions', tag: 0x50100005 });
    expect(lookupTag(0x7f020010)).to.include({ keyword: 'RETIRED_VariablePixelData' });
    // Odd groups are private, not overlays.
    expect(lookupTag(0x60010010)).to.equal(undefined);
    expect(vrOf(0x60010010)).to.equal('LO');
  });

  it('gives group lengths UL, public only', () => {
    expect(lookupTag(0x00080000)).to.include({ keyword: 'GenericGroupLength', vr: 'UL' });
    expect(lookupTag(0x00020000)).to.include({ keyword: 'FileMetaInformationGroupLength', vr: 'UL' });
    expect(lookupTag(0x00090000)).to.equal(undefined);
  });

  it('knows private creators as LO and nothing else of private groups', () => {
    expect(vrOf(0x00090010)).to.equal('LO');
    expect(vrOf(0x001900ff)).to.equal('LO');
    expect(vrOf(0x00091001)).to.equal('UN');
    expect(vrOf(0x00290100)).to.equal('UN');
    expect(keywordOf(0x00091001)).to.equal(undefined);
    expect(keywordOf(0x00090010)).to.equal(undefined);
  });

  it('carries the corrections to the generated table (checked against DCMTK 3.6.7 and pydicom 2.3.1)', () => {
    expect(lookupTag(0x00760034)).to.include({ keyword: 'ComponentTypeCodeSequence', vr: 'SQ' });
    expect(lookupTag(0x006862f0)).to.include({ keyword: 'ViewOrientationModifierCodeSequence', vr: 'SQ' });
    expect(lookupTag(0x00660040)).to.include({ keyword: 'LongPrimitivePointIndexList', vr: 'OL' });
    expect(lookupTag(0x0070150c)).to.include({ vr: 'UL' });
    expect(lookupTag(0x0040a803)).to.include({ keyword: 'NumberOfTableColumns' });
    expect(tagFromKeywordOrString('NumbeOfTableColumns')).to.equal(undefined);
    expect(lookupTag(0x300a0082)).to.include({ keyword: 'RETIRED_BeamDoseSpecificationPoint', retired: true });
    expect(tagFromKeywordOrString('BeamDoseSpecificationPoint')).to.equal(0x300a0082);
    expect(lookupTag(0x00020026)).to.include({ keyword: 'SourcePresentationAddress', vr: 'UR' });
    // Orthanc indexes (0010,1000) and names it without the prefix: so does pacsnode.
    expect(lookupTag(Tags.OtherPatientIDs)).to.include({ keyword: 'OtherPatientIDs', retired: false });
  });
});

// ------------------------------------------------------------------ writer

const SOP_CLASS = '1.2.840.10008.5.1.4.1.1.7';
const SOP_INSTANCE = '1.2.826.0.1.3680043.10.1467.9.1';

/** One element of every VR, public tags whose dictionary VR is the one written (so implicit VR reads them back). */
function everyVr(): WriteElement[] {
  return [
    { tag: 0x00080005, vr: 'CS', value: 'ISO_IR 100' },
    { tag: 0x00080016, vr: 'UI', value: SOP_CLASS },
    { tag: 0x00080018, vr: 'UI', value: SOP_INSTANCE },
    { tag: 0x00080020, vr: 'DA', value: '20240131' },
    { tag: 0x0008002a, vr: 'DT', value: '20240131101500.123456+0100' },
    { tag: 0x00080030, vr: 'TM', value: '101500.5' },
    { tag: 0x00080050, vr: 'SH', value: 'ODD' },
    { tag: 0x00080054, vr: 'AE', value: ['STORESCP', 'ARCHIVE'] },
    { tag: 0x00080060, vr: 'CS', value: 'OT' },
    { tag: 0x00080081, vr: 'ST', value: 'Rue de l\'Hôpital 1\\ Liège' },
    { tag: 0x0008010e, vr: 'UR', value: 'http://example.org/scheme' },
    { tag: 0x00080119, vr: 'UC', value: 'a long code value' },
    { tag: 0x00081140, vr: 'SQ', value: [
      [
        { tag: 0x00081150, vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.2' },
        { tag: 0x00081155, vr: 'UI', value: '1.2.3' },
        { tag: 0x0040a170, vr: 'SQ', value: [
          [{ tag: 0x00080100, vr: 'SH', value: '121311' }, { tag: 0x00080104, vr: 'LO', value: 'Localizer' }],
          [],
        ] },
      ],
      [{ tag: 0x00081155, vr: 'UI', value: '1.2.3.4' }],
    ] },
    { tag: 0x00081115, vr: 'SQ', value: [] },
    { tag: 0x00090010, vr: 'LO', value: 'PACSNODE' },
    { tag: 0x00091001, vr: 'UN', value: Buffer.from([1, 2, 3, 4, 5, 6]) },
    { tag: 0x00100010, vr: 'PN', value: 'Müller^Jürgen' },
    { tag: 0x00100020, vr: 'LO', value: 'PID-1' },
    { tag: 0x00101010, vr: 'AS', value: '042Y' },
    { tag: 0x00109431, vr: 'FL', value: [0.5, -1.25] },
    { tag: 0x001021b0, vr: 'LT', value: 'Line one\r\nLine two' },
    { tag: 0x00180050, vr: 'DS', value: ['1.5', '-2e3'] },
    { tag: 0x00186020, vr: 'SL', value: [-2147483648, 2147483647] },
    { tag: 0x00189087, vr: 'FD', value: [Math.PI, -1e-300] },
    { tag: 0x00189219, vr: 'SS', value: [-32768, 32767] },
    { tag: 0x00200013, vr: 'IS', value: '12345' },
    { tag: 0x00280009, vr: 'AT', value: [0x00181063, 0x00181065] },
    { tag: 0x00280010, vr: 'US', value: [0x0102] },
    { tag: 0x00281201, vr: 'OW', value: Buffer.from([0x10, 0x20, 0x30, 0x40]) },
    { tag: 0x0040a160, vr: 'UT', value: 'Unlimited text with a \\ backslash' },
    { tag: 0x00420011, vr: 'OB', value: Buffer.from([0x25, 0x50, 0x44]) },
    { tag: 0x00660016, vr: 'OF', value: Buffer.alloc(8, 1) },
    { tag: 0x00660129, vr: 'OL', value: Buffer.alloc(8, 2) },
    { tag: 0x00720073, vr: 'OD', value: Buffer.alloc(16, 3) },
    { tag: 0x00720078, vr: 'UL', value: [4294967295, 1] },
    { tag: 0x00720081, vr: 'OV', value: Buffer.alloc(8, 4) },
    { tag: 0x00720082, vr: 'SV', value: [-9007199254740991, 5] },
    { tag: 0x00720083, vr: 'UV', value: [9007199254740991] },
  ];
}

const SYNTAXES: Array<[string, string]> = [
  ['explicit VR little endian', ExplicitVRLittleEndian],
  ['implicit VR little endian', ImplicitVRLittleEndian],
  ['explicit VR big endian', ExplicitVRBigEndian],
];

describe('dicom writer', () => {
  for (const [label, ts] of SYNTAXES) {
    describe(label, () => {
      const bytes = encodePart10(everyVr(), { sopClassUid: SOP_CLASS, sopInstanceUid: SOP_INSTANCE, transferSyntaxUid: ts }, {
        specificCharacterSet: 'ISO_IR 100',
      });
      const parsed = readPart10(bytes);
      const ds = parsed.dataset;

      it('reads back what was written, VR by VR', () => {
        expect(parsed.transferSyntaxUid).to.equal(ts);
        expect(parsed.truncated).to.equal(false);
        expect(parsed.warnings).to.deep.equal([]);
        expect(ds.elements.size).to.equal(everyVr().length);
        const vrs = new Set<string>();
        for (const written of everyVr()) {
          const el = ds.get(written.tag)!;
          expect(el, written.tag.toString(16)).to.not.equal(undefined);
          expect(el.vr, written.tag.toString(16)).to.equal(written.vr);
          vrs.add(el.vr);
        }
        expect([...vrs].sort()).to.deep.equal([
          'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'PN',
          'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV',
        ]);
        expect(ds.string(Tags.SOPInstanceUID)).to.equal(SOP_INSTANCE);
        expect(ds.strings(0x00080054)).to.deep.equal(['STORESCP', 'ARCHIVE']);
        expect(ds.text(0x00080081)).to.equal('Rue de l\'Hôpital 1\\ Liège');
        expect(ds.text(Tags.PatientName)).to.equal('Müller^Jürgen');
        expect(ds.text(0x001021b0)).to.equal('Line one\r\nLine two');
        expect(ds.text(0x0040a160)).to.equal('Unlimited text with a \\ backslash');
        expect(ds.string(0x0008002a)).to.equal('20240131101500.123456+0100');
        expect(ds.numbers(0x00180050)).to.deep.equal([1.5, -2000]);
        expect(ds.numbers(0x00200013)).to.deep.equal([12345]);
        expect(ds.numbers(0x00109431)).to.deep.equal([0.5, -1.25]);
        expect(ds.numbers(0x00186020)).to.deep.equal([-2147483648, 2147483647]);
        expect(ds.numbers(0x00189087)).to.deep.equal([Math.PI, -1e-300]);
        expect(ds.numbers(0x00189219)).to.deep.equal([-32768, 32767]);
        expect(ds.numbers(Tags.Rows)).to.deep.equal([0x0102]);
        expect(ds.numbers(0x00720078)).to.deep.equal([4294967295, 1]);
        expect(ds.numbers(0x00720082)).to.deep.equal([-9007199254740991, 5]);
        expect(ds.numbers(0x00720083)).to.deep.equal([9007199254740991]);
        expect(ds.elementTags(ds.get(0x00280009)!)).to.deep.equal([0x00181063, 0x00181065]);
        expect(ds.raw(0x00281201)).to.deep.equal(Buffer.from([0x10, 0x20, 0x30, 0x40]));
        expect(ds.raw(0x00660016)).to.deep.equal(Buffer.alloc(8, 1));
        expect(ds.raw(0x00660129)).to.deep.equal(Buffer.alloc(8, 2));
        expect(ds.raw(0x00720073)).to.deep.equal(Buffer.alloc(16, 3));
        expect(ds.raw(0x00720081)).to.deep.equal(Buffer.alloc(8, 4));
        expect(ds.raw(0x00091001)).to.deep.equal(Buffer.from([1, 2, 3, 4, 5, 6]));
        expect(ds.string(0x00090010)).to.equal('PACSNODE');
      });

      it('writes binary numbers and AT in the syntax\'s byte order', () => {
        const le = ts !== ExplicitVRBigEndian;
        expect(ds.raw(Tags.Rows)).to.deep.equal(Buffer.from(le ? [0x02, 0x01] : [0x01, 0x02]));
        expect(ds.raw(0x00280009)!.subarray(0, 4)).to.deep.equal(Buffer.from(le ? [0x18, 0x00, 0x63, 0x10] : [0x00, 0x18, 0x10, 0x63]));
      });

      it('pads odd values: strings with a space, UI with NUL, binary with NUL', () => {
        const sh = ds.raw(0x00080050)!;
        expect(sh.length).to.equal(4);
        expect(sh[3]).to.equal(0x20);
        expect(ds.string(0x00080050)).to.equal('ODD');
        const ui = ds.raw(Tags.SOPInstanceUID)!;
        expect(SOP_INSTANCE.length % 2).to.equal(1);
        expect(ui.length).to.equal(SOP_INSTANCE.length + 1);
        expect(ui[ui.length - 1]).to.equal(0x00);
        const ob = ds.raw(0x00420011)!;
        expect(ob).to.deep.equal(Buffer.from([0x25, 0x50, 0x44, 0x00]));
        for (const [, el] of ds.elements) expect(el.length % 2, el.tag.toString(16)).to.equal(0);
      });

      it('writes sequences with nested and empty items', () => {
        const items = ds.items(0x00081140);
        expect(items).to.have.length(2);
        expect(items[0]!.string(Tags.ReferencedSOPInstanceUID)).to.equal('1.2.3');
        const codes = items[0]!.items(0x0040a170);
        expect(codes).to.have.length(2);
        expect(codes[0]!.string(0x00080104)).to.equal('Localizer');
        expect(codes[1]!.elements.size).to.equal(0);
        expect(items[1]!.string(Tags.ReferencedSOPInstanceUID)).to.equal('1.2.3.4');
        expect(ds.get(0x00081115)!.vr).to.equal('SQ');
        expect(ds.items(0x00081115)).to.deep.equal([]);
      });

      it('is accepted by DCMTK\'s dcmdump without warnings (when DCMTK is installed)', function () {
        if (!hasDcmdump()) {
          // Nothing to run: still check that the file starts as Part 10 says.
          expect(bytes.toString('latin1', 128, 132)).to.equal('DICM');
          return;
        }
        const run = dcmdump(bytes);
        expect(run.status).to.equal(0);
        expect(run.problems).to.deep.equal([]);
        expect(run.stdout).to.include('(0010,0010) PN [Müller^Jürgen]');
        expect(run.stdout).to.match(/\(0028,0010\) US 258/);
        expect(run.stdout).to.match(/\(0028,0009\) AT \(0018,1063\)\\\(0018,1065\)/);
        expect(run.stdout).to.match(/\(0072,0083\) UV 9007199254740991/);
        expect(run.stdout).to.match(/\(0040,a170\) SQ/);
      });
    });
  }

  it('builds a meta header with a correct group length and the transfer syntax', () => {
    const meta = buildMetaHeader({
      sopClassUid: SOP_CLASS, sopInstanceUid: SOP_INSTANCE, transferSyntaxUid: ImplicitVRLittleEndian, sourceAet: 'PACSNODE',
    });
    expect(meta.subarray(0, 128)).to.deep.equal(Buffer.alloc(128));
    expect(meta.toString('latin1', 128, 132)).to.equal('DICM');
    // (0002,0000) UL 4 <length of the rest of group 2>
    expect(meta.readUInt32LE(132)).to.equal(0x00000002);
    expect(meta.toString('latin1', 136, 138)).to.equal('UL');
    expect(meta.readUInt32LE(140)).to.equal(meta.length - 144);
    const parsed = readPart10(Buffer.concat([meta, encodeDataset([{ tag: Tags.SOPInstanceUID, value: SOP_INSTANCE }], {
      explicitVr: false, littleEndian: true,
    })]));
    expect(parsed.transferSyntaxUid).to.equal(ImplicitVRLittleEndian);
    expect(parsed.meta.string(Tags.MediaStorageSOPInstanceUID)).to.equal(SOP_INSTANCE);
    expect(parsed.meta.string(Tags.SourceApplicationEntityTitle)).to.equal('PACSNODE');
    expect(parsed.meta.raw(0x00020001)).to.deep.equal(Buffer.from([0, 1]));
    expect(parsed.dataset.string(Tags.SOPInstanceUID)).to.equal(SOP_INSTANCE);
  });

  it('takes the VR from the dictionary when none is given', () => {
    const body = encodeDataset([{ tag: Tags.Rows, value: [7] }, { tag: Tags.PatientName, value: 'A^B' }], {
      explicitVr: true, littleEndian: true,
    });
    // Sorted by tag: (0010,0010) PN "A^B " then (0028,0010) US.
    expect(body.toString('latin1', 4, 6)).to.equal('PN');
    expect(body.toString('latin1', 16, 18)).to.equal('US');
  });

  it('refuses a value too long for a 2-byte length', () => {
    expect(() => encodeDataset([{ tag: Tags.PatientID, vr: 'LO', value: 'x'.repeat(70000) }], { explicitVr: true, littleEndian: true })).to.throw(RangeError);
  });
});
