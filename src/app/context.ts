/**
 * Wiring only (Orthanc main.cpp's role): builds the index, the storage area, the store and the query engine from
 * a Config. Every door (REST now; DIMSE and DICOMweb later) receives this context.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { logger } from '../core/log.js';
import { PACSNODE_VERSION } from '../core/version.js';
import { JobsEngine } from '../jobs/engine.js';
import { ModalityRegistry } from '../modalities/registry.js';
import { loadDicomTls, type DicomTls } from '../net/tls.js';
import { QueryEngine } from '../query/engine.js';
import { FilesystemStorage } from '../store/filesystem-storage.js';
import { SqliteIndex } from '../store/sqlite-index.js';
import { DicomStore } from '../store/store.js';
import { modalityStoreJobType, type ModalityStoreDeps } from './modality-store-job.js';

const log = logger('generic');

export const INDEX_FILE_NAME = 'pacsnode-index.sqlite';

export interface AppContext {
  config: Readonly<Config>;
  index: SqliteIndex;
  store: DicomStore;
  engine: QueryEngine;
  modalities: ModalityRegistry;
  /** The jobs engine (`/jobs`): saved jobs resume at start; routes submit long work to it. */
  jobs: JobsEngine;
  /** What `ModalityStoreJob`s need (C-STORE to a modality as a job). */
  modalityStoreDeps: ModalityStoreDeps;
  /** Our DicomTls* credentials as a requestor (towards modalities with UseDicomTls), read on first use. */
  requestorTls(): DicomTls;
  /** pacsnode's own version. */
  version: string;
  close(): Promise<void>;
}

export { PACSNODE_VERSION };

export async function createContext(config: Readonly<Config>): Promise<AppContext> {
  mkdirSync(config.StorageDirectory, { recursive: true });
  mkdirSync(config.IndexDirectory, { recursive: true });
  const index = new SqliteIndex(join(config.IndexDirectory, INDEX_FILE_NAME), {
    synchronous: config.SyncIndex ? 'FULL' : 'NORMAL',
  });
  const storage = new FilesystemStorage(config.StorageDirectory, { sync: config.SyncStorageArea });
  const store = new DicomStore(index, storage, {
    storageCompression: config.StorageCompression,
    overwriteInstances: config.OverwriteInstances,
    limits: {
      maxStorageSize: config.MaximumStorageSize * 1024 * 1024,
      maxPatientCount: config.MaximumPatientCount,
      mode: config.MaximumStorageMode,
    },
    stableAge: config.StableAge,
    defaultEncoding: config.DefaultEncoding,
    extraMainDicomTags: config.ExtraMainDicomTags,
  });
  await store.open();
  const engine = new QueryEngine(store, {
    storageAccessOnFind: config.StorageAccessOnFind,
    limitFindResults: config.LimitFindResults,
    limitFindInstances: config.LimitFindInstances,
  });
  const modalities = new ModalityRegistry(config.DicomModalities, {
    checkCalledAet: config.DicomCheckCalledAet,
    ourAet: config.DicomAet,
    checkModalityHost: config.DicomCheckModalityHost,
    strictAetComparison: config.StrictAetComparison,
    alwaysAllow: {
      echo: config.DicomAlwaysAllowEcho,
      store: config.DicomAlwaysAllowStore,
      find: config.DicomAlwaysAllowFind,
      get: config.DicomAlwaysAllowGet,
      move: config.DicomAlwaysAllowMove,
    },
  });
  const jobs = new JobsEngine({
    concurrentJobs: config.ConcurrentJobs,
    historySize: config.JobsHistorySize,
    store: config.SaveJobs ? index : undefined,
  });
  let requestorTls: DicomTls | undefined;
  const loadRequestorTls = () => (requestorTls ??= loadDicomTls(config, 'requestor'));
  const modalityStoreDeps: ModalityStoreDeps = {
    index,
    store,
    requestorTls: loadRequestorTls,
    scuTimeoutMs: config.DicomScuTimeout * 1000,
  };
  jobs.registerType(modalityStoreJobType(modalityStoreDeps));
  jobs.start();
  log.info(`storage area: ${storage.description}; index: ${join(config.IndexDirectory, INDEX_FILE_NAME)}`);
  let closed = false;
  return {
    config,
    index,
    store,
    engine,
    modalities,
    jobs,
    modalityStoreDeps,
    requestorTls: loadRequestorTls,
    version: PACSNODE_VERSION,
    async close() {
      if (closed) return;
      closed = true;
      await jobs.close();
      await store.close();
      index.close();
    },
  };
}
