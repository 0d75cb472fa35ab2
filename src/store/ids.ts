/**
 * Orthanc-compatible public IDs (Orthanc DicomInstanceHasher): the SHA-1 of the UID chain
 * `PatientID`, `PatientID|StudyInstanceUID`, `...|SeriesInstanceUID`, `...|SOPInstanceUID`, written as
 * five groups of eight lower-case hex digits joined by dashes.
 */
import { createHash } from 'node:crypto';

export function orthancHash(text: string): string {
  const hex = createHash('sha1').update(text, 'utf8').digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 16)}-${hex.slice(16, 24)}-${hex.slice(24, 32)}-${hex.slice(32, 40)}`;
}

export interface InstanceIdentifiers {
  patientId: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
}

export interface PublicIds {
  patient: string;
  study: string;
  series: string;
  instance: string;
}

export function publicIds(ids: InstanceIdentifiers): PublicIds {
  const patient = ids.patientId;
  const study = `${patient}|${ids.studyInstanceUid}`;
  const series = `${study}|${ids.seriesInstanceUid}`;
  const instance = `${series}|${ids.sopInstanceUid}`;
  return {
    patient: orthancHash(patient),
    study: orthancHash(study),
    series: orthancHash(series),
    instance: orthancHash(instance),
  };
}

const PUBLIC_ID_RE = /^[0-9a-f]{8}(-[0-9a-f]{8}){4}$/;

export function isPublicId(text: string): boolean {
  return PUBLIC_ID_RE.test(text);
}
