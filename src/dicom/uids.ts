/** UID helpers (PS3.5 §9). */
import { randomUUID } from 'node:crypto';

/** A new UID under the `2.25` root (PS3.5 §B.2): the decimal form of a random UUID. */
export function generateUid(): string {
  const hex = randomUUID().replace(/-/g, '');
  return `2.25.${BigInt(`0x${hex}`).toString(10)}`;
}

const UID_RE = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/;

/** True when the text is a syntactically valid UID (digits and dots, no leading zeros, at most 64 chars). */
export function isValidUid(text: string): boolean {
  return text.length > 0 && text.length <= 64 && UID_RE.test(text);
}

/** Implementation identification of pacsnode in association requests and meta headers. */
export const IMPLEMENTATION_CLASS_UID = '2.25.35043285644805947510210239112260256844';
export const IMPLEMENTATION_VERSION_NAME = 'PACSNODE_010';

export const SopClasses = {
  Verification: '1.2.840.10008.1.1',
  PatientRootFind: '1.2.840.10008.5.1.4.1.2.1.1',
  PatientRootMove: '1.2.840.10008.5.1.4.1.2.1.2',
  PatientRootGet: '1.2.840.10008.5.1.4.1.2.1.3',
  StudyRootFind: '1.2.840.10008.5.1.4.1.2.2.1',
  StudyRootMove: '1.2.840.10008.5.1.4.1.2.2.2',
  StudyRootGet: '1.2.840.10008.5.1.4.1.2.2.3',
  PatientStudyOnlyFind: '1.2.840.10008.5.1.4.1.2.3.1',
  PatientStudyOnlyMove: '1.2.840.10008.5.1.4.1.2.3.2',
  PatientStudyOnlyGet: '1.2.840.10008.5.1.4.1.2.3.3',
  CTImageStorage: '1.2.840.10008.5.1.4.1.1.2',
  MRImageStorage: '1.2.840.10008.5.1.4.1.1.4',
  SecondaryCaptureImageStorage: '1.2.840.10008.5.1.4.1.1.7',
  EncapsulatedPDFStorage: '1.2.840.10008.5.1.4.1.1.104.1',
} as const;

/** Storage SOP classes outside the 1.2.840.10008.5.1.4.1.1 root (PS3.4 Annex B.5). */
const OTHER_STORAGE_CLASSES = new Set([
  '1.2.840.10008.5.1.4.38.1', // Hanging Protocol Storage
  '1.2.840.10008.5.1.4.39.1', // Color Palette Storage
  '1.2.840.10008.5.1.4.43.1', // Generic Implant Template Storage
  '1.2.840.10008.5.1.4.44.1', // Implant Assembly Template Storage
  '1.2.840.10008.5.1.4.45.1', // Implant Template Group Storage
  '1.2.840.10008.5.1.4.34.10', // RT Brachy Application Setup Delivery Instruction Storage
]);

/**
 * True for standard storage SOP classes: everything under 1.2.840.10008.5.1.4.1.1 (PS3.4 Table B.5-1, including
 * classes added after this was written), plus the few storage classes rooted elsewhere.
 */
export function isStorageSopClass(uid: string): boolean {
  return uid.startsWith('1.2.840.10008.5.1.4.1.1.') || OTHER_STORAGE_CLASSES.has(uid);
}
