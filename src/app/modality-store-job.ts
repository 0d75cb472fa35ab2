/**
 * Orthanc's `DicomModalityStore` job: C-STORE a set of stored instances to a DICOM node, a batch of instances per
 * step (one association per batch), so that the job can be paused, cancelled and resumed between batches and saved
 * to resume after a restart. The asynchronous C-MOVE SCP (`SynchronousCMove: false`) runs its sub-operations as
 * such a job; `POST /modalities/{id}/store` will too.
 */
import { PacsError } from '../core/errors.js';
import { logger } from '../core/log.js';
import { Tags } from '../dicom/tag.js';
import { storeInstances } from '../dimse/scu/store.js';
import type { Job, JobRuntime, JobStepResult, JobType } from '../jobs/job.js';
import { StepResult } from '../jobs/job.js';
import type { DicomTls } from '../net/tls.js';
import { MetadataType, type SqliteIndex } from '../store/sqlite-index.js';
import type { DicomStore } from '../store/store.js';

const log = logger('jobs');

export const MODALITY_STORE_JOB = 'DicomModalityStore';

/** Instances sent per step, on one association. */
const BATCH = 64;

/** What the job needs from the application (kept out of its saved state). */
export interface ModalityStoreDeps {
  index: SqliteIndex;
  store: DicomStore;
  /** Our DicomTls* credentials as a requestor (read on first use). */
  requestorTls(): DicomTls;
  /** DicomScuTimeout, in ms. */
  scuTimeoutMs: number;
}

/** The saved state of a job (also what it is created from). */
export interface ModalityStoreState {
  /** Instances' public IDs, in sending order. */
  instances: string[];
  /** The next instance to send. */
  position: number;
  failed: string[];
  remote: { aet: string; host: string; port: number; useTls: boolean };
  localAet: string;
  description: string;
  permissive: boolean;
  moveOriginator?: { aet: string; messageId: number };
  parentResources: string[];
}

export class ModalityStoreJob implements Job {
  readonly type = MODALITY_STORE_JOB;

  constructor(
    private readonly state: ModalityStoreState,
    private readonly deps: ModalityStoreDeps,
  ) {}

  async step(runtime: JobRuntime): Promise<JobStepResult> {
    const { state, deps } = this;
    if (state.position >= state.instances.length) return this.finish();
    const batch = state.instances.slice(state.position, state.position + BATCH);
    const rows = batch.map((publicId) => deps.index.findByPublicId(publicId));
    const ids = rows.filter((r) => r !== undefined).map((r) => r.id);
    const sopClasses = deps.index.metadataOf(ids, MetadataType.SopClassUid);
    const syntaxes = deps.index.metadataOf(ids, MetadataType.TransferSyntax);
    const uids = deps.index.mainTagsOf(ids);
    const inputs = [];
    const positions: number[] = [];
    for (let i = 0; i < batch.length; i++) {
      const row = rows[i];
      if (!row) {
        // Deleted since the job was created: a failure, as in Orthanc.
        state.failed.push(batch[i]!);
        continue;
      }
      positions.push(i);
      inputs.push({
        load: () => deps.store.readDicom(row.publicId),
        name: row.publicId,
        sopClassUid: sopClasses.get(row.id) ?? '',
        sopInstanceUid: uids.get(row.id)?.get(Tags.SOPInstanceUID) ?? '',
        transferSyntaxUid: syntaxes.get(row.id) ?? '',
      });
    }
    if (inputs.length > 0) {
      try {
        const summary = await storeInstances(
          {
            host: state.remote.host,
            port: state.remote.port,
            callingAet: state.localAet,
            calledAet: state.remote.aet,
            tls: state.remote.useTls ? deps.requestorTls() : undefined,
            dimseTimeoutMs: deps.scuTimeoutMs,
          },
          inputs,
          { moveOriginator: state.moveOriginator, signal: runtime.signal },
        );
        if (runtime.signal.aborted) throw new PacsError('CanceledJob');
        summary.results.forEach((r, k) => {
          if (r.outcome === 'failed') state.failed.push(batch[positions[k]!]!);
        });
      } catch (e) {
        if (runtime.signal.aborted) throw e;
        // The node could not be reached or the association broke: the job fails here and may be resubmitted.
        log.warn(`${MODALITY_STORE_JOB} to ${state.remote.aet}: ${(e as Error).message}`);
        return StepResult.failure('NetworkProtocol', `C-STORE to ${state.remote.aet} (${state.remote.host}:${state.remote.port}): ${(e as Error).message}`);
      }
    }
    state.position += batch.length;
    if (state.failed.length > 0 && !state.permissive) {
      return StepResult.failure('NetworkProtocol', `${state.failed.length} instance(s) could not be sent to ${state.remote.aet}`);
    }
    return state.position >= state.instances.length ? this.finish() : StepResult.continue();
  }

  private finish(): JobStepResult {
    return StepResult.success();
  }

  progress(): number {
    return this.state.instances.length === 0 ? 1 : this.state.position / this.state.instances.length;
  }

  content(): Record<string, unknown> {
    const { state } = this;
    const content: Record<string, unknown> = {
      Description: state.description,
      FailedInstancesCount: state.failed.length,
      InstancesCount: state.instances.length,
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

  serialize(): ModalityStoreState {
    return this.state;
  }

  reset(): void {
    this.state.position = 0;
    this.state.failed = [];
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
