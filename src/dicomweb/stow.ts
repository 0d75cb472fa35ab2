/**
 * STOW-RS (PS3.18 §10.5): `multipart/related; type="application/dicom"` bodies read as a stream, each part handed
 * to the shared ingestion path as it arrives (small parts as one Buffer, larger ones as a stream), and the Store
 * Instances Response Module (PS3.18 Annex I) in DICOM JSON or XML.
 *
 * Each instance is stored whole or not at all (the store's guarantee); a part that is not DICOM, that belongs to
 * another study than the one in the URL, or that the message ends inside, fails alone. HTTP status as PS3.18
 * Table 10.5.3-1: 200 all stored, 202 some stored, 409 none stored, 400 none stored and the body is not a
 * well-formed multipart message (no boundary, truncated, no parts).
 */
import { PacsError } from '../core/errors.js';
import { logger } from '../core/log.js';
import type { DicomJsonAttribute, DicomJsonDataset } from '../dicom/json.js';
import { readPart10 } from '../dicom/reader.js';
import { Tags } from '../dicom/tag.js';
import { takeInput } from '../store/input.js';
import type { DicomStore, Origin } from '../store/store.js';
import { isValidBoundary, MultipartError, parseAccept, parseMediaType, rangeCovers, readMultipart } from './multipart.js';
import { retrieveUrl } from './uris.js';
import { toNativeXml } from './xml.js';

const log = logger('dicomweb');

/** Failure Reason (0008,1197) values, PS3.18 Table I.2-2. */
export const FailureReason = {
  /** A7xx: out of resources (the storage is full, no space left). */
  OutOfResources: 0xa700,
  /** Cxxx: cannot understand (not DICOM, malformed, truncated). */
  CannotUnderstand: 0xc000,
  /** 0110: processing failure (any other failure; also, as Orthanc, an instance of another study than the URL's). */
  ProcessingFailure: 0x0110,
} as const;

/** Buffered parts stored at the same time within one request (they share the store's group commit). */
const MAX_IN_FLIGHT = 8;

export type StowFormat = 'json' | 'xml';

/**
 * The response format from the Accept header: DICOM JSON (`application/dicom+json`, `application/json`, or any
 * range covering them; the default) or XML (`application/dicom+xml`, also inside `multipart/related`). 406
 * otherwise.
 */
export function stowResponseFormat(accept: string | string[] | undefined): StowFormat {
  for (const range of parseAccept(accept)) {
    if (range.type === 'multipart/related') {
      const type = range.params.get('type')?.toLowerCase();
      if (type === 'application/dicom+xml') return 'xml';
      if (type === 'application/dicom+json') return 'json';
      continue;
    }
    if (range.type === 'application/dicom+xml') return 'xml';
    if (range.type === 'application/json' || rangeCovers(range.type, 'application/dicom+json')) return 'json';
  }
  throw new PacsError('NotAcceptable', 'STOW-RS answers application/dicom+json or application/dicom+xml');
}

/**
 * The boundary of a STOW-RS request, from its Content-Type: `multipart/related` (else 415) whose `type` is
 * `application/dicom` or absent (a metadata + bulk data request, `application/dicom+json` or `+xml`, is 415:
 * not supported), with a boundary (else 400).
 */
export function stowBoundary(contentType: string | undefined): string {
  if (!contentType) throw new PacsError('UnsupportedMediaType', 'STOW-RS expects a multipart/related; type="application/dicom" body');
  const mt = parseMediaType(contentType);
  if (mt.type !== 'multipart/related') {
    throw new PacsError('UnsupportedMediaType', `STOW-RS expects multipart/related; type="application/dicom", not ${mt.type || 'nothing'}`);
  }
  const type = mt.params.get('type')?.toLowerCase();
  if (type !== undefined && type !== 'application/dicom') {
    throw new PacsError(
      'UnsupportedMediaType',
      `STOW-RS of ${type} parts (metadata and bulk data) is not supported: send the instances as application/dicom`,
    );
  }
  const boundary = mt.params.get('boundary');
  if (!boundary) throw new PacsError('BadRequest', 'the Content-Type of the request has no boundary parameter');
  if (!isValidBoundary(boundary)) throw new PacsError('BadRequest', `invalid multipart boundary: ${JSON.stringify(boundary.slice(0, 100))}`);
  return boundary;
}

interface PartResult {
  index: number;
  sopClassUid?: string;
  sopInstanceUid?: string;
  studyUid?: string;
  seriesUid?: string;
  /** Set when the part failed. */
  failureReason?: number;
  /** Warning Reason (0008,1196) for an instance stored with a warning. */
  warningReason?: number;
  detail?: string;
}

export interface StowRequest {
  body: AsyncIterable<Buffer>;
  boundary: string;
  /** `POST {root}studies/{study}`: every instance must belong to this study. */
  expectedStudy?: string;
  /** The public base of the DICOMweb URIs (`http://host/dicom-web/`), for the Retrieve URLs. */
  base: string;
  origin: Origin;
  format: StowFormat;
}

export interface StowAnswer {
  status: 200 | 202 | 400 | 409;
  contentType: string;
  body: string;
  /** A human-readable explanation when the body is not a well-formed multipart message (for a Warning header). */
  warning?: string;
}

/** UIDs from a part's head, as far as it can be read. */
function identify(head: Buffer): Pick<PartResult, 'sopClassUid' | 'sopInstanceUid' | 'studyUid' | 'seriesUid'> | undefined {
  try {
    const parsed = readPart10(head, { untilPixelData: true });
    const ds = parsed.dataset;
    return {
      sopClassUid: ds.string(Tags.SOPClassUID) ?? parsed.meta.string(Tags.MediaStorageSOPClassUID),
      sopInstanceUid: ds.string(Tags.SOPInstanceUID) ?? parsed.meta.string(Tags.MediaStorageSOPInstanceUID),
      studyUid: ds.string(Tags.StudyInstanceUID),
      seriesUid: ds.string(Tags.SeriesInstanceUID),
    };
  } catch {
    return undefined;
  }
}

function failureReasonOf(error: unknown): number {
  if (error instanceof PacsError) {
    if (error.code === 'FullStorage') return FailureReason.OutOfResources;
    if (error.code === 'BadFileFormat') return FailureReason.CannotUnderstand;
    return FailureReason.ProcessingFailure;
  }
  if (error instanceof MultipartError) return FailureReason.CannotUnderstand;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'ENOMEM') return FailureReason.OutOfResources;
  return FailureReason.ProcessingFailure;
}

/** Stores the parts of a STOW-RS body and builds the Store Instances Response. */
export async function storeInstances(store: DicomStore, request: StowRequest): Promise<StowAnswer> {
  const results: PartResult[] = [];
  const inFlight = new Set<Promise<void>>();
  let syntaxError: MultipartError | undefined;
  let fatal: unknown;

  const storeOne = async (result: PartResult, input: Buffer | NodeJS.ReadableStream, head: Buffer): Promise<void> => {
    try {
      await store.store(input as Parameters<DicomStore['store']>[0], request.origin);
    } catch (e) {
      if (!result.sopInstanceUid) Object.assign(result, identify(head));
      result.failureReason = failureReasonOf(e);
      result.detail = (e as Error).message;
    }
  };

  try {
    for await (const part of readMultipart(request.body, request.boundary)) {
      const result: PartResult = { index: part.index };
      results.push(result);
      const type = part.contentType?.type;
      if (type !== undefined && type !== 'application/dicom') {
        result.failureReason = FailureReason.CannotUnderstand;
        result.detail = `part ${part.index + 1} is ${type}, not application/dicom`;
        continue; // its body is skipped by the reader
      }
      let taken: Awaited<ReturnType<typeof takeInput>>;
      try {
        taken = await takeInput(part.body);
      } catch (e) {
        result.failureReason = failureReasonOf(e);
        result.detail = (e as Error).message;
        if (e instanceof MultipartError) continue; // the reader reports the message's end next
        throw e;
      }
      if (taken.empty) {
        result.failureReason = FailureReason.CannotUnderstand;
        result.detail = `part ${part.index + 1} is empty`;
        continue;
      }
      Object.assign(result, identify(taken.head));
      if (request.expectedStudy !== undefined && result.studyUid !== request.expectedStudy) {
        result.failureReason = FailureReason.ProcessingFailure;
        result.detail =
          result.studyUid === undefined
            ? `part ${part.index + 1}: cannot read its StudyInstanceUID to check it against ${request.expectedStudy}`
            : `part ${part.index + 1} belongs to study ${result.studyUid}, not ${request.expectedStudy}`;
        if (!Buffer.isBuffer(taken.input)) taken.input.destroy(); // the reader skips the rest of the part
        continue;
      }
      if (Buffer.isBuffer(taken.input)) {
        // Whole in memory: stored while the next parts are read, a few at a time.
        const p = storeOne(result, taken.input, taken.head);
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
        if (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
      } else {
        // A large part streams from the body into the store: it is read to its end before the next part.
        await storeOne(result, taken.input, taken.head);
      }
    }
  } catch (e) {
    if (e instanceof MultipartError) syntaxError = e;
    else fatal = e;
  }
  await Promise.all(inFlight);
  if (fatal !== undefined) throw fatal;

  const stored = results.filter((r) => r.failureReason === undefined);
  const failed = results.filter((r) => r.failureReason !== undefined);
  for (const f of failed) log.warn(`STOW-RS: part ${f.index + 1} not stored (0x${f.failureReason!.toString(16).padStart(4, '0')}): ${f.detail}`);
  if (syntaxError) log.warn(`STOW-RS: ${syntaxError.message}`);

  let status: StowAnswer['status'];
  if (stored.length === 0) status = syntaxError || results.length === 0 ? 400 : 409;
  else status = failed.length > 0 || syntaxError ? 202 : 200;

  const response = responseModule(request, stored, failed);
  return {
    status,
    contentType: request.format === 'xml' ? 'application/dicom+xml' : 'application/dicom+json',
    body: request.format === 'xml' ? toNativeXml(response) : JSON.stringify(response),
    warning: syntaxError?.message ?? (results.length === 0 ? 'the multipart body has no parts' : undefined),
  };
}

function ui(value: string | undefined): DicomJsonAttribute {
  return value === undefined || value === '' ? { vr: 'UI' } : { vr: 'UI', Value: [value] };
}

/** The Store Instances Response Module (PS3.18 Table I.1-1), with the Specific Character Set as Orthanc sends it. */
function responseModule(request: StowRequest, stored: PartResult[], failed: PartResult[]): DicomJsonDataset {
  const studies = new Set(stored.map((r) => r.studyUid));
  const study = request.expectedStudy ?? (studies.size === 1 ? [...studies][0] : undefined);
  const out: DicomJsonDataset = {
    '00080005': { vr: 'CS', Value: ['ISO_IR 192'] },
    // Type 2: empty when the instances stored belong to several studies (or none was stored).
    '00081190': study !== undefined ? { vr: 'UR', Value: [retrieveUrl(request.base, study)] } : { vr: 'UR' },
  };
  const failedItems = failed.map((r) => ({
    '00081150': ui(r.sopClassUid),
    '00081155': ui(r.sopInstanceUid),
    '00081197': { vr: 'US', Value: [r.failureReason!] },
  }));
  const storedItems = stored.map((r) => {
    const item: DicomJsonDataset = {
      '00081150': ui(r.sopClassUid),
      '00081155': ui(r.sopInstanceUid),
      '00081190': { vr: 'UR', Value: [retrieveUrl(request.base, r.studyUid ?? '', r.seriesUid ?? '', r.sopInstanceUid ?? '')] },
    };
    if (r.warningReason !== undefined) item['00081196'] = { vr: 'US', Value: [r.warningReason] };
    return item;
  });
  out['00081198'] = failedItems.length > 0 ? { vr: 'SQ', Value: failedItems } : { vr: 'SQ' };
  out['00081199'] = storedItems.length > 0 ? { vr: 'SQ', Value: storedItems } : { vr: 'SQ' };
  return out;
}
