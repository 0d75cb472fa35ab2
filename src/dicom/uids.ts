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
  CTImageStorage: '1.2.840.10008.5.1.4.1.1.2',
  MRImageStorage: '1.2.840.10008.5.1.4.1.1.4',
  SecondaryCaptureImageStorage: '1.2.840.10008.5.1.4.1.1.7',
  EncapsulatedPDFStorage: '1.2.840.10008.5.1.4.1.1.104.1',
} as const;
