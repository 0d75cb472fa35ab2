/**
 * WADO-URI (PS3.18 §9, formerly WADO) at `WadoRoot`: `requestType=WADO&studyUID=..&seriesUID=..&objectUID=..`.
 * `contentType=application/dicom` answers the stored file as it is (with `transferSyntax` absent, `*` or the
 * stored one). Image content types (`image/jpeg`, the default of PS3.18, `image/png`, `image/gif`, ...) need
 * rendering, which pacsnode does not have yet: 406 with a message saying so, as for a transcoding request.
 */
import { PacsError } from '../core/errors.js';
import type { Tag } from '../dicom/tag.js';
import { Tags } from '../dicom/tag.js';
import { Level } from '../store/levels.js';
import type { IndexConstraint } from '../store/lookup.js';
import { MetadataType, type ResourceRow } from '../store/sqlite-index.js';
import type { DicomStore } from '../store/store.js';
import { checkUid } from './uris.js';

export interface WadoUriRequest {
  study?: string;
  series?: string;
  object: string;
  /** `transferSyntax`, when given and not `*`. */
  transferSyntax?: string;
}

function param(params: URLSearchParams, name: string): string | undefined {
  const value = params.get(name);
  return value === null || value.trim() === '' ? undefined : value.trim();
}

/** Reads and checks a WADO-URI query: 400 for a malformed one, 406 for a content type pacsnode cannot produce. */
export function parseWadoUri(params: URLSearchParams): WadoUriRequest {
  const requestType = param(params, 'requestType');
  if (requestType !== 'WADO') {
    throw new PacsError('BadRequest', `WADO-URI: requestType must be WADO, not ${JSON.stringify(requestType ?? '')}`);
  }
  const objectText = param(params, 'objectUID');
  if (objectText === undefined) throw new PacsError('BadRequest', 'WADO-URI: objectUID is missing');
  const studyText = param(params, 'studyUID');
  const seriesText = param(params, 'seriesUID');
  const request: WadoUriRequest = {
    object: checkUid(objectText, 'objectUID'),
    study: studyText === undefined ? undefined : checkUid(studyText, 'studyUID'),
    series: seriesText === undefined ? undefined : checkUid(seriesText, 'seriesUID'),
  };
  // PS3.18 §9.1.2.1.5: a list of acceptable types; image/jpeg when absent.
  const types = (param(params, 'contentType') ?? 'image/jpeg').split(',').map((t) => t.split(';')[0]!.trim().toLowerCase());
  if (!types.some((t) => t === 'application/dicom' || t === '*/*' || t === 'application/*')) {
    throw new PacsError(
      'NotAcceptable',
      `WADO-URI: rendering (${types.join(', ')}) is not available yet in pacsnode; ask contentType=application/dicom`,
    );
  }
  const ts = param(params, 'transferSyntax');
  if (ts !== undefined && ts !== '*') request.transferSyntax = checkUid(ts, 'transferSyntax');
  return request;
}

/** The instance a WADO-URI request names (the study and series UIDs must match when given), 404 when unknown. */
export function findWadoInstance(store: DicomStore, request: WadoUriRequest): ResourceRow {
  const eq = (tag: Tag, level: Level, value: string): IndexConstraint => ({ tag, level, kind: 'equal', value, caseSensitive: true });
  const constraints = [eq(Tags.SOPInstanceUID, Level.Instance, request.object)];
  if (request.series !== undefined) constraints.push(eq(Tags.SeriesInstanceUID, Level.Series, request.series));
  if (request.study !== undefined) constraints.push(eq(Tags.StudyInstanceUID, Level.Study, request.study));
  const [row] = store.index.lookup(Level.Instance, constraints, { limit: 1 });
  if (!row) throw new PacsError('UnknownResource', `WADO-URI: no instance ${request.object}${request.study ? ` in study ${request.study}` : ''}`);
  if (request.transferSyntax !== undefined) {
    const stored = store.index.getMetadata(row.id, MetadataType.TransferSyntax)?.value;
    if (stored !== request.transferSyntax) {
      throw new PacsError(
        'NotAcceptable',
        `WADO-URI: the instance is stored as ${stored ?? 'unknown'}; transcoding to ${request.transferSyntax} is not available yet`,
      );
    }
  }
  return row;
}
