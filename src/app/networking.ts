/**
 * What the REST networking routes (`/modalities`, `/queries`) share, one per application context: the modalities
 * kept in the index when `DicomModalitiesInDatabase` is true, the in-memory archive of queries, the job types of
 * the retrieves (`DicomMoveScu`, `DicomGetScu`), and how an SCU target is built for a modality (our AE title, the
 * DIMSE timeout, TLS).
 *
 * `networking(ctx)` creates it on first use (the routes call it when they are registered, so that saved retrieve
 * jobs are restored at start-up) and answers the same one afterwards.
 */
import { PacsError } from '../core/errors.js';
import { logger } from '../core/log.js';
import { Tags } from '../dicom/tag.js';
import type { ScuTarget } from '../dimse/scu/session.js';
import type { RemoteModality } from '../modalities/registry.js';
import { Level } from '../store/levels.js';
import type { SqliteIndex } from '../store/sqlite-index.js';
import { isoNow } from '../store/store.js';
import type { AppContext } from './context.js';
import { QueryArchive } from './queries.js';
import type { ModalityStoreDeps } from './modality-store-job.js';
import { retrieveJobTypes, type RetrieveDeps } from './retrieve-job.js';
import { scuTarget, type RemoteNode } from './scu-target.js';

const log = logger('dicom');

/** The global property holding the modalities (Orthanc's GlobalProperty_Modalities), as Orthanc's long-form JSON. */
const MODALITIES_PROPERTY = 'DicomModalities';

export interface Networking {
  queries: QueryArchive;
  /** Our AE title towards a modality: the call's, else the modality's `LocalAet`, else `DicomAet`. */
  localAet(modality: RemoteModality, override?: string): string;
  /** The DIMSE timeout in ms: the call's `Timeout` (s), else the modality's `Timeout`, else `DicomScuTimeout`; 0 = none. */
  timeoutMs(modality: RemoteModality, overrideSeconds?: number): number;
  /** Where an SCU goes for a modality (what the store jobs keep open to it is released first). */
  target(modality: RemoteNode, callingAet: string, timeoutMs: number): ScuTarget;
  /** Logs a resource sent to a modality in `/exports` when `LogExportedResources` is true (Orthanc's LogExportedResource). */
  logExport(publicId: string, modalityName: string): void;
  /**
   * The stored instances of resources given by public ID (patients, studies, series or instances), in order and
   * without repetition; Orthanc's 404 Unknown resource for an ID that is not stored.
   */
  instancesOf(publicIds: readonly string[]): string[];
  /** The modality-store job's dependencies (the application's, with `/exports` logging). */
  storeDeps: ModalityStoreDeps;
  /** The retrieve jobs' dependencies. */
  retrieveDeps: RetrieveDeps;
}

const cache = new WeakMap<AppContext, Networking>();

// The index has no accessor for global properties besides the schema version: the table is used as it is.
function readProperty(index: SqliteIndex, name: string): string | undefined {
  const row = index.db.prepare(`SELECT value FROM global_properties WHERE name = ?`).get(name) as { value: string } | undefined;
  return row?.value;
}

function writeProperty(index: SqliteIndex, name: string, value: string): void {
  index.db.prepare(`INSERT OR REPLACE INTO global_properties(name, value) VALUES (?, ?)`).run(name, value);
}

/** With `DicomModalitiesInDatabase`, the modalities come from the index (the file's are ignored, as in Orthanc). */
function loadModalitiesFromIndex(ctx: AppContext): void {
  const { config, index, modalities } = ctx;
  if (!config.DicomModalitiesInDatabase) return;
  if (Object.keys(config.DicomModalities).length > 0) {
    log.warn('DicomModalitiesInDatabase is true: the DicomModalities of the configuration are ignored, the index holds the modalities');
  }
  const saved = readProperty(index, MODALITIES_PROPERTY);
  let entries: Record<string, unknown> = {};
  if (saved !== undefined) {
    try {
      const parsed = JSON.parse(saved) as unknown;
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) entries = parsed as Record<string, unknown>;
      else throw new Error('not a JSON object');
    } catch (e) {
      throw new PacsError('Database', `cannot read the modalities kept in the index: ${(e as Error).message}`);
    }
  }
  modalities.replaceAll(entries, (name, e) => log.warn(`modality "${name}" kept in the index is ignored: ${e.message}`));
  modalities.persist = (all) => writeProperty(index, MODALITIES_PROPERTY, JSON.stringify(all));
  log.info(`${modalities.list().length} modalit${modalities.list().length === 1 ? 'y' : 'ies'} loaded from the index`);
}

/** Public ID -> the identifiers Orthanc's exports log records (the resource's and its ancestors' UIDs). */
function exportRow(ctx: AppContext, publicId: string, remoteModality: string) {
  const row = ctx.index.findByPublicId(publicId);
  if (!row) return undefined;
  const chain = ctx.index.ancestry(row.id); // from the patient down to the resource
  const byLevel = new Map(chain.map((r) => [r.level, r]));
  byLevel.set(row.level, row);
  const uid = (level: Level, tag: number) => {
    const r = byLevel.get(level);
    return r ? (ctx.index.mainTags(r.id).get(tag) ?? '') : '';
  };
  return {
    level: row.level,
    publicId,
    remoteModality,
    patientId: uid(Level.Patient, Tags.PatientID),
    studyInstanceUid: uid(Level.Study, Tags.StudyInstanceUID),
    seriesInstanceUid: uid(Level.Series, Tags.SeriesInstanceUID),
    sopInstanceUid: uid(Level.Instance, Tags.SOPInstanceUID),
    date: isoNow(),
  };
}

export function networking(ctx: AppContext): Networking {
  const existing = cache.get(ctx);
  if (existing) return existing;
  const { config } = ctx;
  loadModalitiesFromIndex(ctx);
  // Many nodes serve one association at a time (DCMTK's storescp): a store association kept open to a node
  // (DicomAssociationCloseDelay) is released before another operation associates with it.
  const pool = ctx.modalityStoreDeps.sessions;
  const releaseKept = (host: string, port: number): Promise<void> => pool?.releaseNode(host, port) ?? Promise.resolve();
  const retrieveDeps: RetrieveDeps = { store: ctx.store, requestorTls: ctx.requestorTls, releaseKept };
  for (const type of retrieveJobTypes(retrieveDeps)) ctx.jobs.registerType(type);
  const logExport = (publicId: string, remote: string): void => {
    if (!config.LogExportedResources) return;
    const row = exportRow(ctx, publicId, remote);
    if (row) ctx.index.logExport(row);
  };
  // The same object the C-MOVE SCP's jobs use: instances they send are logged too.
  ctx.modalityStoreDeps.logExport = logExport;
  const service: Networking = {
    queries: new QueryArchive(config.QueryRetrieveSize),
    localAet: (modality, override) => (override !== undefined && override !== '' ? override : modality.localAet || config.DicomAet),
    // Capped at what Node's timers hold (2^31 - 1 ms): a larger value (a modality's Timeout, DicomScuTimeout) would fire at once.
    timeoutMs: (modality, overrideSeconds) =>
      Math.min(2 ** 31 - 1, 1000 * (overrideSeconds ?? (modality.timeout > 0 ? modality.timeout : config.DicomScuTimeout))),
    target: (modality, callingAet, timeoutMs) => {
      void releaseKept(modality.host, modality.port); // the A-RELEASE-RQ goes out now, before the caller connects
      return scuTarget(modality, callingAet, timeoutMs, ctx.requestorTls);
    },
    logExport,
    instancesOf(publicIds) {
      const out = new Set<string>();
      for (const publicId of publicIds) {
        const row = ctx.index.findByPublicId(publicId);
        if (!row) throw new PacsError('UnknownResource', `no resource with ID ${publicId}`);
        for (const instance of ctx.index.descendants(row.id, row.level, Level.Instance)) out.add(instance.publicId);
      }
      return [...out];
    },
    storeDeps: ctx.modalityStoreDeps,
    retrieveDeps,
  };
  cache.set(ctx, service);
  return service;
}
