/**
 * Queries on remote modalities (Orthanc's QueryRetrieveHandler and its archive): `POST /modalities/{id}/query` runs
 * a C-FIND and keeps its answers in memory under an ID (`/queries/{id}`), so that they can be read, refined a level
 * down, and retrieved (`/queries/{id}/retrieve`, a C-MOVE or a C-GET job).
 *
 * As in Orthanc: the query is normalized by default (attributes that do not belong to the level or above are
 * dropped, with a warning), the unique keys down to the level are always asked for (PatientID, StudyInstanceUID,
 * AccessionNumber, SeriesInstanceUID, SOPInstanceUID), the modality's Manufacturer adapts wildcards, each answer
 * carries its QueryRetrieveLevel, and at most `QueryRetrieveSize` queries are kept (the least recently used goes).
 */
import { randomUUID } from 'node:crypto';
import { PacsError } from '../core/errors.js';
import { logger } from '../core/log.js';
import type { DataSet } from '../dicom/dataset.js';
import { vrOf } from '../dicom/dictionary.js';
import { readDataset } from '../dicom/reader.js';
import { formatTagOrthanc, Tags, type Tag } from '../dicom/tag.js';
import { Priority } from '../dimse/command.js';
import type { CFindRq, CFindRsp } from '../dimse/messages.js';
import { encodeIdentifier } from '../dimse/scp/find.js';
import { closeSession, identifierElements, QUERY_SYNTAXES, queryRetrieveSopClass, QueryKeyError, type QueryLevel } from '../dimse/scu/find.js';
import { describeStatus, formatStatus, ScuSession, sessionOptions, statusCategory, type ScuTarget } from '../dimse/scu/session.js';
import type { RemoteModality } from '../modalities/registry.js';
import { openAssociation } from '../net/connect.js';
import { Level, LEVEL_NAMES } from '../store/levels.js';

const log = logger('dicom');

/** DICOM's QueryRetrieveLevel of each level. */
export const DICOM_LEVELS: readonly QueryLevel[] = ['PATIENT', 'STUDY', 'SERIES', 'IMAGE'];

/** The level of a QueryRetrieveLevel value (`INSTANCE` is taken for `IMAGE`). */
export function levelOfDicom(value: string): Level | undefined {
  const v = value.trim().toUpperCase();
  const i = DICOM_LEVELS.indexOf((v === 'INSTANCE' ? 'IMAGE' : v) as QueryLevel);
  return i < 0 ? undefined : (i as Level);
}

// PS3.3 modules whose attributes a normalized query keeps at each level (Orthanc's DicomTag::AddTagsForModule):
// Patient (C.7.1.1, with the Issuer of Patient ID macro), General Study (C.7.2.1), General Series (C.7.3.1, with
// the Performed Procedure Step Summary macro) and SOP Common (C.12.1, with the Digital Signatures macro).
const PATIENT_MODULE: readonly Tag[] = [
  0x00100010, 0x00100020, 0x00100030, 0x00100040, 0x00081120, 0x00100032, 0x00101000, 0x00101002, 0x00101001,
  0x00102160, 0x00104000, 0x00102201, 0x00102202, 0x00102292, 0x00102293, 0x00102294, 0x00102297, 0x00102298,
  0x00102299, 0x00120062, 0x00120063, 0x00120064, 0x00100021, 0x00100024,
];
const STUDY_MODULE: readonly Tag[] = [
  0x0020000d, 0x00080020, 0x00080030, 0x00080090, 0x00080096, 0x00200010, 0x00080050, 0x00080051, 0x00081030,
  0x00081048, 0x00081049, 0x00081060, 0x00081062, 0x00321034, 0x00081110, 0x00081032, 0x00401012,
];
const SERIES_MODULE: readonly Tag[] = [
  0x00080060, 0x0020000e, 0x00200011, 0x00200060, 0x00080021, 0x00080031, 0x00081050, 0x00081052, 0x00181030,
  0x0008103e, 0x0008103f, 0x00081070, 0x00081072, 0x00081111, 0x00081250, 0x00180015, 0x00185100, 0x00280108,
  0x00280109, 0x00400275, 0x00102210, 0x00400253, 0x00400244, 0x00400245, 0x00400254, 0x00400260, 0x00400280,
];
const INSTANCE_MODULE: readonly Tag[] = [
  0x00080016, 0x00080018, 0x00080005, 0x00080012, 0x00080013, 0x00080014, 0x0008001a, 0x0008001b, 0x00080110,
  0x00080201, 0x0018a001, 0x00200013, 0x01000410, 0x01000420, 0x01000424, 0x01000426, 0x04000500, 0x04000561,
  0x0040a390, 0x00280303, 0x4ffe0001, 0xfffafffa,
];
const MODULES = [PATIENT_MODULE, STUDY_MODULE, SERIES_MODULE, INSTANCE_MODULE];
/** Computed attributes a query may ask for at its own level. */
const COMPUTED: readonly (readonly Tag[])[] = [
  [Tags.NumberOfPatientRelatedStudies, Tags.NumberOfPatientRelatedSeries, Tags.NumberOfPatientRelatedInstances],
  [Tags.ModalitiesInStudy, Tags.NumberOfStudyRelatedSeries, Tags.NumberOfStudyRelatedInstances, Tags.SOPClassesInStudy],
  [Tags.NumberOfSeriesRelatedInstances],
  [],
];

/** The attributes a normalized query may carry at a level. */
function allowedTags(level: Level): Set<Tag> {
  const allowed = new Set<Tag>([Tags.SpecificCharacterSet, ...COMPUTED[level]!]);
  for (let l = 0; l <= level; l++) for (const tag of MODULES[l]!) allowed.add(tag >>> 0);
  return allowed;
}

/** The unique (and, for studies, AccessionNumber) keys Orthanc always asks for, by level. */
const ALWAYS_ASKED: readonly (readonly Tag[])[] = [
  [Tags.PatientID],
  [Tags.AccessionNumber, Tags.StudyInstanceUID],
  [Tags.SeriesInstanceUID],
  [Tags.SOPInstanceUID],
];

/** The keys that designate an answer for a retrieve (Orthanc's DicomControlUserConnection::Move). */
export const RETRIEVE_KEYS: readonly (readonly Tag[])[] = [
  [Tags.PatientID],
  [Tags.StudyInstanceUID],
  [Tags.StudyInstanceUID, Tags.SeriesInstanceUID],
  [Tags.StudyInstanceUID, Tags.SeriesInstanceUID, Tags.SOPInstanceUID],
];

/** The information model of a query or retrieve at a level: Patient Root for patients, Study Root otherwise. */
export function modelOf(level: Level): 'patient' | 'study' {
  return level === Level.Patient ? 'patient' : 'study';
}

export interface FindParameters {
  level: Level;
  /** The query as the caller gave it (tag -> value). */
  query: ReadonlyMap<Tag, string>;
  normalize: boolean;
  manufacturer: RemoteModality['manufacturer'];
}

/** The keys of the Identifier actually sent (`gggg,eeee` -> value), Orthanc's way. */
export function identifierKeys(p: FindParameters): Record<string, string> {
  const keys = new Map<Tag, string>();
  if (p.normalize) {
    const allowed = allowedTags(p.level);
    for (const [tag, value] of p.query) {
      if (allowed.has(tag)) keys.set(tag, value);
      else log.warn(`Tag not allowed for this C-Find level, will be ignored: (${formatTagOrthanc(tag)})`);
    }
    // Manufacturers that do not take `*` as "any value" (in dates only, or anywhere) get an empty value instead.
    if (p.manufacturer === 'GenericNoWildcardInDates' || p.manufacturer === 'GenericNoUniversalWildcard') {
      for (const [tag, value] of keys) {
        if (value === '*' && (p.manufacturer === 'GenericNoUniversalWildcard' || vrOf(tag) === 'DA')) keys.set(tag, '');
      }
    }
  } else {
    for (const [tag, value] of p.query) keys.set(tag, value);
  }
  keys.delete(Tags.QueryRetrieveLevel);
  const universal = p.manufacturer === 'GE' ? '*' : '';
  for (let l = 0; l <= p.level; l++) for (const tag of ALWAYS_ASKED[l]!) if (!keys.has(tag)) keys.set(tag, universal);
  const out: Record<string, string> = {};
  for (const [tag, value] of keys) out[formatTagOrthanc(tag)] = value;
  return out;
}

/**
 * Runs one C-FIND and collects every answer as a dataset (its text values decoded). Throws `PacsError`
 * NetworkProtocol (association refused or broken, timeout, failure status) or BadRequest (a key that cannot be
 * encoded).
 */
export async function runFind(target: ScuTarget, p: FindParameters, options: { defaultEncoding?: string; signal?: AbortSignal } = {}): Promise<DataSet[]> {
  const model = modelOf(p.level);
  const sopClass = queryRetrieveSopClass(model, 'find');
  const level = DICOM_LEVELS[p.level]!;
  let elements;
  try {
    elements = identifierElements({ model, level, keys: identifierKeys(p) });
  } catch (e) {
    if (e instanceof QueryKeyError) throw new PacsError('BadRequest', e.message);
    throw e;
  }
  const where = `C-FIND SCU to AET "${target.calledAet}" (${target.host}:${target.port})`;
  let session: ScuSession;
  try {
    const association = await openAssociation({ ...target, presentationContexts: [{ abstractSyntax: sopClass, transferSyntaxes: [...QUERY_SYNTAXES] }] });
    session = new ScuSession(association, sessionOptions(target));
  } catch (e) {
    throw new PacsError('NetworkProtocol', `${where}: ${(e as Error).message}`);
  }
  const answers: DataSet[] = [];
  try {
    const context = session.findContext(sopClass);
    if (!context) throw new PacsError('NetworkProtocol', `${where}: the peer did not accept ${model === 'patient' ? 'Patient' : 'Study'} Root Query/Retrieve FIND`);
    const rq: CFindRq = { type: 'C-FIND-RQ', MessageID: session.nextMessageId(), AffectedSOPClassUID: sopClass, Priority: Priority.Medium };
    let unreadable: Error | undefined;
    const { message } = await session.request(context.id, rq, encodeIdentifier(elements, context.transferSyntax), {
      onPending: (rsp) => {
        if (!rsp.dataset) return;
        try {
          answers.push(readDataset(rsp.dataset, context.transferSyntax, { defaultEncoding: options.defaultEncoding }));
        } catch (e) {
          unreadable ??= e as Error;
        }
      },
    });
    if (unreadable) throw new PacsError('NetworkProtocol', `${where}: unreadable answer: ${unreadable.message}`);
    const status = (message as CFindRsp).Status;
    if (statusCategory(status) === 'failure') {
      const comment = (message as CFindRsp).ErrorComment;
      throw new PacsError(
        'NetworkProtocol',
        `${where} has failed with DIMSE status 0x${formatStatus(status)} (${describeStatus(status, 'C-FIND')})${comment ? `: ${comment}` : ''}`,
        { httpStatus: status === 0xc000 ? 422 : undefined },
      );
    }
    return answers;
  } catch (e) {
    if (e instanceof PacsError) throw e;
    throw new PacsError('NetworkProtocol', `${where}: ${(e as Error).message}`);
  } finally {
    await closeSession(session);
  }
}

/** One query and its answers (`/queries/{id}`). */
export interface QueryRecord {
  id: string;
  /** The modality's symbolic name (`/queries/{id}/modality`). */
  modalityName: string;
  /** The modality as it was when the query was made. */
  modality: RemoteModality;
  level: Level;
  /** The query as given (`/queries/{id}/query`). */
  query: Map<Tag, string>;
  normalize: boolean;
  localAet: string;
  /** The call's Timeout (s), inherited by the retrieves and the child queries. */
  timeout?: number;
  answers: DataSet[];
}

/** `Patient`, `Study`, `Series`, `Instance`: Orthanc's name of a query's level. */
export function levelName(level: Level): string {
  return LEVEL_NAMES[level];
}

/** The answer's value of a tag ('' when absent or not text). */
export function answerValue(answer: DataSet, tag: Tag): string | undefined {
  if (!answer.has(tag)) return undefined;
  return (answer.text(tag) ?? '').replace(/[ \0]+$/, '').replace(/^ +/, '');
}

/** The level an answer is at: its own QueryRetrieveLevel, else the query's. */
export function answerLevel(record: QueryRecord, answer: DataSet): Level {
  const own = answerValue(answer, Tags.QueryRetrieveLevel);
  return (own !== undefined ? levelOfDicom(own) : undefined) ?? record.level;
}

/** The in-memory archive of queries (Orthanc's SharedArchive): bounded, the least recently used forgotten first. */
export class QueryArchive {
  private readonly records = new Map<string, QueryRecord>();

  constructor(private readonly capacity: number) {}

  add(record: Omit<QueryRecord, 'id'>): QueryRecord {
    const full: QueryRecord = { ...record, id: randomUUID() };
    this.records.set(full.id, full);
    while (this.records.size > Math.max(1, this.capacity)) {
      const oldest = this.records.keys().next().value as string;
      this.records.delete(oldest);
    }
    return full;
  }

  /** The query (now the most recently used), or Orthanc's 404 Unknown resource. */
  get(id: string): QueryRecord {
    const record = this.records.get(id);
    if (!record) throw new PacsError('UnknownResource', `no query with ID ${id}`);
    this.records.delete(id);
    this.records.set(id, record);
    return record;
  }

  /** The IDs, sorted (as Orthanc lists them). */
  list(): string[] {
    return [...this.records.keys()].sort();
  }

  delete(id: string): boolean {
    return this.records.delete(id);
  }
}
