/**
 * Orthanc's `DicomModalityStore` job: C-STORE a set of stored instances to a DICOM node, every instance in one
 * step on one association (as Orthanc, which keeps its association open between instances; with
 * `DicomAssociationCloseDelay`, it stays open for the next job to the same node: `deps.sessions`). A cancel stops it
 * before the next instance; a pause applies once the association is done; the position advances with each instance
 * answered and the job is saved, so that it resumes after a restart. The asynchronous C-MOVE SCP
 * (`SynchronousCMove: false`) runs its sub-operations as such a job; `POST /modalities/{id}/store` too.
 */
import { SetOfInstancesJob, type SetOfInstancesState } from './set-of-instances-job.js';
import { PacsError } from '../core/errors.js';
import { logger } from '../core/log.js';
import { Tags } from '../dicom/tag.js';
import { storeInstances } from '../dimse/scu/store.js';
import type { Job, JobRuntime, JobStepResult, JobType } from '../jobs/job.js';
import { StepResult } from '../jobs/job.js';
import type { ScuSessionPool } from './scu-pool.js';
import { scuTarget } from './scu-target.js';
import type { DicomTls } from '../net/tls.js';
import { MetadataType, type SqliteIndex } from '../store/sqlite-index.js';
import type { DicomStore } from '../store/store.js';

const log = logger('jobs');

export const MODALITY_STORE_JOB = 'DicomModalityStore';

/** What the job needs from the application (kept out of its saved state). */
export interface ModalityStoreDeps {
  index: SqliteIndex;
  store: DicomStore;
  /** Our DicomTls* credentials as a requestor (read on first use). */
  requestorTls(): DicomTls;
  /** DicomScuTimeout, in ms. */
  scuTimeoutMs: number;
  /** Records an instance sent in `/exports` (set when `LogExportedResources` is true). */
  logExport?: (publicId: string, remoteAet: string) => void;
  /** The associations kept open between jobs (`DicomAssociationCloseDelay`, `scu-pool.ts`); default: one per job. */
  sessions?: ScuSessionPool;
}

/** The saved state of a job (also what it is created from). */
export interface ModalityStoreState extends SetOfInstancesState {
  remote: { aet: string; host: string; port: number; useTls: boolean };
  localAet: string;
  permissive: boolean;
  moveOriginator?: { aet: string; messageId: number };
  parentResources: string[];
  /** The DIMSE timeout of this job in ms (the call's `Timeout`; 0 = none); default `DicomScuTimeout`. */
  timeoutMs?: number;
  /** The C-STORE Priority (PS3.7 Table E.1-1); default Medium. */
  dimsePriority?: number;
}

export class ModalityStoreJob extends SetOfInstancesJob<ModalityStoreState> implements Job {
  readonly type = MODALITY_STORE_JOB;

  constructor(
    state: ModalityStoreState,
    private readonly deps: ModalityStoreDeps,
  ) {
    super(state);
  }

  async step(runtime: JobRuntime): Promise<JobStepResult> {
    const { state, deps } = this;
    if (state.position >= state.instances.length) return this.finish();
    // Every remaining instance goes on one association (Orthanc keeps its association open between instances):
    // the position advances as each is answered, so that a job stopped midway resumes after the last one sent.
    const remaining = state.instances.slice(state.position);
    const rows = remaining.map((publicId) => deps.index.findByPublicId(publicId));
    const ids = rows.filter((r) => r !== undefined).map((r) => r.id);
    const sopClasses = deps.index.metadataOf(ids, MetadataType.SopClassUid);
    const syntaxes = deps.index.metadataOf(ids, MetadataType.TransferSyntax);
    const uids = deps.index.mainTagsOf(ids);
    const inputs = [];
    for (let i = 0; i < remaining.length; i++) {
      const row = rows[i];
      if (!row) {
        // Deleted since the job was created: a failure, as in Orthanc.
        state.failed.push(remaining[i]!);
        continue;
      }
      inputs.push({
        load: () => deps.store.readDicom(row.publicId),
        name: row.publicId,
        sopClassUid: sopClasses.get(row.id) ?? '',
        sopInstanceUid: uids.get(row.id)?.get(Tags.SOPInstanceUID) ?? '',
        transferSyntaxUid: syntaxes.get(row.id) ?? '',
      });
    }
    const start = state.position;
    if (inputs.length > 0) {
      try {
        const { remote } = state;
        await storeInstances(
          scuTarget({ aet: remote.aet, host: remote.host, port: remote.port, useDicomTls: remote.useTls }, state.localAet, state.timeoutMs ?? deps.scuTimeoutMs, deps.requestorTls),
          inputs,
          {
            moveOriginator: state.moveOriginator,
            priority: state.dimsePriority,
            signal: runtime.signal,
            sessions: deps.sessions,
            onResult: (result, done) => {
              if (runtime.signal.aborted && result.outcome === 'skipped') return;
              if (result.outcome === 'failed') state.failed.push(result.source);
              else deps.logExport?.(result.source, state.remote.aet);
              state.position = start + (remaining.length - inputs.length) + done;
            },
          },
        );
        if (runtime.signal.aborted) throw new PacsError('CanceledJob');
      } catch (e) {
        if (runtime.signal.aborted) throw e;
        // The node could not be reached or the association broke: the job fails here and may be resubmitted.
        log.warn(`${MODALITY_STORE_JOB} to ${state.remote.aet}: ${(e as Error).message}`);
        return StepResult.failure('NetworkProtocol', `C-STORE to ${state.remote.aet} (${state.remote.host}:${state.remote.port}): ${(e as Error).message}`);
      }
    }
    state.position = state.instances.length;
    if (state.failed.length > 0 && !state.permissive) {
      return StepResult.failure('NetworkProtocol', `${state.failed.length} instance(s) could not be sent to ${state.remote.aet}`);
    }
    return this.finish();
  }

  private finish(): JobStepResult {
    return StepResult.success();
  }

  content(): Record<string, unknown> {
    const { state } = this;
    const content: Record<string, unknown> = {
      ...this.setContent(),
      LocalAet: state.localAet,
      ParentResources: state.parentResources,
      RemoteAet: state.remote.aet,
    };
    if (state.moveOriginator) {
      content.MoveOriginatorAET = state.moveOriginator.aet;
      content.MoveOriginatorID = state.moveOriginator.messageId;
    }
    return content;
  }


}

function isState(value: unknown): value is ModalityStoreState {
  const s = value as ModalityStoreState;
  return (
    typeof s === 'object' &&
    s !== null &&
    Array.isArray(s.instances) &&
    typeof s.position === 'number' &&
    Array.isArray(s.failed) &&
    typeof s.remote?.aet === 'string' &&
    typeof s.remote.host === 'string' &&
    typeof s.remote.port === 'number' &&
    typeof s.localAet === 'string'
  );
}

export function modalityStoreJobType(deps: ModalityStoreDeps): JobType {
  return {
    name: MODALITY_STORE_JOB,
    restore(serialized) {
      if (!isState(serialized)) throw new Error(`not a saved ${MODALITY_STORE_JOB} job`);
      return new ModalityStoreJob(serialized, deps);
    },
  };
}
