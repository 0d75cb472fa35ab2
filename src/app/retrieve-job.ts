/**
 * Orthanc's `DicomMoveScu` and `DicomGetScu` jobs (`/queries/{id}/retrieve`, `/modalities/{id}/move`,
 * `/modalities/{id}/get`): one retrieve (C-MOVE or C-GET) per designated resource, one step each, on its own
 * association, so that a job can be paused, cancelled (a C-CANCEL is sent) and resumed between resources, and saved
 * to resume after a restart. A C-GET stores what it receives through the one ingestion path.
 */
import { PacsError } from '../core/errors.js';
import { logger } from '../core/log.js';
import { get } from '../dimse/scu/get.js';
import { move } from '../dimse/scu/move.js';
import type { QueryLevel, QueryModel } from '../dimse/scu/find.js';
import { describeStatus, formatStatus, Status } from '../dimse/scu/session.js';
import type { RetrieveSummary } from '../dimse/scu/move.js';
import type { Job, JobRuntime, JobStepResult, JobType } from '../jobs/job.js';
import { StepResult } from '../jobs/job.js';
import type { DicomTls } from '../net/tls.js';
import type { DicomStore } from '../store/store.js';
import { scuTarget, type RemoteNode } from './scu-target.js';

const log = logger('jobs');

export const MOVE_SCU_JOB = 'DicomMoveScu';
export const GET_SCU_JOB = 'DicomGetScu';

export type RetrieveMethodUsed = 'C-MOVE' | 'C-GET';

/** One resource to retrieve: the information model, its level and its keys (`gggg,eeee` -> value). */
export interface RetrieveItem {
  model: QueryModel;
  level: QueryLevel;
  /** What the job's `Query` shows (an answer's identifying keys, as Orthanc). */
  keys: Record<string, string>;
  /** The Identifier's keys, when not `keys` (only the unique keys down to the level, for an answer). */
  send?: Record<string, string>;
}

/** The saved state of a retrieve job (also what it is created from). */
export interface RetrieveState {
  method: RetrieveMethodUsed;
  remote: RemoteNode;
  localAet: string;
  /** The Move Destination (C-MOVE only). */
  targetAet: string;
  /** DIMSE timeout, ms (0 = none). */
  timeoutMs: number;
  description: string;
  items: RetrieveItem[];
  /** The next item to retrieve. */
  position: number;
  completed: number;
  failed: number;
  warning: number;
}

/** What the jobs need from the application (kept out of their saved state). */
export interface RetrieveDeps {
  store: DicomStore;
  requestorTls(): DicomTls;
  /** Releases the store association kept open to a node before associating with it again (`scu-pool.ts`). */
  releaseKept?: (host: string, port: number) => Promise<void>;
}

function failure(category: RetrieveSummary['category']): boolean {
  return category === 'failure' || category === 'cancel';
}

/** Keys in tag order, as Orthanc writes a DicomMap. */
function sortedKeys(keys: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(keys).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export class RetrieveJob implements Job {
  readonly type: string;

  constructor(
    private readonly state: RetrieveState,
    private readonly deps: RetrieveDeps,
  ) {
    this.type = state.method === 'C-GET' ? GET_SCU_JOB : MOVE_SCU_JOB;
  }

  async step(runtime: JobRuntime): Promise<JobStepResult> {
    const { state, deps } = this;
    const item = state.items[state.position];
    if (!item) return StepResult.success();
    const target = scuTarget(state.remote, state.localAet, state.timeoutMs, deps.requestorTls);
    await deps.releaseKept?.(state.remote.host, state.remote.port);
    const request = { model: item.model, level: item.level, keys: item.send ?? item.keys };
    const where = `${state.method} SCU to AET "${state.remote.aet}" (${state.remote.host}:${state.remote.port})`;
    let summary;
    try {
      if (state.method === 'C-MOVE') {
        summary = await move(target, { ...request, destinationAet: state.targetAet }, { signal: runtime.signal });
      } else {
        const origin = { kind: 'dimse' as const, remoteAet: state.remote.aet, calledAet: state.localAet, remoteIp: state.remote.host };
        summary = await get(target, request, {
          signal: runtime.signal,
          into: async (file) => {
            await deps.store.store(file, origin);
            return Status.Success;
          },
        });
      }
    } catch (e) {
      if (runtime.signal.aborted) throw runtime.signal.reason instanceof Error ? runtime.signal.reason : new PacsError('CanceledJob');
      log.warn(`${where}: ${(e as Error).message}`);
      return StepResult.failure('NetworkProtocol', `${where}: ${(e as Error).message}`);
    }
    if (runtime.signal.aborted) throw runtime.signal.reason instanceof Error ? runtime.signal.reason : new PacsError('CanceledJob');
    state.completed += summary.counts.completed;
    state.failed += summary.counts.failed;
    state.warning += summary.counts.warning;
    if (failure(summary.category)) {
      const comment = summary.errorComment ? `: ${summary.errorComment}` : '';
      const text = `${where} has failed with DIMSE status 0x${formatStatus(summary.status)} (${describeStatus(summary.status, state.method)})${comment}`;
      log.warn(text);
      return StepResult.failure('NetworkProtocol', text);
    }
    state.position++;
    return state.position >= state.items.length ? StepResult.success() : StepResult.continue();
  }

  progress(): number {
    const n = this.state.items.length;
    return n === 0 ? 1 : this.state.position / n;
  }

  /** Orthanc's DicomRetrieveScuBaseJob content: Description, LocalAet, RemoteAet, Query (and TargetAet for C-MOVE). */
  content(): Record<string, unknown> {
    const { state } = this;
    const content: Record<string, unknown> = {
      Description: state.description,
      Details: {
        NbSubOperationsCompleted: state.completed,
        NbSubOperationsFailed: state.failed,
        NbSubOperationsWarning: state.warning,
      },
      LocalAet: state.localAet,
      Query: state.items.map((item) => sortedKeys({ ...item.keys, '0008,0052': item.level })),
      RemoteAet: state.remote.aet,
    };
    if (state.method === 'C-MOVE') content.TargetAet = state.targetAet;
    return content;
  }

  serialize(): RetrieveState {
    return this.state;
  }

  reset(): void {
    Object.assign(this.state, { position: 0, completed: 0, failed: 0, warning: 0 });
  }
}

function isState(value: unknown): value is RetrieveState {
  const s = value as RetrieveState;
  return (
    typeof s === 'object' &&
    s !== null &&
    (s.method === 'C-MOVE' || s.method === 'C-GET') &&
    Array.isArray(s.items) &&
    typeof s.position === 'number' &&
    typeof s.remote?.aet === 'string' &&
    typeof s.remote.host === 'string' &&
    typeof s.remote.port === 'number' &&
    typeof s.localAet === 'string' &&
    typeof s.targetAet === 'string' &&
    typeof s.timeoutMs === 'number'
  );
}

/** The two job types, to register with the jobs engine (saved retrieves are restored by them). */
export function retrieveJobTypes(deps: RetrieveDeps): JobType[] {
  return [MOVE_SCU_JOB, GET_SCU_JOB].map((name) => ({
    name,
    restore(serialized: unknown): Job {
      if (!isState(serialized) || (serialized.method === 'C-GET') !== (name === GET_SCU_JOB)) throw new Error(`not a saved ${name} job`);
      return new RetrieveJob(serialized, deps);
    },
  }));
}

/** A new retrieve job. */
export function createRetrieveJob(init: Omit<RetrieveState, 'position' | 'completed' | 'failed' | 'warning'>, deps: RetrieveDeps): RetrieveJob {
  return new RetrieveJob({ ...init, position: 0, completed: 0, failed: 0, warning: 0 }, deps);
}

/** A retrieve of nothing is refused before any job exists. */
export function checkItems(items: readonly RetrieveItem[]): void {
  if (items.length === 0) throw new PacsError('BadRequest', 'nothing to retrieve');
}
