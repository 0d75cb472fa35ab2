/**
 * The PS3.19 Native DICOM Model (XML) of a DICOM JSON dataset, for the DICOMweb answers asked as
 * `application/dicom+xml` (QIDO-RS matches, STOW-RS responses). Person names are split into their components
 * (`<PersonName><Alphabetic><FamilyName>...`), binary values keep their BulkDataURI or InlineBinary. Also the
 * choice between DICOM JSON and XML from an Accept header, and the multipart body of XML answers.
 */
import { PacsError } from '../core/errors.js';
import { keywordOf } from '../dicom/dictionary.js';
import type { DicomJsonAttribute, DicomJsonDataset } from '../dicom/json.js';
import { closeDelimiter, multipartContentType, newBoundary, parseAccept, partHead, rangeCovers } from './multipart.js';

const XML_ESCAPES: Readonly<Record<string, string>> = { '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' };

/**
 * Text as XML 1.0 character data: markup characters escaped, and the control characters XML 1.0 cannot carry at
 * all (DICOM text may hold them: FF in LT/ST/UT, ESC outside ISO 2022 sets) replaced by U+FFFD.
 */
export function escapeXml(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[<>&"']/g, (c) => XML_ESCAPES[c]!).replace(/[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]/g, '\uFFFD');
}

/** PS3.19 A.1.1: the components of one person name group, in PS3.5 order. */
const PN_COMPONENTS = ['FamilyName', 'GivenName', 'MiddleName', 'NamePrefix', 'NameSuffix'] as const;

function personNameXml(value: unknown, number: number, indent: string): string {
  if (value === null || typeof value !== 'object') return `${indent}<PersonName number="${number}"/>\n`;
  let out = `${indent}<PersonName number="${number}">\n`;
  for (const group of ['Alphabetic', 'Ideographic', 'Phonetic'] as const) {
    const text = (value as Record<string, unknown>)[group];
    if (typeof text !== 'string' || text === '') continue;
    out += `${indent}  <${group}>\n`;
    text.split('^').forEach((component, i) => {
      const name = PN_COMPONENTS[i];
      if (name && component !== '') out += `${indent}    <${name}>${escapeXml(component)}</${name}>\n`;
    });
    out += `${indent}  </${group}>\n`;
  }
  return `${out}${indent}</PersonName>\n`;
}

function attributeXml(tag: string, attr: DicomJsonAttribute, indent: string): string {
  const keyword = keywordOf(parseInt(tag, 16) >>> 0);
  const head = `${indent}<DicomAttribute tag="${tag}" vr="${attr.vr}"${keyword ? ` keyword="${keyword}"` : ''}`;
  if (attr.BulkDataURI !== undefined) return `${head}>\n${indent}  <BulkData uri="${escapeXml(attr.BulkDataURI)}"/>\n${indent}</DicomAttribute>\n`;
  if (attr.InlineBinary !== undefined) return `${head}>\n${indent}  <InlineBinary>${attr.InlineBinary}</InlineBinary>\n${indent}</DicomAttribute>\n`;
  const values = attr.Value ?? [];
  if (values.length === 0) return `${head}/>\n`;
  let out = `${head}>\n`;
  values.forEach((v, i) => {
    if (attr.vr === 'SQ') {
      out += `${indent}  <Item number="${i + 1}">\n${attributesXml(v as DicomJsonDataset, `${indent}    `)}${indent}  </Item>\n`;
    } else if (attr.vr === 'PN') {
      out += personNameXml(v, i + 1, `${indent}  `);
    } else if (v === null) {
      out += `${indent}  <Value number="${i + 1}"/>\n`;
    } else {
      out += `${indent}  <Value number="${i + 1}">${escapeXml(String(v))}</Value>\n`;
    }
  });
  return `${out}${indent}</DicomAttribute>\n`;
}

function attributesXml(ds: DicomJsonDataset, indent: string): string {
  let out = '';
  for (const tag of Object.keys(ds).sort()) out += attributeXml(tag, ds[tag]!, indent);
  return out;
}

/** A DICOM JSON dataset as a PS3.19 Native DICOM Model document. */
export function toNativeXml(ds: DicomJsonDataset): string {
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM">\n' +
    attributesXml(ds, '  ') +
    '</NativeDicomModel>\n'
  );
}

/**
 * The format of a QIDO-RS or metadata answer from the Accept header (PS3.18 §8.7.3): DICOM JSON (the default, also
 * for `application/json` and any range covering `application/dicom+json`) or XML (`application/dicom+xml`, bare or
 * as the `type` of a `multipart/related`); 406 otherwise, naming the service `what`.
 */
export function jsonOrXml(accept: string | string[] | undefined, what: string): 'json' | 'xml' {
  for (const range of parseAccept(accept)) {
    if (range.type === 'multipart/related') {
      const type = range.params.get('type')?.toLowerCase();
      if (type === undefined || type === 'application/dicom+xml') return 'xml';
      continue;
    }
    if (range.type === 'application/dicom+xml') return 'xml';
    if (range.type === 'application/json' || rangeCovers(range.type, 'application/dicom+json')) return 'json';
  }
  throw new PacsError('NotAcceptable', `${what} answers application/dicom+json or multipart/related; type="application/dicom+xml"`);
}

/** Datasets as a `multipart/related` body of PS3.19 documents, one part each (at least one dataset). */
export function xmlMultipart(datasets: readonly DicomJsonDataset[]): { contentType: string; body: Buffer } {
  const boundary = newBoundary();
  const chunks = datasets.flatMap((ds, i) => [
    partHead(boundary, { 'Content-Type': 'application/dicom+xml' }, i === 0),
    Buffer.from(toNativeXml(ds), 'utf8'),
  ]);
  chunks.push(closeDelimiter(boundary));
  return { contentType: multipartContentType('application/dicom+xml', boundary), body: Buffer.concat(chunks) };
}
