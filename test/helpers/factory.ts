/**
 * Generated DICOM test data: small Part 10 files built with pacsnode's own writer, with controllable
 * identifiers and tags. Deterministic when the caller passes UIDs; fresh `2.25` UIDs otherwise.
 */
import { Tags } from '../../src/dicom/tag.js';
import { ExplicitVRLittleEndian } from '../../src/dicom/transfer-syntax.js';
import { generateUid, SopClasses } from '../../src/dicom/uids.js';
import { encodePart10, type WriteElement } from '../../src/dicom/writer.js';

export interface InstanceSpec {
  patientId?: string;
  patientName?: string;
  patientBirthDate?: string;
  patientSex?: string;
  studyInstanceUid?: string;
  studyDate?: string;
  studyTime?: string;
  studyDescription?: string;
  accessionNumber?: string;
  seriesInstanceUid?: string;
  seriesNumber?: number;
  seriesDescription?: string;
  modality?: string;
  sopInstanceUid?: string;
  sopClassUid?: string;
  /** null: no InstanceNumber at all. */
  instanceNumber?: number | null;
  transferSyntaxUid?: string;
  specificCharacterSet?: string;
  /** Pixel payload size in bytes (a 16-bit monochrome image of about this size). */
  pixelBytes?: number;
  /** Extra elements. */
  extra?: WriteElement[];
}

export function makeInstance(spec: InstanceSpec = {}): Buffer {
  const sopInstanceUid = spec.sopInstanceUid ?? generateUid();
  const sopClassUid = spec.sopClassUid ?? SopClasses.CTImageStorage;
  const side = Math.max(1, Math.floor(Math.sqrt((spec.pixelBytes ?? 512) / 2)));
  const elements: WriteElement[] = [
    { tag: Tags.SOPClassUID, vr: 'UI', value: sopClassUid },
    { tag: Tags.SOPInstanceUID, vr: 'UI', value: sopInstanceUid },
    { tag: Tags.StudyDate, vr: 'DA', value: spec.studyDate ?? '20240115' },
    { tag: Tags.StudyTime, vr: 'TM', value: spec.studyTime ?? '101500' },
    { tag: Tags.AccessionNumber, vr: 'SH', value: spec.accessionNumber ?? 'ACC0001' },
    { tag: Tags.Modality, vr: 'CS', value: spec.modality ?? 'CT' },
    { tag: Tags.StudyDescription, vr: 'LO', value: spec.studyDescription ?? 'Generated study' },
    { tag: Tags.SeriesDescription, vr: 'LO', value: spec.seriesDescription ?? 'Generated series' },
    { tag: Tags.PatientName, vr: 'PN', value: spec.patientName ?? 'DOE^JOHN' },
    { tag: Tags.PatientID, vr: 'LO', value: spec.patientId ?? 'PID0001' },
    { tag: Tags.PatientBirthDate, vr: 'DA', value: spec.patientBirthDate ?? '19700101' },
    { tag: Tags.PatientSex, vr: 'CS', value: spec.patientSex ?? 'O' },
    { tag: Tags.StudyInstanceUID, vr: 'UI', value: spec.studyInstanceUid ?? generateUid() },
    { tag: Tags.SeriesInstanceUID, vr: 'UI', value: spec.seriesInstanceUid ?? generateUid() },
    { tag: Tags.StudyID, vr: 'SH', value: 'S1' },
    { tag: Tags.SeriesNumber, vr: 'IS', value: String(spec.seriesNumber ?? 1) },
    ...(spec.instanceNumber === null ? [] : [{ tag: Tags.InstanceNumber, vr: 'IS' as const, value: String(spec.instanceNumber ?? 1) }]),
    { tag: Tags.SamplesPerPixel, vr: 'US', value: [1] },
    { tag: Tags.PhotometricInterpretation, vr: 'CS', value: 'MONOCHROME2' },
    { tag: Tags.Rows, vr: 'US', value: [side] },
    { tag: Tags.Columns, vr: 'US', value: [side] },
    { tag: Tags.BitsAllocated, vr: 'US', value: [16] },
    { tag: Tags.BitsStored, vr: 'US', value: [16] },
    { tag: 0x00280102, vr: 'US', value: [15] },
    { tag: Tags.PixelRepresentation, vr: 'US', value: [0] },
    { tag: Tags.PixelData, vr: 'OW', value: pixelPattern(side * side * 2) },
    ...(spec.extra ?? []),
  ];
  if (spec.specificCharacterSet !== undefined) {
    elements.push({ tag: Tags.SpecificCharacterSet, vr: 'CS', value: spec.specificCharacterSet });
  }
  return encodePart10(
    elements,
    { sopClassUid, sopInstanceUid, transferSyntaxUid: spec.transferSyntaxUid ?? ExplicitVRLittleEndian },
    { specificCharacterSet: spec.specificCharacterSet },
  );
}

function pixelPattern(bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (i * 7) & 0xff;
  return b;
}

/** A study tree: `patients` x `studies` x `series` x `instances`, with distinct names, IDs and dates. */
export function* makeTree(shape: { patients: number; studies: number; series: number; instances: number; pixelBytes?: number }) {
  for (let p = 0; p < shape.patients; p++) {
    const patientId = `PAT${String(p).padStart(5, '0')}`;
    const patientName = `${['DOE', 'SMITH', 'KOWALSKI', 'MARTIN', 'MULLER'][p % 5]}^${['JOHN', 'ANNA', 'PIOTR', 'MARIE', 'HANS'][(p >> 1) % 5]}${p}`;
    for (let s = 0; s < shape.studies; s++) {
      const studyInstanceUid = generateUid();
      const studyDate = `20${String(10 + (p % 10)).padStart(2, '0')}${String(1 + (s % 12)).padStart(2, '0')}15`;
      for (let se = 0; se < shape.series; se++) {
        const seriesInstanceUid = generateUid();
        const modality = ['CT', 'MR', 'US', 'CR'][se % 4]!;
        for (let i = 0; i < shape.instances; i++) {
          yield makeInstance({
            patientId,
            patientName,
            studyInstanceUid,
            studyDate,
            accessionNumber: `ACC${p}-${s}`,
            seriesInstanceUid,
            seriesNumber: se + 1,
            modality,
            instanceNumber: i + 1,
            pixelBytes: shape.pixelBytes,
          });
        }
      }
    }
  }
}
