/**
 * Wiring only (Orthanc main.cpp's role): builds the index, the storage area, the store and the query engine from
 * a Config. Every door (REST now; DIMSE and DICOMweb later) receives this context.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { logger } from '../core/log.js';
import { PACSNODE_VERSION } from '../core/version.js';
import { startMetadataCacheBuilder } from '../dicomweb/metadata.js';
import { dicomWebOptions } from '../dicomweb/options.js';
import { JobsEngine } from '../jobs/engine.js';
import { ModalityRegistry } from '../modalities/registry.js';
import { loadDicomTls, type DicomTls } from '../net/tls.js';
import { PeerHttp } from '../peers/client.js';
import { PeerRegistry, type PeersStore } from '../peers/registry.js';
import { QueryEngine } from '../query/engine.js';
import { FilesystemStorage } from '../store/filesystem-storage.js';
import { CachedStorage } from '../store/storage-cache.js';
import { SqliteIndex } from '../store/sqlite-index.js';
import { DicomStore } from '../store/store.js';
import { openJobsTemporaryDirectory } from './archive-job.js';
import { DicomSettings } from './dicom-settings.js';
import { modalityStoreJobType, type ModalityStoreDeps } from './modality-store-job.js';
import { peerStoreJobType } from './peer-store-job.js';
import { ScuSessionPool } from './scu-pool.js';

const log = logger('generic');

export const INDEX_FILE_NAME = 'pacsnode-index.sqlite';

export interface AppContext {
  config: Readonly<Config>;
  index: SqliteIndex;
  store: DicomStore;
  engine: QueryEngine;
  modalities: ModalityRegistry;
  /** Orthanc peers (`/peers`): OrthancPeers, or the index's with OrthancPeersInDatabase. */
  peers: PeerRegistry;
  /** HTTP(S) clients towards peers (HttpTimeout, HttpsVerifyPeers, HttpsCACertificates, HttpProxy). */
  peerHttp: PeerHttp;
  /** The jobs engine (`/jobs`): saved jobs resume at start; routes submit long work to it. */
  jobs: JobsEngine;
  /** What `ModalityStoreJob`s need (C-STORE to a modality as a job). */
  modalityStoreDeps: ModalityStoreDeps;
  /** Our DicomTls* credentials as a requestor (towards modalities with UseDicomTls), read on first use. */
  requestorTls(): DicomTls;
  /** SCU associations kept open after store jobs (`DicomAssociationCloseDelay`); release a node's before calling it otherwise. */
  scuPool: ScuSessionPool;
  /** The DICOM server's settings the REST API may change while running (accepted transfer syntaxes, unknown SOP classes). */
  dicomSettings: DicomSettings;
  /** pacsnode's own version. */
  version: string;
  close(): Promise<void>;
}

export { PACSNODE_VERSION };

/** OrthancPeersInDatabase: the peers kept in a global property of the index (Orthanc's GlobalProperty_Peers). */
function peersInIndex(index: SqliteIndex): PeersStore {
  const name = 'OrthancPeers';
  return {
    load: () => (index.db.prepare('SELECT value FROM global_properties WHERE name = ?').get(name) as { value: string } | undefined)?.value,
    save: (json) => void index.db.prepare('INSERT OR REPLACE INTO global_properties(name, value) VALUES (?, ?)').run(name, json),
  };
}

export async function createContext(config: Readonly<Config>): Promise<AppContext> {
  // Checked before anything is opened: an unknown UID in AcceptedTransferSyntaxes stops the start here.
  const dicomSettings = new DicomSettings(config);
  mkdirSync(config.StorageDirectory, { recursive: true });
  mkdirSync(config.IndexDirectory, { recursive: true });
  const index = new SqliteIndex(join(config.IndexDirectory, INDEX_FILE_NAME), {
    synchronous: config.SyncIndex ? 'FULL' : 'NORMAL',
  });
  const files = new FilesystemStorage(config.StorageDirectory, { sync: config.SyncStorageArea });
  // Orthanc's storage cache (MaximumStorageCacheSize, MB): the files most recently read, in memory.
  const storage = config.MaximumStorageCacheSize > 0 ? new CachedStorage(files, config.MaximumStorageCacheSize * 1024 * 1024) : files;
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
  // DICOMweb's series metadata cache, built in the background once a series goes quiet (dicomweb/metadata.ts).
  const metadataCacheBuilder = startMetadataCacheBuilder(store, dicomWebOptions(config));
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
  // Per index, emptied of what an unclean stop left (archive jobs' ZIPs): see app/archive-job.ts.
  const jobsTemp = await openJobsTemporaryDirectory(config.IndexDirectory);
  const jobs = new JobsEngine({
    concurrentJobs: config.ConcurrentJobs,
    historySize: config.JobsHistorySize,
    store: config.SaveJobs ? index : undefined,
    temporaryDirectory: jobsTemp.path,
  });
  let requestorTls: DicomTls | undefined;
  const loadRequestorTls = () => (requestorTls ??= loadDicomTls(config, 'requestor'));
  // DicomAssociationCloseDelay: the store jobs' associations stay open that long for the next job (app/scu-pool.ts).
  const scuPool = new ScuSessionPool(config.DicomAssociationCloseDelay * 1000);
  const modalityStoreDeps: ModalityStoreDeps = {
    index,
    store,
    requestorTls: loadRequestorTls,
    scuTimeoutMs: config.DicomScuTimeout * 1000,
    sessions: scuPool,
  };
  jobs.registerType(modalityStoreJobType(modalityStoreDeps));
  const peers = new PeerRegistry(config.OrthancPeers, config.OrthancPeersInDatabase ? peersInIndex(index) : undefined);
  if (config.OrthancPeersInDatabase && Object.keys(config.OrthancPeers).length > 0) {
    log.warn('OrthancPeersInDatabase is true: the OrthancPeers of the configuration are ignored, the index holds the peers');
  }
  const peerHttp = new PeerHttp({
    timeoutSeconds: config.HttpTimeout,
    verifyPeers: config.HttpsVerifyPeers,
    caCertificates: config.HttpsCACertificates,
    proxy: config.HttpProxy,
  });
  jobs.registerType(peerStoreJobType({ store, http: peerHttp }));
  jobs.start();
  log.info(`storage area: ${storage.description}; index: ${join(config.IndexDirectory, INDEX_FILE_NAME)}`);
  let closed = false;
  return {
    config,
    index,
    store,
    engine,
    modalities,
    peers,
    peerHttp,
    jobs,
    modalityStoreDeps,
    requestorTls: loadRequestorTls,
    dicomSettings,
    scuPool,
    version: PACSNODE_VERSION,
    async close() {
      if (closed) return;
      closed = true;
      await jobs.close();
      await scuPool.close();
      await jobsTemp.close();
      await metadataCacheBuilder?.close();
      await store.close();
      index.close();
    },
  };
}
