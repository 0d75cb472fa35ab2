/**
 * DICOMDIR (PS3.10 §8, PS3.3 Annex F: Basic Directory IOD) for the media archives (`/{level}/{id}/media`,
 * `/tools/create-media`). Records follow what Orthanc writes (through DCMTK), so media made by pacsnode read the
 * same in the tools its users know:
 *
 * - one PATIENT record per Patient ID, STUDY per Study Instance UID, SERIES per Series Instance UID and IMAGE per
 *   SOP Instance UID (the first instance seen fills the records of its parents);
 * - PATIENT: Patient's Name (type 2), Patient ID (when it has a value); STUDY: Study Date and Time (falling back
 *   on the series, acquisition, content date/time, then on now, UTC), Study Description and Accession Number
 *   (type 2), Study Instance UID, Study ID (when it has a value); SERIES: Modality, Series Instance UID, Series
 *   Number (when it has a value), and with `extended` the Series Description (type 3, hence Orthanc's "extended"
 *   DICOMDIR); IMAGE: Instance Number, Referenced File ID, Referenced SOP Class / SOP Instance / Transfer Syntax
 *   UID in File; every record: the Specific Character Set of its source, when it has a value;
 * - text values are written in ASCII: other characters are dropped, as Orthanc does;
 * - File-set ID `ORTHANC_MEDIA`, Explicit VR Little Endian, sequence and items of defined length (PS3.5 §7.5),
 *   records in depth-first order, each with its offsets (PS3.3 F.3.2.1) counted from the first byte of the file.
 */
import { DicomFormatError } from '../core/errors.js';
import type { DataSet } from './dataset.js';
import type { ParsedDicom } from './reader.js';
import { Tags, type Tag } from './tag.js';
import { ExplicitVRLittleEndian } from './transfer-syntax.js';
import { generateUid } from './uids.js';
import { buildMetaHeader, encodeDataset, type WriteElement, type WriteItem } from './writer.js';

/** Media Storage Directory Storage (PS3.4 Annex I). */
export const MEDIA_STORAGE_DIRECTORY_SOP_CLASS = '1.2.840.10008.1.3.10';

export const DicomDirTags = {
  FileSetID: 0x00041130,
  OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity: 0x00041200,
  OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity: 0x00041202,
  FileSetConsistencyFlag: 0x00041212,
  DirectoryRecordSequence: 0x00041220,
  OffsetOfTheNextDirectoryRecord: 0x00041400,
  RecordInUseFlag: 0x00041410,
  OffsetOfReferencedLowerLevelDirectoryEntity: 0x00041420,
  DirectoryRecordType: 0x00041430,
  ReferencedFileID: 0x00041500,
  ReferencedSOPClassUIDInFile: 0x00041510,
  ReferencedSOPInstanceUIDInFile: 0x00041511,
  ReferencedTransferSyntaxUIDInFile: 0x00041512,
} as const;

const T = Tags;
const D = DicomDirTags;

type RecordType = 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE';

interface DirRecord {
  type: RecordType;
  /** The record's own attributes (the offsets and record type are added when encoding). */
  elements: WriteElement[];
  children: DirRecord[];
}

export interface DicomDirOptions {
  /** Adds the type 3 attributes Orthanc adds in its "extended" DICOMDIR (Series Description). */
  extended?: boolean;
  /** File-set ID (CS, at most 16 characters); `ORTHANC_MEDIA` by default, as Orthanc. */
  fileSetId?: string;
  /** The clock used when a study has no date or time (tests). */
  now?: () => Date;
}

/** Orthanc's conversion to ASCII: characters outside printable ASCII are dropped. */
export function toAscii(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '');
}

/** Builds a DICOMDIR from the instances of a file-set, added one at a time; memory is a few records per instance. */
export class DicomDirBuilder {
  private readonly patients: DirRecord[] = [];
  /** Orthanc keys records by level and identifier across the whole file-set. */
  private readonly index = new Map<string, DirRecord>();
  private readonly extended: boolean;
  private readonly fileSetId: string;
  private readonly now: () => Date;
  private count = 0;

  constructor(options: DicomDirOptions = {}) {
    this.extended = options.extended ?? false;
    this.fileSetId = options.fileSetId ?? 'ORTHANC_MEDIA';
    this.now = options.now ?? (() => new Date());
  }

  /** Number of directory records so far. */
  get recordCount(): number {
    return this.count;
  }

  /**
   * Adds the instance stored under `fileId` (its path components, e.g. `['IMAGES', 'IM0']`). `parsed` may have
   * been read up to the pixel data only. `transferSyntaxUid` overrides the file's (when it was transcoded).
   * Returns false when an instance with this SOP Instance UID is already in the directory.
   */
  add(fileId: readonly string[], parsed: ParsedDicom, transferSyntaxUid?: string): boolean {
    const ds = parsed.dataset;
    const sopInstanceUid = ds.text(T.SOPInstanceUID);
    const studyUid = ds.text(T.StudyInstanceUID);
    const seriesUid = ds.text(T.SeriesInstanceUID);
    const sopClassUid = ds.text(T.SOPClassUID);
    const syntax = transferSyntaxUid ?? parsed.transferSyntaxUid;
    if (sopInstanceUid === undefined || studyUid === undefined || seriesUid === undefined || sopClassUid === undefined) {
      throw new DicomFormatError('a DICOMDIR record needs the SOP Class, SOP Instance, Study and Series Instance UIDs');
    }
    const imageKey = `IMAGE|${sopInstanceUid}`;
    if (this.index.has(imageKey)) return false;

    const image = this.record('IMAGE', imageKey, () => [
      type1(ds, T.InstanceNumber),
      { tag: D.ReferencedFileID, vr: 'CS', value: fileId.map(toAscii) },
      { tag: D.ReferencedSOPClassUIDInFile, vr: 'UI', value: toAscii(sopClassUid) },
      { tag: D.ReferencedSOPInstanceUIDInFile, vr: 'UI', value: toAscii(sopInstanceUid) },
      { tag: D.ReferencedTransferSyntaxUIDInFile, vr: 'UI', value: toAscii(syntax) },
      ...type1C(ds, T.SpecificCharacterSet),
    ]);

    const seriesKey = `SERIES|${seriesUid}`;
    const newSeries = !this.index.has(seriesKey);
    const series = this.record('SERIES', seriesKey, () => [
      type1(ds, T.Modality),
      type1(ds, T.SeriesInstanceUID),
      ...type1C(ds, T.SeriesNumber),
      ...(this.extended ? type3(ds, T.SeriesDescription) : []),
      ...type1C(ds, T.SpecificCharacterSet),
    ]);
    series.children.push(image);
    if (!newSeries) return true;

    const studyKey = `STUDY|${studyUid}`;
    const newStudy = !this.index.has(studyKey);
    const study = this.record('STUDY', studyKey, () => this.studyElements(ds));
    study.children.push(series);
    if (!newStudy) return true;

    const patientKey = `PATIENT|${ds.text(T.PatientID) ?? ''}`;
    const newPatient = !this.index.has(patientKey);
    const patient = this.record('PATIENT', patientKey, () => [
      ...type1C(ds, T.PatientID),
      type2(ds, T.PatientName),
      ...type1C(ds, T.SpecificCharacterSet),
    ]);
    patient.children.push(study);
    if (newPatient) this.patients.push(patient);
    return true;
  }

  /** The whole DICOMDIR file: preamble, meta header (Media Storage Directory Storage) and the directory. */
  encode(): Buffer {
    const options = { explicitVr: true, littleEndian: true };
    const flat: DirRecord[] = [];
    const walk = (records: readonly DirRecord[]) => {
      for (const r of records) {
        flat.push(r);
        walk(r.children);
      }
    };
    walk(this.patients);

    const meta = buildMetaHeader({
      sopClassUid: MEDIA_STORAGE_DIRECTORY_SOP_CLASS,
      sopInstanceUid: generateUid(),
      transferSyntaxUid: ExplicitVRLittleEndian,
    });
    const header = (first: number, last: number): WriteElement[] => [
      { tag: D.FileSetID, vr: 'CS', value: this.fileSetId },
      { tag: D.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity, vr: 'UL', value: [first] },
      { tag: D.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity, vr: 'UL', value: [last] },
      { tag: D.FileSetConsistencyFlag, vr: 'US', value: [0] },
    ];

    // Pass 1: offsets do not change lengths (UL), so positions follow from the records encoded with zeros.
    const position = new Map<DirRecord, number>();
    let at = meta.length + encodeDataset(header(0, 0), options).length + 12; // + the sequence's own header
    for (const r of flat) {
      position.set(r, at);
      at += 8 + encodeDataset(recordItem(r, 0, 0), options).length; // item header + item
    }

    // Pass 2: the records with their offsets.
    const offsetOf = (r: DirRecord | undefined) => (r ? position.get(r)! : 0);
    const items: WriteItem[] = [];
    const emit = (siblings: readonly DirRecord[]) => {
      siblings.forEach((r, i) => {
        items.push(recordItem(r, offsetOf(siblings[i + 1]), offsetOf(r.children[0])));
        emit(r.children);
      });
    };
    emit(this.patients);
    const dataset = encodeDataset(
      [
        ...header(offsetOf(this.patients[0]), offsetOf(this.patients[this.patients.length - 1])),
        { tag: D.DirectoryRecordSequence, vr: 'SQ', value: items },
      ],
      options,
    );
    const out = Buffer.concat([meta, dataset]);
    if (out.length !== at) throw new Error(`DICOMDIR layout mismatch: ${out.length} bytes, expected ${at}`);
    return out;
  }

  private record(type: RecordType, key: string, fill: () => WriteElement[]): DirRecord {
    let r = this.index.get(key);
    if (!r) {
      r = { type, elements: fill(), children: [] };
      this.index.set(key, r);
      this.count++;
    }
    return r;
  }

  private studyElements(ds: DataSet): WriteElement[] {
    const now = this.now();
    const iso = now.toISOString();
    const nowDate = iso.slice(0, 10).replace(/-/g, '');
    const nowTime = iso.slice(11, 19).replace(/:/g, '');
    const first = (tags: readonly Tag[], fallback: string) => {
      for (const tag of tags) {
        const v = ds.text(tag);
        if (v !== undefined) return toAscii(v);
      }
      return fallback;
    };
    return [
      { tag: T.StudyDate, vr: 'DA', value: first([T.StudyDate, T.SeriesDate, T.AcquisitionDate, T.ContentDate], nowDate) },
      { tag: T.StudyTime, vr: 'TM', value: first([T.StudyTime, T.SeriesTime, T.AcquisitionTime, T.ContentTime], nowTime) },
      type2(ds, T.StudyDescription),
      type1(ds, T.StudyInstanceUID),
      ...type1C(ds, T.StudyID),
      type2(ds, T.AccessionNumber),
      ...type1C(ds, T.SpecificCharacterSet),
    ];
  }
}

function recordItem(r: DirRecord, next: number, lower: number): WriteItem {
  return [
    { tag: D.OffsetOfTheNextDirectoryRecord, vr: 'UL', value: [next] },
    { tag: D.RecordInUseFlag, vr: 'US', value: [0xffff] },
    { tag: D.OffsetOfReferencedLowerLevelDirectoryEntity, vr: 'UL', value: [lower] },
    { tag: D.DirectoryRecordType, vr: 'CS', value: r.type },
    ...r.elements,
  ];
}

/** Type 1 and 2 (as Orthanc copies them): always present, empty when the source has no value. */
function type1(ds: DataSet, tag: Tag): WriteElement {
  return { tag, value: toAscii(ds.text(tag) ?? '') };
}

const type2 = type1;

/** Type 1C as Orthanc copies it: only when the source has a non-empty value. */
function type1C(ds: DataSet, tag: Tag): WriteElement[] {
  const el = ds.get(tag);
  if (!el || el.length === 0) return [];
  return [{ tag, value: toAscii(ds.text(tag) ?? '') }];
}

/** Type 3: copied when present in the source, even empty. */
function type3(ds: DataSet, tag: Tag): WriteElement[] {
  return ds.has(tag) ? [{ tag, value: toAscii(ds.text(tag) ?? '') }] : [];
}
