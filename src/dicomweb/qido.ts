/**
 * QIDO-RS (PS3.18 §10.6): a search's query parameters turned into a query of the shared engine, and its matches
 * written as DICOM JSON datasets. Values come from the index (main tags of the resource and its ancestors,
 * computed tags, the SOP Class UID metadata); other requested attributes are read from one stored instance of the
 * match unless `StorageAccessOnFind` is `Never`.
 *
 * Parameters: matching keys by keyword or tag (`PatientName`, `00100010`), repeated keys and comma-separated UI/CS
 * values are value lists; `includefield` repeated, comma-separated or `all`; `limit`, `offset`; `fuzzymatching`
 * accepted (literal matching is done, the answer carries the PS3.18 warning). Keys on sequence items
 * (`00081032.00080100`) are accepted and ignored, as Orthanc does. Anything else is a 400.
 */
import { PacsError } from '../core/errors.js';
import { DataSet, isNumericVr, type Element } from '../dicom/dataset.js';
import { tagFromKeywordOrString, vrOf } from '../dicom/dictionary.js';
import { datasetToDicomJson, type DicomJsonAttribute, type DicomJsonDataset } from '../dicom/json.js';
import { formatTagJson, Tags, type Tag } from '../dicom/tag.js';
import { COMPUTED_TAGS, type FindConstraint, type QueryEngine } from '../query/engine.js';
import { Level } from '../store/levels.js';
import { MetadataType, type ResourceRow } from '../store/sqlite-index.js';
import { retrieveUrl } from './uris.js';

const T = Tags;

/** PS3.18 Table 10.6.3-3: the attributes every study match carries. */
const STUDY_DEFAULTS: readonly Tag[] = [
  T.StudyDate, T.StudyTime, T.AccessionNumber, T.InstanceAvailability, T.ModalitiesInStudy, T.ReferringPhysicianName,
  T.TimezoneOffsetFromUTC, 0x00081190 /* RetrieveURL */, T.PatientName, T.PatientID, T.PatientBirthDate, T.PatientSex,
  T.StudyInstanceUID, T.StudyID, T.NumberOfStudyRelatedSeries, T.NumberOfStudyRelatedInstances,
];

/** PS3.18 Table 10.6.3-4 (series). */
const SERIES_DEFAULTS: readonly Tag[] = [
  T.Modality, T.TimezoneOffsetFromUTC, T.SeriesDescription, 0x00081190, T.SeriesInstanceUID, T.SeriesNumber,
  T.NumberOfSeriesRelatedInstances, 0x00400244 /* PerformedProcedureStepStartDate */,
  0x00400245 /* PerformedProcedureStepStartTime */,
];

/** PS3.18 Table 10.6.3-5 (instances). */
const INSTANCE_DEFAULTS: readonly Tag[] = [
  T.SOPClassUID, T.SOPInstanceUID, T.InstanceAvailability, T.TimezoneOffsetFromUTC, 0x00081190, T.InstanceNumber,
  T.Rows, T.Columns, T.BitsAllocated, T.NumberOfFrames,
];

const RETRIEVE_URL = 0x00081190;
/** Computed here, not read anywhere. */
const SYNTHETIC: ReadonlySet<Tag> = new Set([RETRIEVE_URL, T.InstanceAvailability, T.SpecificCharacterSet]);

/** The parameters that are not matching keys. */
const CONTROL_PARAMETERS = new Set(['limit', 'offset', 'fuzzymatching', 'includefield']);

/** VRs whose value is one text, never a list. */
const SINGLE_TEXT_VRS: ReadonlySet<string> = new Set(['LT', 'ST', 'UT', 'UR']);

export type QidoLevel = Level.Study | Level.Series | Level.Instance;

/** The UIDs a search's path fixes (`/studies/{st}/series`, ...). */
export interface QidoScope {
  study?: string;
  series?: string;
}

export interface QidoRequest {
  level: QidoLevel;
  scope: QidoScope;
  constraints: FindConstraint[];
  /** Attributes asked by `includefield` (besides the defaults and the matching keys). */
  include: Tag[];
  /** `includefield=all`. */
  includeAll: boolean;
  limit: number;
  offset: number;
  /** `fuzzymatching=true` was asked (literal matching is done). */
  fuzzy: boolean;
}

function badRequest(message: string): PacsError {
  return new PacsError('BadRequest', message);
}

function attributeTag(name: string, what: string): Tag {
  const tag = tagFromKeywordOrString(name);
  if (tag === undefined) throw badRequest(`QIDO-RS: unknown attribute in ${what}: ${JSON.stringify(name)}`);
  return tag;
}

function nonNegativeInteger(name: string, text: string): number {
  if (!/^\d{1,9}$/.test(text.trim())) throw badRequest(`QIDO-RS: ${name} must be a non-negative integer, not ${JSON.stringify(text)}`);
  return Number(text.trim());
}

/** Reads a search's query string (`URLSearchParams` keeps the order and the repeated keys). */
export function parseQidoQuery(params: URLSearchParams, level: QidoLevel, scope: QidoScope): QidoRequest {
  const request: QidoRequest = { level, scope, constraints: [], include: [], includeAll: false, limit: 0, offset: 0, fuzzy: false };
  const values = new Map<Tag, string[]>();
  for (const [rawName, value] of params) {
    const name = rawName.trim();
    const lower = name.toLowerCase();
    if (CONTROL_PARAMETERS.has(lower)) {
      if (lower === 'limit') request.limit = nonNegativeInteger('limit', value);
      else if (lower === 'offset') request.offset = nonNegativeInteger('offset', value);
      else if (lower === 'fuzzymatching') {
        if (!/^(true|false)$/i.test(value.trim())) throw badRequest(`QIDO-RS: fuzzymatching must be true or false, not ${JSON.stringify(value)}`);
        request.fuzzy = value.trim().toLowerCase() === 'true';
      } else {
        for (const item of value.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
          if (item.toLowerCase() === 'all') request.includeAll = true;
          // A sequence path (`00081032.00080100`) returns the whole top-level sequence.
          else request.include.push(attributeTag(item.split('.')[0]!, 'includefield'));
        }
      }
      continue;
    }
    // A key on a sequence's items (PS3.18 §8.3.4.1 `{attributeID}.{attributeID}`): not supported, ignored.
    if (name.includes('.')) continue;
    const tag = attributeTag(name, 'a matching key');
    const vr = vrOf(tag);
    // UID and code lists: commas or backslashes (PS3.18 §8.3.4.1); commas cannot occur in these VRs' values.
    const v = vr === 'UI' || vr === 'CS' ? value.split(',').map((s) => s.trim()).join('\\') : value;
    values.set(tag, [...(values.get(tag) ?? []), v]);
  }
  for (const [tag, list] of values) request.constraints.push({ tag, value: list.filter((v) => v !== '').join('\\') });
  if (scope.study !== undefined) request.constraints.push({ tag: T.StudyInstanceUID, value: scope.study });
  if (scope.series !== undefined) request.constraints.push({ tag: T.SeriesInstanceUID, value: scope.series });
  return request;
}

/** The attributes a match carries: the level's defaults (with its parents' when the path does not fix them). */
function defaultAttributes(request: QidoRequest): Tag[] {
  const tags: Tag[] = [T.SpecificCharacterSet];
  if (request.level === Level.Study) return [...tags, ...STUDY_DEFAULTS];
  // PS3.18 §10.6.3.3: a search over all series (instances) also returns the study (and series) attributes.
  if (request.scope.study === undefined) tags.push(...STUDY_DEFAULTS);
  if (request.level === Level.Series) return [...tags, ...SERIES_DEFAULTS];
  if (request.scope.series === undefined) tags.push(...SERIES_DEFAULTS.filter((t) => t !== RETRIEVE_URL));
  return [...tags, ...INSTANCE_DEFAULTS];
}

const PN_GROUPS = ['Alphabetic', 'Ideographic', 'Phonetic'] as const;

/** A person name's component groups (PS3.18 F.2.2), empty groups left out; null for an empty name. */
function personName(text: string): Record<string, string> | null {
  if (text === '') return null;
  return Object.fromEntries(PN_GROUPS.map((group, i) => [group, text.split('=')[i] ?? '']).filter(([, g]) => g !== ''));
}

/** A value from the index (text, `\`-separated) as a DICOM JSON attribute. */
export function textToDicomJson(tag: Tag, text: string | undefined): DicomJsonAttribute {
  const vr = vrOf(tag);
  if (text === undefined || text === '') return { vr };
  const parts = SINGLE_TEXT_VRS.has(vr) ? [text] : text.split('\\');
  if (vr === 'PN') return { vr, Value: parts.map(personName) };
  if (vr === 'IS' || vr === 'DS' || isNumericVr(vr)) {
    return {
      vr,
      Value: parts.map((p) => {
        const t = p.trim();
        if (t === '') return null;
        const n = Number(t);
        if (!Number.isFinite(n)) return t;
        return vr === 'IS' ? Math.trunc(n) : n;
      }),
    };
  }
  return { vr, Value: parts.map((p) => (p === '' ? null : p)) };
}

/** The UIDs of a match and its parents, from the main tags. */
function uidsOf(tags: Map<Tag, string> | undefined): { study: string; series?: string; instance?: string } {
  return {
    study: tags?.get(T.StudyInstanceUID) ?? '',
    series: tags?.get(T.SeriesInstanceUID),
    instance: tags?.get(T.SOPInstanceUID),
  };
}

export interface QidoContext {
  engine: QueryEngine;
  /** `QidoCaseSensitive`. */
  caseSensitive: boolean;
  /** The public base of Retrieve URLs, ending with '/'. */
  base: string;
}

/** Runs a search: the matches in the engine's order, from `offset`, at most `limit` (0: no limit but the engine's). */
export async function runQido(context: QidoContext, request: QidoRequest): Promise<DicomJsonDataset[]> {
  const { engine } = context;
  const rows = await engine.find({
    level: request.level,
    constraints: request.constraints,
    caseSensitive: context.caseSensitive,
    since: request.offset,
    limit: request.limit,
  });
  if (rows.length === 0) return [];
  const wanted: Tag[] = [];
  const add = (tag: Tag) => {
    if (!wanted.includes(tag)) wanted.push(tag);
  };
  defaultAttributes(request).forEach(add);
  request.constraints.forEach((c) => add(c.tag));
  request.include.forEach(add);
  const main = engine.mainTagsWithAncestors(rows);
  const computedWanted = new Set<Tag>(wanted.filter((t) => COMPUTED_TAGS.has(t)));
  if (request.includeAll) for (const [tag, levels] of COMPUTED_TAGS) if (levels.includes(request.level)) computedWanted.add(tag);
  const computed = engine.computedTags(rows, request.level, [...computedWanted]);
  const ids = rows.map((r) => r.id);
  const sopClasses = request.level === Level.Instance ? engine.store.index.metadataOf(ids, MetadataType.SopClassUid) : new Map<number, string>();
  const readFiles = engine.options.storageAccessOnFind !== 'Never';
  // Tags outside the index are read from a file when asked (includefield, matching keys), and for the instance
  // defaults (Rows, Columns, ...); the study and series defaults that are not main tags (TimezoneOffsetFromUTC, ...)
  // are listed empty rather than costing a file read per match.
  const fromFiles = new Set<Tag>([...request.include, ...request.constraints.map((c) => c.tag)]);
  if (request.level === Level.Instance) INSTANCE_DEFAULTS.forEach((t) => fromFiles.add(t));
  for (const tag of [...fromFiles]) if (COMPUTED_TAGS.has(tag) || SYNTHETIC.has(tag)) fromFiles.delete(tag);
  const out: DicomJsonDataset[] = [];
  for (const row of rows) {
    const tags = main.get(row.id);
    const attrs = new Map<Tag, DicomJsonAttribute>();
    if (request.includeAll) {
      for (const [tag, value] of tags ?? []) attrs.set(tag, textToDicomJson(tag, value));
    }
    for (const [tag, value] of computed.get(row.id) ?? []) attrs.set(tag, textToDicomJson(tag, value));
    const uids = uidsOf(tags);
    attrs.set(T.SpecificCharacterSet, { vr: 'CS', Value: ['ISO_IR 192'] });
    attrs.set(T.InstanceAvailability, { vr: 'CS', Value: ['ONLINE'] });
    const url =
      request.level === Level.Study
        ? retrieveUrl(context.base, uids.study)
        : request.level === Level.Series
          ? retrieveUrl(context.base, uids.study, uids.series)
          : retrieveUrl(context.base, uids.study, uids.series, uids.instance);
    attrs.set(RETRIEVE_URL, { vr: 'UR', Value: [url] });
    const sopClass = sopClasses.get(row.id);
    if (sopClass !== undefined) attrs.set(T.SOPClassUID, { vr: 'UI', Value: [sopClass] });
    const missing: Tag[] = [];
    for (const tag of wanted) {
      if (attrs.has(tag)) continue;
      const value = tags?.get(tag);
      if (value !== undefined) attrs.set(tag, textToDicomJson(tag, value));
      else if (fromFiles.has(tag)) missing.push(tag);
    }
    if (missing.length > 0 && readFiles) {
      const ds = await engine.representativeDataset(row);
      if (ds) for (const [tag, attr] of Object.entries(fileAttributes(ds, missing))) attrs.set(parseInt(tag, 16) >>> 0, attr);
    }
    for (const tag of wanted) if (!attrs.has(tag)) attrs.set(tag, { vr: vrOf(tag) });
    out.push(sortedDataset(attrs));
  }
  return out;
}

/** Some attributes of a stored dataset in DICOM JSON (binary values inlined, pixel data never read). */
export function fileAttributes(ds: DataSet, tags: readonly Tag[]): DicomJsonDataset {
  const elements = new Map<Tag, Element>();
  for (const tag of tags) {
    const el = ds.get(tag);
    if (el && tag !== T.PixelData) elements.set(tag, el);
  }
  return datasetToDicomJson(new DataSet(ds.bytes, ds.littleEndian, ds.explicitVr, elements, ds.charset));
}

function sortedDataset(attrs: Map<Tag, DicomJsonAttribute>): DicomJsonDataset {
  const out: DicomJsonDataset = {};
  for (const tag of [...attrs.keys()].sort((a, b) => a - b)) out[formatTagJson(tag)] = attrs.get(tag)!;
  return out;
}

/** Whether a resource exists: the study (and series) a search's path names, 404 when not. */
export async function checkScope(engine: QueryEngine, scope: QidoScope): Promise<ResourceRow | undefined> {
  if (scope.study === undefined) return undefined;
  const level = scope.series === undefined ? Level.Study : Level.Series;
  const constraints: FindConstraint[] = [{ tag: T.StudyInstanceUID, value: scope.study }];
  if (scope.series !== undefined) constraints.push({ tag: T.SeriesInstanceUID, value: scope.series });
  const [row] = await engine.find({ level, constraints, limit: 1 });
  if (!row) {
    throw new PacsError(
      'UnknownResource',
      scope.series === undefined ? `unknown study: ${scope.study}` : `unknown series: ${scope.series} in study ${scope.study}`,
    );
  }
  return row;
}
